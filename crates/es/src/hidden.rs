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

use super::index::{concrete_allowed, pattern_allows};

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
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_exact_names_and_dot_patterns_reach_hidden_indices() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["*"], "logs-h", false),
            (&["logs-*"], "logs-h", false),
            (&["logs-h*"], "logs-h", false),
            (&["*"], ".alerts-x", false),
            (&["logs-h"], "logs-h", true),
            (&["logs-*", "logs-h"], "logs-h", true),
            (&[".alerts-*"], ".alerts-x", true),
            (&[".alerts-x"], ".alerts-x", true),
            (&[".alerts-*"], ".security-7", false),
            (&[".*"], ".security-7", true),
            (&["logs-h"], "logs-hh", false),
        ];
        for (p, name, want) in cases {
            assert_eq!(allows(name, &pats(p)), *want, "{p:?} {name}");
        }
    }

    #[test]
    fn alias_targets_that_are_hidden_need_an_explicit_pattern() {
        let hidden: BTreeSet<&str> = ["logs-h", ".alerts-x"].into_iter().collect();
        let logs = pats(&["logs-*"]);
        assert!(alias_target_allowed("logs-a", &hidden, &logs));
        assert!(!alias_target_allowed("logs-h", &hidden, &logs));
        assert!(!alias_target_allowed("secret", &hidden, &logs));
        assert!(alias_target_allowed(
            "logs-h",
            &hidden,
            &pats(&["logs-*", "logs-h"])
        ));
        assert!(alias_target_allowed(
            ".alerts-x",
            &hidden,
            &pats(&[".alerts-*"])
        ));
    }
}
