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
