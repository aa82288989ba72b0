//! Index resolution: the concrete indices behind an index expression, asked of the backend
//! with `GET /_resolve/index/{expr}?expand_wildcards=open`, cached briefly.
//!
//! One of the I/O steps whose result feeds an access decision (with `field_types.rs` and
//! `dialect.rs`); the result is passed to `es::authorize` as data. Aliases and data streams are expanded to their indices so that an
//! alias named like an allowed pattern cannot open a foreign index. Wildcards are expanded to
//! open, non-hidden names only (Elasticsearch adds hidden dot-names for a wildcard starting
//! with a dot; `es::indices::index` lets only dot patterns reach those). A name the answer marks hidden
//! (named explicitly) is reported as `NameKind::HiddenIndex` so that `es::indices::resolution` refuses
//! it (`es::indices::hidden`); an index an alias points at that the answer does not describe is looked
//! up by name, and one the backend still does not describe is reported hidden.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::{Upstream, UpstreamError};
use crate::es::indices::resolution::{NameKind, ResolvedName};

/// Characters left as they are in an index expression path segment (the field types lookup's
/// too: it asks about the same expressions).
pub(super) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*')
    .remove(b',')
    .remove(b'+');

/// Bounded so that a client cannot grow the cache without limit with distinct expressions.
const MAX_ENTRIES: usize = 10_000;
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Alias targets asked about in one `_resolve/index` request (index names are at most 255 bytes).
const TARGETS_PER_LOOKUP: usize = 10;

pub struct Resolver {
    ttl: Duration,
    cache: DashMap<String, (Instant, Arc<[ResolvedName]>)>,
}

#[derive(Deserialize)]
struct ResolveResponse {
    #[serde(default)]
    indices: Vec<ResolvedIndex>,
    #[serde(default)]
    aliases: Vec<ResolvedAlias>,
    #[serde(default)]
    data_streams: Vec<ResolvedDataStream>,
}

#[derive(Deserialize)]
struct ResolvedIndex {
    name: String,
    #[serde(default)]
    attributes: Vec<String>,
}

#[derive(Deserialize)]
struct ResolvedAlias {
    name: String,
    #[serde(default)]
    indices: Vec<String>,
}

#[derive(Deserialize)]
struct ResolvedDataStream {
    name: String,
    #[serde(default)]
    backing_indices: Vec<String>,
}

impl Resolver {
    pub fn new(ttl: Duration) -> Resolver {
        Resolver {
            ttl,
            cache: DashMap::new(),
        }
    }

    /// The names behind `expr` from the cache, when a resolution younger than the TTL is
    /// there (what [`Resolver::resolve`] answers without asking the backend).
    pub fn cached(&self, expr: &str, now: Instant) -> Option<Arc<[ResolvedName]>> {
        let hit = self.cache.get(expr)?;
        (now.duration_since(hit.0) < self.ttl).then(|| Arc::clone(&hit.1))
    }

    /// The names behind `expr` (a comma list as esgate would forward it), each with its
    /// concrete indices.
    pub async fn resolve(
        &self,
        upstream: &Upstream,
        authorization: Option<&http::HeaderValue>,
        expr: &str,
        now: Instant,
    ) -> Result<Arc<[ResolvedName]>, UpstreamError> {
        if let Some(names) = self.cached(expr, now) {
            return Ok(names);
        }
        let mut concrete = fetch(upstream, authorization, expr).await?;
        let unknown = undescribed_alias_targets(&concrete);
        // In slices, so that an alias over many indices does not make an over-long request line.
        for chunk in unknown.chunks(TARGETS_PER_LOOKUP) {
            let targets = fetch(upstream, authorization, &chunk.join(",")).await?;
            concrete.extend(hidden_targets(chunk, targets));
        }
        let concrete: Arc<[ResolvedName]> = concrete.into();
        if !reusable(expr, &concrete) {
            return Ok(concrete);
        }
        if self.cache.len() >= MAX_ENTRIES {
            self.cache
                .retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
        }
        if self.cache.len() < MAX_ENTRIES {
            self.cache
                .insert(expr.to_owned(), (now, Arc::clone(&concrete)));
        }
        Ok(concrete)
    }
}

/// Whether a resolution of `expr` may answer later requests: every explicit element (no `*`,
/// not an exclusion) resolved to an index. esgate forwards explicit names as they are (a
/// wildcard only as the concrete indices found allowed, `es::indices::resolution::narrow`), so
/// the backend resolves them again when the search runs: an alias or data stream named
/// explicitly, or a name that was missing, may stand for other indices by then (an alias
/// repointed at a foreign index, a new alias of a foreign index under a missing name:
/// R19-IX-01). Those are resolved again for every request; an index stays an index unless it
/// is deleted (an alias cannot share an index's name).
fn reusable(expr: &str, names: &[ResolvedName]) -> bool {
    expr.split(',')
        .filter(|e| !e.contains('*') && !e.starts_with('-'))
        .all(|e| {
            names
                .iter()
                .any(|n| n.name == e && matches!(n.kind, NameKind::Index | NameKind::HiddenIndex))
        })
}

/// One `_resolve/index` round trip (wildcards: open, non-hidden names).
async fn fetch(
    upstream: &Upstream,
    authorization: Option<&http::HeaderValue>,
    expr: &str,
) -> Result<Vec<ResolvedName>, UpstreamError> {
    let path = format!(
        "/_resolve/index/{}?expand_wildcards=open&ignore_unavailable=true",
        utf8_percent_encode(expr, SEGMENT)
    );
    let (status, body) = upstream.get_own(&path, authorization, MAX_RESPONSE).await?;
    match status {
        200 => parse(&body).ok_or(UpstreamError::Resolve(status)),
        // A concrete name that does not exist: nothing behind it.
        404 => Ok(vec![]),
        other => Err(UpstreamError::Resolve(other)),
    }
}

/// Indices aliases point at that the answer does not list as indices (their hidden attribute
/// is unknown), sorted.
fn undescribed_alias_targets(names: &[ResolvedName]) -> Vec<String> {
    let described: BTreeSet<&str> = names
        .iter()
        .filter(|n| matches!(n.kind, NameKind::Index | NameKind::HiddenIndex))
        .map(|n| n.name.as_str())
        .collect();
    names
        .iter()
        .filter(|n| n.kind == NameKind::Alias)
        .flat_map(|n| n.indices.iter())
        .filter(|i| !described.contains(i.as_str()))
        .cloned()
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect()
}

/// From the answer about `unknown` alias targets: those that are hidden, or that the backend
/// did not describe at all (unknown is treated as hidden), as `HiddenIndex` names.
fn hidden_targets(unknown: &[String], answer: Vec<ResolvedName>) -> Vec<ResolvedName> {
    let visible: BTreeSet<&str> = answer
        .iter()
        .filter(|n| n.kind == NameKind::Index)
        .map(|n| n.name.as_str())
        .collect();
    unknown
        .iter()
        .filter(|i| !visible.contains(i.as_str()))
        .map(|i| ResolvedName {
            name: i.clone(),
            kind: NameKind::HiddenIndex,
            indices: vec![i.clone()],
        })
        .collect()
}

/// The names in a `_resolve/index` answer: indices, aliases with their indices, data streams
/// with their backing indices.
fn parse(body: &[u8]) -> Option<Vec<ResolvedName>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if !v.is_object() {
        return None;
    }
    let r: ResolveResponse = serde_json::from_value(v).ok()?;
    let mut out: Vec<ResolvedName> = r
        .indices
        .into_iter()
        .map(|i| ResolvedName {
            indices: vec![i.name.clone()],
            kind: if i.attributes.iter().any(|a| a == "hidden") {
                NameKind::HiddenIndex
            } else {
                NameKind::Index
            },
            name: i.name,
        })
        .collect();
    out.extend(r.aliases.into_iter().map(|a| ResolvedName {
        name: a.name,
        kind: NameKind::Alias,
        indices: dedup(a.indices),
    }));
    out.extend(r.data_streams.into_iter().map(|d| ResolvedName {
        name: d.name,
        kind: NameKind::DataStream,
        indices: dedup(d.backing_indices),
    }));
    Some(out)
}

fn dedup(v: Vec<String>) -> Vec<String> {
    v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_data_streams_expand_to_their_indices() {
        let body = br#"{"indices":[{"name":"logs-a","aliases":["logs-sa"]}],
            "aliases":[{"name":"logs-sa","indices":["secret"]}],
            "data_streams":[{"name":"ds","backing_indices":[".ds-ds-1"],"timestamp_field":"@timestamp"}]}"#;
        let names = parse(body).unwrap();
        let summary: Vec<(&str, NameKind, Vec<&str>)> = names
            .iter()
            .map(|n| {
                (
                    n.name.as_str(),
                    n.kind,
                    n.indices.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("logs-a", NameKind::Index, vec!["logs-a"]),
                ("logs-sa", NameKind::Alias, vec!["secret"]),
                ("ds", NameKind::DataStream, vec![".ds-ds-1"]),
            ]
        );
    }

    #[test]
    fn hidden_indices_are_reported_as_such() {
        let body = br#"{"indices":[{"name":"logs-a","attributes":["open"]},
            {"name":"logs-h","aliases":["logs-ha"],"attributes":["hidden","open"]}],
            "aliases":[{"name":"logs-ha","indices":["logs-h"]}],"data_streams":[]}"#;
        let kinds: Vec<(String, NameKind)> = parse(body)
            .unwrap()
            .into_iter()
            .map(|n| (n.name, n.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("logs-a".to_string(), NameKind::Index),
                ("logs-h".to_string(), NameKind::HiddenIndex),
                ("logs-ha".to_string(), NameKind::Alias),
            ]
        );
    }

    #[test]
    fn alias_targets_not_described_are_looked_up_and_unknown_ones_count_as_hidden() {
        let first = parse(
            br#"{"indices":[{"name":"logs-a","attributes":["open"]}],
            "aliases":[{"name":"logs-x","indices":["logs-a","logs-h","gone"]},
                       {"name":"logs-y","indices":["other"]}]}"#,
        )
        .unwrap();
        let unknown = undescribed_alias_targets(&first);
        assert_eq!(unknown, vec!["gone", "logs-h", "other"]);
        let answer = parse(
            br#"{"indices":[{"name":"logs-h","attributes":["hidden","open"]},
            {"name":"other","attributes":["open"]}]}"#,
        )
        .unwrap();
        let hidden: Vec<String> = hidden_targets(&unknown, answer)
            .into_iter()
            .map(|n| {
                assert_eq!(n.kind, NameKind::HiddenIndex);
                n.name
            })
            .collect();
        assert_eq!(hidden, vec!["gone", "logs-h"]);
    }

    /// R19-IX-01: only a resolution whose explicit names are all indices is cached; an alias,
    /// a data stream or a missing name is resolved again for every request.
    #[test]
    fn only_resolutions_of_indices_are_reused() {
        let names = parse(
            br#"{"indices":[{"name":"logs-a","attributes":["open"]},
            {"name":"logs-h","attributes":["hidden","open"]}],
            "aliases":[{"name":"logs-view","indices":["logs-a"]}],
            "data_streams":[{"name":"logs-ds","backing_indices":[".ds-logs-ds-2026.01.01-000001"]}]}"#,
        )
        .unwrap();
        for expr in [
            "logs-a",
            "logs-a,logs-h",
            "logs-*",
            "logs-*,-logs-view",
            "logs-a,l*",
        ] {
            assert!(reusable(expr, &names), "{expr}");
        }
        for expr in [
            "logs-view",
            "logs-ds",
            "logs-new",
            "logs-a,logs-view",
            "logs-*,logs-new",
        ] {
            assert!(!reusable(expr, &names), "{expr}");
        }
        assert!(!reusable("logs-new", &[]));
    }

    #[test]
    fn an_unexpected_answer_is_not_an_empty_resolution() {
        assert!(parse(b"[]").is_none());
        assert!(parse(b"not json").is_none());
    }
}
