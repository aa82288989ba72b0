//! (filled in by the enforcement work)
