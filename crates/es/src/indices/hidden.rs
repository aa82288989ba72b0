//! Hidden and system indices (security.md C3): which token patterns may reach an index the
//! backend reports as hidden (`index.hidden: true`, and every dot-index Elasticsearch hides).
//!
//! Invariant: a hidden index is reachable only through a pattern that names hidden indices on
//! purpose: the index's exact name, or a pattern starting with `.` (as in Elasticsearch, where
//! only a wildcard starting with a dot expands to hidden dot-indices). `*`, `logs-*` and any
//! other wildcard pattern never reach a hidden index, whether the client names it, matches it
//! with a wildcard, or reaches it through an alias. Dot-indices additionally need a dot pattern
//! whether hidden or not (`index::pattern_allows`). Pure.

use std::collections::BTreeSet;

use crate::indices::index::{concrete_allowed, pattern_allows};

/// Whether the hidden index `name` is covered by a pattern that names hidden indices on
/// purpose (its exact name, or a dot pattern).
pub fn allows(name: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|p| pattern_allows(p, name) && (!p.contains('*') || p.starts_with('.')))
}

/// Whether a concrete index an alias points at may be reached: allowed by the patterns, and,
/// when the backend reported it hidden (`hidden` lists those names), allowed as hidden too.
pub fn alias_target_allowed(index: &str, hidden: &BTreeSet<&str>, patterns: &[String]) -> bool {
    concrete_allowed(index, patterns) && (!hidden.contains(index) || allows(index, patterns))
}

#[cfg(test)]
mod tests;
