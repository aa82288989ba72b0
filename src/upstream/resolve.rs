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
    cache: DashMap<String, (Instant, Arc<Vec<String>>)>,
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
    #[serde(default)]
    indices: Vec<String>,
}

#[derive(Deserialize)]
struct ResolvedDataStream {
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

    /// The concrete indices behind `expr` (a comma list as esgate will forward it).
    pub async fn resolve(
        &self,
        upstream: &Upstream,
        authorization: Option<&http::HeaderValue>,
        expr: &str,
        now: Instant,
    ) -> Result<Arc<Vec<String>>, UpstreamError> {
        if let Some(hit) = self.cache.get(expr) {
            if now.duration_since(hit.0) < self.ttl {
                return Ok(Arc::clone(&hit.1));
            }
        }
        let path = format!(
            "/_resolve/index/{}?expand_wildcards=open",
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

/// Every concrete index named by a `_resolve/index` answer: indices themselves, the indices
/// behind aliases and the backing indices of data streams.
fn parse(body: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if !v.is_object() {
        return None;
    }
    let r: ResolveResponse = serde_json::from_value(v).ok()?;
    let mut out = BTreeSet::new();
    out.extend(r.indices.into_iter().map(|i| i.name));
    for a in r.aliases {
        out.extend(a.indices);
    }
    for d in r.data_streams {
        out.extend(d.backing_indices);
    }
    Some(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_data_streams_expand_to_their_indices() {
        let body = br#"{"indices":[{"name":"logs-a","aliases":["logs-sa"]}],
            "aliases":[{"name":"logs-sa","indices":["secret"]}],
            "data_streams":[{"name":"ds","backing_indices":[".ds-ds-1"],"timestamp_field":"@timestamp"}]}"#;
        assert_eq!(parse(body).unwrap(), vec![".ds-ds-1", "logs-a", "secret"]);
    }

    #[test]
    fn an_unexpected_answer_is_not_an_empty_resolution() {
        assert!(parse(b"[]").is_none());
        assert!(parse(b"not json").is_none());
    }
}
