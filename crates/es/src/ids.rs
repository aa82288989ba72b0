//! Identifiers esgate seals so that they stay bound to the token that received them: continuation
//! ids (scroll, point in time, async search: `continuation`) and Lucene doc ids in sort values
//! (`ordinals`).

pub mod continuation;
pub mod ordinals;
