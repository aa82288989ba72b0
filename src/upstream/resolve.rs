//! Index resolution: the concrete indices behind an index expression, asked of the backend
//! with `GET /_resolve/index/{expr}?expand_wildcards=open`, cached briefly.
//!
//! This is the one I/O step whose result feeds an access decision; the result is passed to
//! `es::authorize` as data. Aliases and data streams are expanded to their indices so that an
//! alias named like an allowed pattern cannot open a foreign index.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::{Upstream, UpstreamError};
use crate::es::resolution::{NameKind, ResolvedName};

/// Characters left as they are in an index expression path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*')
    .remove(b',')
    .remove(b'+');

/// Bounded so that a client cannot grow the cache without limit with distinct expressions.
const MAX_ENTRIES: usize = 10_000;
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

pub struct Resolver {
    ttl: Duration,
    cache: DashMap<String, (Instant, Arc<Vec<ResolvedName>>)>,
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

    /// The names behind `expr` (a comma list as esgate would forward it), each with its
    /// concrete indices.
    pub async fn resolve(
        &self,
        upstream: &Upstream,
        authorization: Option<&http::HeaderValue>,
        expr: &str,
        now: Instant,
    ) -> Result<Arc<Vec<ResolvedName>>, UpstreamError> {
        if let Some(hit) = self.cache.get(expr) {
            if now.duration_since(hit.0) < self.ttl {
                return Ok(Arc::clone(&hit.1));
            }
        }
        let path = format!(
            "/_resolve/index/{}?expand_wildcards=open&ignore_unavailable=true",
            utf8_percent_encode(expr, SEGMENT)
        );
        let (status, body) = upstream.get_own(&path, authorization, MAX_RESPONSE).await?;
        let concrete = match status {
            200 => parse(&body).ok_or(UpstreamError::Resolve(status))?,
            // A concrete name that does not exist: nothing behind it.
            404 => vec![],
            other => return Err(UpstreamError::Resolve(other)),
        };
        let concrete = Arc::new(concrete);
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
            name: i.name,
            kind: NameKind::Index,
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
    fn an_unexpected_answer_is_not_an_empty_resolution() {
        assert!(parse(b"[]").is_none());
        assert!(parse(b"not json").is_none());
    }
}
