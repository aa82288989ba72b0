//! What an index expression may reach, once the backend has said what is behind it.
//!
//! Elasticsearch's own security resolves a wildcard to the *authorized* names only, and refuses
//! an explicitly named index the user may not read. esgate does the same with the token's
//! patterns:
//! - an element named explicitly (no `*`) must be allowed: an index matching the patterns, or an
//!   alias or data stream whose every index matches; otherwise the request is refused;
//! - a wildcard element reaches only the allowed names it matches; others (a foreign index, an
//!   alias named like an allowed pattern but pointing at a foreign index) are dropped.
//!
//! An expression of explicit names only is forwarded as it is. One with a wildcard or an
//! exclusion is never forwarded: the backend would expand it again, not necessarily the way
//! `_resolve/index` did, so the concrete allowed indices are forwarded in its place.
//!
//! Invariant: pure; takes the backend's answer as data.

use std::collections::BTreeSet;

use crate::indices::hidden;
use crate::indices::index::concrete_allowed;
use crate::Rejection;

/// What kind of name the backend resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Index,
    Alias,
    DataStream,
    /// An index the backend reports as hidden (see `indices::hidden`). Also used for an index an
    /// alias points at whose attributes the backend did not report (treated as hidden).
    HiddenIndex,
}

/// One name behind an expression, with the concrete indices it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedName {
    pub name: String,
    pub kind: NameKind,
    /// For an index, itself; for an alias, its indices; for a data stream, its backing indices.
    pub indices: Vec<String>,
}

/// The outcome for one expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Narrowed {
    /// Every name behind the expression is allowed: forward it unchanged.
    AsIs { indices: Vec<String> },
    /// The expression expands (or something was dropped): forward exactly these names instead.
    Only {
        names: Vec<String>,
        indices: Vec<String>,
    },
    /// Only wildcard matches, all dropped: the expression reaches nothing the token may see.
    Nothing,
}

/// The hidden indices among the resolved names.
fn hidden_names(names: &[ResolvedName]) -> BTreeSet<&str> {
    names
        .iter()
        .filter(|n| n.kind == NameKind::HiddenIndex)
        .map(|n| n.name.as_str())
        .collect()
}

/// Whether one resolved name may be read with `patterns` (an alias or data stream only when
/// every index behind it may).
fn name_allowed(n: &ResolvedName, hidden_names: &BTreeSet<&str>, patterns: &[String]) -> bool {
    match n.kind {
        NameKind::Index => concrete_allowed(&n.name, patterns),
        NameKind::HiddenIndex => {
            concrete_allowed(&n.name, patterns) && hidden::allows(&n.name, patterns)
        }
        NameKind::Alias => {
            !n.indices.is_empty()
                && n.indices
                    .iter()
                    .all(|i| hidden::alias_target_allowed(i, hidden_names, patterns))
        }
        NameKind::DataStream => {
            !n.indices.is_empty() && n.indices.iter().all(|i| concrete_allowed(i, patterns))
        }
    }
}

/// Whether every name behind an expression may be read (nothing would be refused or dropped):
/// what a truthful "read" privilege on that expression means.
pub fn every_name_allowed(names: &[ResolvedName], patterns: &[String]) -> bool {
    let hidden_names = hidden_names(names);
    names
        .iter()
        .all(|n| name_allowed(n, &hidden_names, patterns))
}

/// Decides what `expr` (a comma list as esgate would forward it) may reach.
///
/// Sets of a few names are sorted lists here, not tree sets: this runs on every enforced
/// request (issue 10), and `narrow_matches_the_set_version` (tests) holds it to the former
/// `BTreeSet` version.
pub fn narrow(
    expr: &str,
    names: &[ResolvedName],
    patterns: &[String],
) -> Result<Narrowed, Rejection> {
    let is_explicit = |e: &str| !e.contains('*') && !e.starts_with('-');
    // Room for every index at once (issue 10: two regrowths for an expression of two names).
    let mut indices: Vec<String> = Vec::with_capacity(names.iter().map(|n| n.indices.len()).sum());
    let mut dropped = false;
    // Read only for an alias's indices (`name_allowed`): not built for the rest (issue 10: a
    // set built and dropped on every request for nothing).
    let hidden_names = if names.iter().any(|n| n.kind == NameKind::Alias) {
        hidden_names(names)
    } else {
        BTreeSet::new()
    };
    for n in names {
        if name_allowed(n, &hidden_names, patterns) {
            indices.extend(n.indices.iter().cloned());
        } else if expr.split(',').any(|e| e == n.name && is_explicit(e)) {
            return Err(Rejection::forbidden(format!(
                "index [{}] is not allowed for this token",
                n.name
            )));
        } else {
            dropped = true;
        }
    }
    indices.sort_unstable();
    indices.dedup();
    // A wildcard or an exclusion is expanded by the backend again when the search runs, and
    // not necessarily the way `_resolve/index` expanded it (aliases, exclusions, missing
    // names with ignore_unavailable): never forward one. Forward the concrete indices found
    // allowed instead, plus explicit names that resolved to nothing (the backend answers for
    // those as it would have).
    let expands = expr.split(',').any(|e| !is_explicit(e));
    if !dropped && !expands {
        return Ok(Narrowed::AsIs { indices });
    }
    let mut forward: Vec<String> = indices.clone();
    forward.extend(
        expr.split(',')
            .filter(|e| is_explicit(e) && !names.iter().any(|n| n.name == *e))
            .map(str::to_string),
    );
    forward.sort_unstable();
    forward.dedup();
    if forward.is_empty() {
        return Ok(Narrowed::Nothing);
    }
    Ok(Narrowed::Only {
        names: forward,
        indices,
    })
}

#[cfg(test)]
mod tests;
