use super::*;

fn index(name: &str) -> ResolvedName {
    ResolvedName {
        name: name.into(),
        kind: NameKind::Index,
        indices: vec![name.into()],
    }
}

fn alias(name: &str, to: &[&str]) -> ResolvedName {
    ResolvedName {
        name: name.into(),
        kind: NameKind::Alias,
        indices: to.iter().map(|s| s.to_string()).collect(),
    }
}

fn logs() -> Vec<String> {
    vec!["logs-*".into()]
}

#[test]
fn a_wildcard_is_never_forwarded_only_the_concrete_indices_allowed() {
    let got = narrow(
        "logs-*",
        &[
            index("logs-a"),
            index("logs-b"),
            alias("logs-all", &["logs-a"]),
        ],
        &logs(),
    )
    .unwrap();
    let both = vec!["logs-a".to_string(), "logs-b".to_string()];
    assert_eq!(
        got,
        Narrowed::Only {
            names: both.clone(),
            indices: both
        }
    );
    // An exclusion too: the backend may apply it differently from `_resolve/index`.
    let got = narrow("logs-*,-logs-sa", &[index("logs-a")], &logs()).unwrap();
    let a = vec!["logs-a".to_string()];
    assert_eq!(
        got,
        Narrowed::Only {
            names: a.clone(),
            indices: a.clone()
        }
    );
    // Explicit names alone are forwarded as they are.
    let got = narrow("logs-a", &[index("logs-a")], &logs()).unwrap();
    assert_eq!(got, Narrowed::AsIs { indices: a });
}

#[test]
fn a_foreign_alias_matched_by_a_wildcard_is_dropped() {
    let got = narrow(
        "logs-*",
        &[
            index("logs-a"),
            index("logs-b"),
            alias("logs-sa", &["secret"]),
        ],
        &logs(),
    )
    .unwrap();
    assert_eq!(
        got,
        Narrowed::Only {
            names: vec!["logs-a".into(), "logs-b".into()],
            indices: vec!["logs-a".into(), "logs-b".into()]
        }
    );
}

#[test]
fn an_explicit_foreign_name_is_refused() {
    for (expr, names) in [
        ("logs-sa", vec![alias("logs-sa", &["secret"])]),
        ("logs-a,secret", vec![index("logs-a"), index("secret")]),
        (
            "logs-mixed",
            vec![alias("logs-mixed", &["logs-a", "secret"])],
        ),
    ] {
        assert!(narrow(expr, &names, &logs()).is_err(), "{expr}");
    }
}

#[test]
fn a_wildcard_that_reaches_only_foreign_names_reaches_nothing() {
    assert_eq!(
        narrow("s*", &[index("secret")], &logs()).unwrap(),
        Narrowed::Nothing
    );
    assert_eq!(narrow("logs-*", &[], &logs()).unwrap(), Narrowed::Nothing);
}

#[test]
fn missing_explicit_names_stay_when_a_wildcard_is_narrowed() {
    let got = narrow("logs-new,l*", &[index("logs-a"), index("lib")], &logs()).unwrap();
    assert_eq!(
        got,
        Narrowed::Only {
            names: vec!["logs-a".into(), "logs-new".into()],
            indices: vec!["logs-a".into()]
        }
    );
}

fn hidden(name: &str) -> ResolvedName {
    ResolvedName {
        name: name.into(),
        kind: NameKind::HiddenIndex,
        indices: vec![name.into()],
    }
}

#[test]
fn hidden_indices_are_reached_only_through_patterns_that_name_them() {
    // A wildcard drops them.
    let got = narrow("logs-*", &[index("logs-a"), hidden("logs-h")], &logs()).unwrap();
    let a = vec!["logs-a".to_string()];
    assert_eq!(
        got,
        Narrowed::Only {
            names: a.clone(),
            indices: a
        }
    );
    assert_eq!(
        narrow("logs-h*", &[hidden("logs-h")], &logs()).unwrap(),
        Narrowed::Nothing
    );
    // Named explicitly, or through an alias, they are refused.
    assert!(narrow("logs-h", &[hidden("logs-h")], &logs()).is_err());
    assert!(narrow(
        "logs-ha",
        &[alias("logs-ha", &["logs-h"]), hidden("logs-h")],
        &logs()
    )
    .is_err());
    // A wildcard matching that alias drops it too.
    let got = narrow(
        "logs-*",
        &[
            index("logs-a"),
            alias("logs-ha", &["logs-h"]),
            hidden("logs-h"),
        ],
        &logs(),
    )
    .unwrap();
    assert_eq!(
        got,
        Narrowed::Only {
            names: vec!["logs-a".into()],
            indices: vec!["logs-a".into()]
        }
    );
    // A token whose pattern names them reaches them, wildcards included.
    let alerts = vec![".alerts-*".to_string()];
    let got = narrow(".alerts-*", &[hidden(".alerts-x")], &alerts).unwrap();
    let x = vec![".alerts-x".to_string()];
    assert_eq!(
        got,
        Narrowed::Only {
            names: x.clone(),
            indices: x.clone()
        }
    );
    let exact = vec!["logs-*".to_string(), "logs-h".to_string()];
    assert_eq!(
        narrow("logs-h", &[hidden("logs-h")], &exact).unwrap(),
        Narrowed::AsIs {
            indices: vec!["logs-h".into()]
        }
    );
}

#[test]
fn an_alias_with_no_indices_is_not_allowed() {
    assert!(narrow("logs-empty", &[alias("logs-empty", &[])], &logs()).is_err());
}

/// `narrow` before issue 10's change, with tree sets: the reference for
/// `narrow_matches_the_set_version`.
fn narrow_with_sets(
    expr: &str,
    names: &[ResolvedName],
    patterns: &[String],
) -> Result<Narrowed, Rejection> {
    let explicit: BTreeSet<&str> = expr
        .split(',')
        .filter(|e| !e.contains('*') && !e.starts_with('-'))
        .collect();
    let mut indices = BTreeSet::new();
    let mut dropped = false;
    let hidden_names = hidden_names(names);
    for n in names {
        if name_allowed(n, &hidden_names, patterns) {
            indices.extend(n.indices.iter().cloned());
        } else if explicit.contains(n.name.as_str()) {
            return Err(Rejection::forbidden(format!(
                "index [{}] is not allowed for this token",
                n.name
            )));
        } else {
            dropped = true;
        }
    }
    let indices: Vec<String> = indices.into_iter().collect();
    let expands = expr
        .split(',')
        .any(|e| e.contains('*') || e.starts_with('-'));
    if !dropped && !expands {
        return Ok(Narrowed::AsIs { indices });
    }
    let resolved: BTreeSet<&str> = names.iter().map(|n| n.name.as_str()).collect();
    let mut forward: Vec<String> = indices.clone();
    forward.extend(
        explicit
            .iter()
            .filter(|e| !resolved.contains(*e))
            .map(|e| e.to_string()),
    );
    forward.sort();
    forward.dedup();
    if forward.is_empty() {
        return Ok(Narrowed::Nothing);
    }
    Ok(Narrowed::Only {
        names: forward,
        indices,
    })
}

/// The list version decides every combination of expressions, resolved names (indices,
/// hidden ones, aliases, data streams, duplicates, names out of order) and patterns exactly as
/// the tree-set version did: the same outcome, names and indices in the same order, the same
/// refusal.
#[test]
fn narrow_matches_the_set_version() {
    let hidden = |name: &str| ResolvedName {
        name: name.into(),
        kind: NameKind::HiddenIndex,
        indices: vec![name.into()],
    };
    let stream = |name: &str, to: &[&str]| ResolvedName {
        name: name.into(),
        kind: NameKind::DataStream,
        indices: to.iter().map(|s| s.to_string()).collect(),
    };
    let exprs = [
        "logs-a",
        "logs-b,logs-a",
        "logs-a,logs-a",
        "logs-*",
        "logs-*,-logs-sa",
        "logs-a,secret",
        "secret",
        "missing",
        "logs-a,missing",
        "*",
        "-*",
        "logs-x,logs-*",
        ".hidden-a,logs-a",
        "logs-all",
        "logs-ds",
        "",
        ",logs-a",
    ];
    let resolutions: Vec<Vec<ResolvedName>> = vec![
        vec![],
        vec![index("logs-a")],
        vec![index("logs-b"), index("logs-a")],
        vec![index("logs-a"), index("logs-a")],
        vec![index("logs-a"), index("secret")],
        vec![index("secret"), index("logs-a")],
        vec![alias("logs-all", &["logs-b", "logs-a"]), index("logs-a")],
        vec![alias("logs-sa", &["secret"]), index("logs-b")],
        vec![alias("logs-empty", &[])],
        vec![hidden(".hidden-a"), index("logs-a")],
        vec![alias("logs-h", &[".hidden-a"]), hidden(".hidden-a")],
        vec![stream("logs-ds", &[".ds-logs-ds-1", ".ds-logs-ds-2"])],
        vec![stream("logs-ds", &["logs-z", "secret"])],
        vec![index("missing")],
    ];
    let patterns: Vec<Vec<String>> = vec![
        logs(),
        vec!["logs-a".into()],
        vec!["logs-*".into(), ".hidden-*".into(), ".ds-logs-*".into()],
        vec!["*".into()],
        vec!["secret".into(), "logs-b".into()],
    ];
    let mut cases = 0;
    for expr in exprs {
        for names in &resolutions {
            for p in &patterns {
                assert_eq!(
                    narrow(expr, names, p),
                    narrow_with_sets(expr, names, p),
                    "{expr} {names:?} {p:?}"
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, exprs.len() * resolutions.len() * patterns.len());
}

fn stream(name: &str, backing: &[&str]) -> ResolvedName {
    ResolvedName {
        name: name.into(),
        kind: NameKind::DataStream,
        indices: backing.iter().map(|s| s.to_string()).collect(),
    }
}

/// attack19b (held): a data stream the token may name reaches its backing indices
/// (`.ds-<stream>-<date>-<generation>`, covered by the stream's name), and nothing else: one
/// whose backing indices include a foreign index (`_data_stream/_modify` adds any index) or
/// another stream's backing index is refused when named and dropped from a wildcard; a
/// foreign stream's backing index never passes for an allowed one, nor does an allowed
/// stream's backing index reached through an alias (hidden: only a dot pattern names it).
#[test]
fn data_streams_reach_only_their_own_allowed_backing_indices() {
    let own = ".ds-logs-ds-2026.01.01-000001";
    let got = narrow("logs-ds", &[stream("logs-ds", &[own])], &logs()).unwrap();
    assert_eq!(
        got,
        Narrowed::AsIs {
            indices: vec![own.into()]
        }
    );
    for backing in [
        vec![own, "secret"],
        vec![own, ".ds-secret-2026.01.01-000001"],
        vec![".ds-logs-ds-2026.01.01"],
        vec![".ds-logs-ds-2026.1.01-000001"],
        vec![],
    ] {
        let names = [stream("logs-ds", &backing)];
        assert!(narrow("logs-ds", &names, &logs()).is_err(), "{backing:?}");
        let mut with_a = names.to_vec();
        with_a.push(index("logs-a"));
        assert_eq!(
            narrow("logs-*", &with_a, &logs()).unwrap(),
            Narrowed::Only {
                names: vec!["logs-a".into()],
                indices: vec!["logs-a".into()]
            },
            "{backing:?}"
        );
    }
    // An alias of an allowed stream's backing index, reported hidden (`upstream::resolve`).
    let names = [alias("logs-x", &[own]), hidden(own)];
    assert!(narrow("logs-x", &names, &logs()).is_err());
}
