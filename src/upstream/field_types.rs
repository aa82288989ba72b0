//! Field types for the histograms that could step through a range field (range28;
//! `es::dsl::histogram_fields`): the mapped type of each field a request's histograms need, in
//! every concrete index behind the search's index expression, asked of the backend with
//! `GET /{expr}/_field_caps?fields=a,b&include_unmapped=true` and cached briefly.
//!
//! With `_resolve/index` (`resolve.rs`) and the dialect (`dialect.rs`), the only I/O whose
//! result feeds an access decision: the answer is passed to `es::authorize` as data
//! (`es::Resolution::field_types`), which refuses a histogram whose field is, in an allowed index
//! the search reaches, of a type that could step, or of no type the answer gave.
//!
//! The lookup takes the resolver's index options (`expand_wildcards=open`,
//! `ignore_unavailable=true`, and `allow_no_indices=true` so that an expression matching
//! nothing is an empty answer): it expands the expression as the resolver did, whose indices the
//! decision is over; the search is forwarded with those indices (a wildcard narrowed to them).
//! One lookup per expression, its fields batched (in as many lookups as keep the request line
//! short). A field of the answer is read index by index: a type entry's `indices`, or, when the
//! field has one type only and no `indices`, every index the answer lists; the indices of its
//! `failures` are described as failed (unknown: refused), and so is an index a type entry
//! leaves unclear.
//!
//! Cache: per expression and field, for the resolver's TTL (`backend.resolve_cache_ttl`), at
//! most [`MAX_EXPRESSIONS`] expressions and [`MAX_FIELDS`] fields each. An answer is reused
//! only while it describes every concrete index the request's resolution found behind the
//! expression: an index created since is asked about at once. A mapping changed within the TTL
//! (an index deleted and created again with the field as a range, under the same name) is seen
//! when the entry expires.
//!
//! Invariant: a failed lookup fails the request (`UpstreamError::FieldTypes`: a 4xx answer to
//! the client's expression is a 400 as the resolver's, anything else a 502); nothing is guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::resolve::SEGMENT;
use super::{Upstream, UpstreamError};
use crate::es::dsl::histogram_fields::FieldTypes;
use crate::es::indices::resolution::ResolvedName;

/// Characters left as they are in a field name of the `fields` parameter (a comma separates
/// fields: a name never holds one, `histogram_fields` refuses it).
const FIELD: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'@');

/// Most expressions cached (a client cannot grow the cache without limit).
pub const MAX_EXPRESSIONS: usize = 10_000;
/// Most fields cached per expression (the oldest make room): as many as one request may
/// need on one expression (`histogram_fields::MAX_FIELDS`).
pub const MAX_FIELDS: usize = crate::es::dsl::histogram_fields::MAX_FIELDS;
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Longest request line a lookup's path and query make (Elasticsearch refuses lines over 4 KiB):
/// more fields go to another lookup.
const MAX_LOOKUP_LINE: usize = 3_000;

/// One expression's cached fields: when each was asked, and what the backend said.
type Cached = Vec<(Instant, Arc<FieldTypes>)>;

pub struct FieldTypesCache {
    ttl: Duration,
    cache: DashMap<String, Cached>,
}

impl FieldTypesCache {
    pub fn new(ttl: Duration) -> FieldTypesCache {
        FieldTypesCache {
            ttl,
            cache: DashMap::new(),
        }
    }

    /// `fields`' types behind `expr` (`names`: the request's resolution of it): each from the
    /// cache when it holds it (`cached`), the others asked of the backend in
    /// one lookup (`lookup`).
    pub async fn types<'f>(
        &self,
        upstream: &Upstream,
        authorization: Option<&http::HeaderValue>,
        expr: &str,
        fields: impl Iterator<Item = &'f str>,
        names: &[ResolvedName],
    ) -> Result<Vec<Arc<FieldTypes>>, UpstreamError> {
        let now = Instant::now();
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for field in fields {
            match self.cached(expr, field, names, now) {
                Some(types) => found.push(types),
                None => missing.push(field),
            }
        }
        if !missing.is_empty() {
            let asked = self.lookup(upstream, authorization, expr, &missing, now);
            found.extend(Box::pin(asked).await?);
        }
        Ok(found)
    }

    /// `field`'s types behind `expr` from the cache: younger than the TTL and describing every
    /// concrete index of `names` (the request's resolution of `expr`).
    fn cached(
        &self,
        expr: &str,
        field: &str,
        names: &[ResolvedName],
        now: Instant,
    ) -> Option<Arc<FieldTypes>> {
        let entry = self.cache.get(expr)?;
        let (at, types) = entry.iter().find(|(_, t)| t.field() == field)?;
        let covers = names
            .iter()
            .all(|n| n.indices.iter().all(|i| types.covers(i)));
        (now.duration_since(*at) < self.ttl && covers).then(|| Arc::clone(types))
    }

    /// `fields`' types behind `expr`, asked of the backend (one field's answer each, in order),
    /// and cached.
    async fn lookup(
        &self,
        upstream: &Upstream,
        authorization: Option<&http::HeaderValue>,
        expr: &str,
        fields: &[&str],
        now: Instant,
    ) -> Result<Vec<Arc<FieldTypes>>, UpstreamError> {
        let mut found = Vec::with_capacity(fields.len());
        for batch in batches(expr, fields) {
            let answer = fetch(upstream, authorization, expr, &batch).await?;
            found.extend(batch.iter().map(|f| Arc::new(answer.types_of(f))));
        }
        self.keep(expr, &found, now);
        Ok(found)
    }

    fn keep(&self, expr: &str, found: &[Arc<FieldTypes>], now: Instant) {
        if !self.cache.contains_key(expr) && self.cache.len() >= MAX_EXPRESSIONS {
            let ttl = self.ttl;
            self.cache
                .retain(|_, fields| fields.iter().any(|(at, _)| now.duration_since(*at) < ttl));
            if self.cache.len() >= MAX_EXPRESSIONS {
                return;
            }
        }
        let mut entry = self.cache.entry(expr.to_owned()).or_default();
        for types in found {
            entry.retain(|(_, t)| t.field() != types.field());
            if entry.len() >= MAX_FIELDS {
                // The oldest makes room.
                if let Some(oldest) = (0..entry.len()).min_by_key(|i| entry[*i].0) {
                    entry.swap_remove(oldest);
                }
            }
            entry.push((now, Arc::clone(types)));
        }
    }
}

/// `fields` in groups whose lookup's request line stays under [`MAX_LOOKUP_LINE`] (a field
/// longer than that alone in its group: the backend answers for it).
fn batches<'f>(expr: &str, fields: &[&'f str]) -> Vec<Vec<&'f str>> {
    let base = lookup_path(expr, &[]).len();
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut len = base;
    for f in fields {
        let more = utf8_percent_encode(f, FIELD).to_string().len() + 1;
        match out.last_mut() {
            Some(last) if len + more <= MAX_LOOKUP_LINE => last.push(f),
            _ => {
                out.push(vec![f]);
                len = base;
            }
        }
        len += more;
    }
    out
}

fn lookup_path(expr: &str, fields: &[&str]) -> String {
    let mut names = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            names.push(',');
        }
        names.extend(utf8_percent_encode(f, FIELD));
    }
    format!(
        "/{}/_field_caps?fields={names}&include_unmapped=true&ignore_unavailable=true\
         &allow_no_indices=true&expand_wildcards=open",
        utf8_percent_encode(expr, SEGMENT)
    )
}

/// One `_field_caps` round trip.
async fn fetch(
    upstream: &Upstream,
    authorization: Option<&http::HeaderValue>,
    expr: &str,
    fields: &[&str],
) -> Result<Answer, UpstreamError> {
    let path = lookup_path(expr, fields);
    let (status, body) = upstream.get_own(&path, authorization, MAX_RESPONSE).await?;
    match status {
        200 => parse(&body).ok_or(UpstreamError::FieldTypes(status)),
        // Nothing behind a concrete name: nothing described (an index found meanwhile by the
        // resolver is unknown, refused).
        404 => Ok(Answer::default()),
        other => Err(UpstreamError::FieldTypes(other)),
    }
}

#[derive(Deserialize)]
struct FieldCapsResponse {
    #[serde(default)]
    indices: Vec<String>,
    #[serde(default)]
    fields: BTreeMap<String, BTreeMap<String, TypeEntry>>,
    #[serde(default)]
    failures: Vec<Failure>,
}

#[derive(Deserialize)]
struct TypeEntry {
    indices: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Failure {
    #[serde(default)]
    indices: Vec<String>,
}

/// A `_field_caps` answer, read.
#[derive(Debug, Default)]
struct Answer {
    /// The indices the answer lists.
    indices: Vec<String>,
    /// The indices of its failures.
    failed: BTreeSet<String>,
    /// Field → type → the indices it has that type in (`None`: every listed index).
    fields: BTreeMap<String, BTreeMap<String, Option<Vec<String>>>>,
}

impl Answer {
    /// `field`'s type in each index the answer lists or reports failed.
    fn types_of(&self, field: &str) -> FieldTypes {
        let mut pairs: Vec<(String, Option<String>)> = Vec::new();
        let entries = self.fields.get(field);
        let mut typed: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        if let Some(entries) = entries {
            let only = entries.len() == 1;
            for (ty, indices) in entries {
                match indices {
                    Some(indices) => {
                        for i in indices {
                            // Two types for one index: unclear.
                            let slot = typed.entry(i.as_str()).or_insert(Some(ty.as_str()));
                            if *slot != Some(ty.as_str()) {
                                *slot = None;
                            }
                        }
                    }
                    // One type everywhere it is listed; beside others, unclear (left out).
                    None if only => {
                        for i in &self.indices {
                            typed.insert(i.as_str(), Some(ty.as_str()));
                        }
                    }
                    None => {}
                }
            }
        }
        for i in &self.indices {
            let ty = if self.failed.contains(i) {
                None
            } else {
                typed.get(i.as_str()).copied().flatten()
            };
            pairs.push((i.clone(), ty.map(str::to_string)));
        }
        for i in &self.failed {
            pairs.push((i.clone(), None));
        }
        FieldTypes::new(field, pairs)
    }
}

fn parse(body: &[u8]) -> Option<Answer> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if !v.is_object() {
        return None;
    }
    let r: FieldCapsResponse = serde_json::from_value(v).ok()?;
    Some(Answer {
        indices: r.indices,
        failed: r.failures.into_iter().flat_map(|f| f.indices).collect(),
        fields: r
            .fields
            .into_iter()
            .map(|(f, types)| {
                let types = types.into_iter().map(|(t, e)| (t, e.indices)).collect();
                (f, types)
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::es::indices::resolution::NameKind;

    fn answer(body: &str) -> Answer {
        parse(body.as_bytes()).expect("an answer")
    }

    fn by_index(t: &FieldTypes, indices: &[&str]) -> Vec<Option<String>> {
        indices
            .iter()
            .map(|i| t.type_in(i).map(str::to_string))
            .collect()
    }

    /// Both test backends' shape (osmem and noida answer alike): one type without `indices`
    /// is every listed index's; several each name theirs; `unmapped` where it is not mapped.
    #[test]
    fn an_answer_is_read_index_by_index() {
        let a = answer(
            r#"{"indices":["r1","r2"],"fields":{
            "n":{"long":{"type":"long","aggregatable":true,"searchable":true}},
            "x":{"long":{"type":"long","indices":["r1"]},"long_range":{"type":"long_range","indices":["r2"]}},
            "dtr":{"date_range":{"type":"date_range","indices":["r1"]},"unmapped":{"type":"unmapped","indices":["r2"]}}}}"#,
        );
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            by_index(&a.types_of("n"), &["r1", "r2"]),
            vec![some("long"), some("long")]
        );
        assert_eq!(
            by_index(&a.types_of("x"), &["r1", "r2"]),
            vec![some("long"), some("long_range")]
        );
        assert_eq!(
            by_index(&a.types_of("dtr"), &["r1", "r2"]),
            vec![some("date_range"), some("unmapped")]
        );
        // A field the answer does not name: every index described, none typed.
        let t = a.types_of("gone");
        assert!(t.covers("r1") && t.covers("r2"));
        assert_eq!(by_index(&t, &["r1", "r2"]), vec![None, None]);
        assert!(!t.covers("r3"));
    }

    /// Failures, a type entry without `indices` beside others, an index under two types: each
    /// such index described as unknown.
    #[test]
    fn failures_and_unclear_entries_are_unknown() {
        let a = answer(
            r#"{"indices":["a","b","c"],"fields":{
            "f":{"long":{"type":"long"},"long_range":{"type":"long_range","indices":["b"]}},
            "g":{"long":{"type":"long","indices":["a","c"]},"keyword":{"type":"keyword","indices":["c"]}},
            "h":{"long":{"type":"long"}}},
            "failed_indices":1,"failures":[{"indices":["d"],"failure":{"type":"x","reason":"y"}}]}"#,
        );
        let some = |s: &str| Some(s.to_string());
        let all = ["a", "b", "c", "d"];
        assert_eq!(
            by_index(&a.types_of("f"), &all),
            vec![None, some("long_range"), None, None]
        );
        assert_eq!(
            by_index(&a.types_of("g"), &all),
            vec![some("long"), None, None, None]
        );
        assert_eq!(
            by_index(&a.types_of("h"), &all),
            vec![some("long"), some("long"), some("long"), None]
        );
        assert!(a.types_of("h").covers("d"));
        assert!(parse(b"[]").is_none());
        assert!(parse(b"not json").is_none());
        assert!(parse(br#"{"indices":"a"}"#).is_none());
    }

    fn names(indices: &[&str]) -> Vec<ResolvedName> {
        indices
            .iter()
            .map(|i| ResolvedName {
                name: i.to_string(),
                kind: NameKind::Index,
                indices: vec![i.to_string()],
            })
            .collect()
    }

    /// The cache answers within the TTL while it describes every resolved index; an index the
    /// entry does not describe, or an expired entry, asks again. Bounded.
    #[test]
    fn the_cache_answers_while_young_and_covering() {
        let cache = FieldTypesCache::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let a = answer(r#"{"indices":["logs-a"],"fields":{"t":{"date":{"type":"date"}}}}"#);
        cache.keep("logs-*", &[Arc::new(a.types_of("t"))], t0);
        let hit = cache.cached(
            "logs-*",
            "t",
            &names(&["logs-a"]),
            t0 + Duration::from_secs(4),
        );
        assert_eq!(
            hit.map(|t| t.type_in("logs-a").map(str::to_string)),
            Some(Some("date".into()))
        );
        assert!(cache
            .cached(
                "logs-*",
                "t",
                &names(&["logs-a"]),
                t0 + Duration::from_secs(5)
            )
            .is_none());
        assert!(cache
            .cached("logs-*", "t", &names(&["logs-a", "logs-new"]), t0)
            .is_none());
        assert!(cache
            .cached("logs-*", "u", &names(&["logs-a"]), t0)
            .is_none());
        assert!(cache
            .cached("logs-a", "t", &names(&["logs-a"]), t0)
            .is_none());
        // Fields per expression: the oldest makes room.
        for i in 0..MAX_FIELDS {
            let f = format!("f{i}");
            let t = Arc::new(FieldTypes::new(f, vec![]));
            cache.keep("logs-*", &[t], t0 + Duration::from_millis(1 + i as u64));
        }
        assert_eq!(cache.cache.get("logs-*").unwrap().len(), MAX_FIELDS);
        assert!(cache.cached("logs-*", "t", &[], t0).is_none());
        assert!(cache.cached("logs-*", "f0", &[], t0).is_some());
    }

    #[test]
    fn lookups_are_batched_under_the_line_limit() {
        let long: Vec<String> = (0..200).map(|i| format!("field.number_{i:04}")).collect();
        let fields: Vec<&str> = long.iter().map(String::as_str).collect();
        let groups = batches("logs-*", &fields);
        assert!(groups.len() > 1);
        assert_eq!(groups.concat(), fields);
        for g in &groups {
            assert!(
                lookup_path("logs-*", g).len() <= MAX_LOOKUP_LINE,
                "{}",
                g.len()
            );
        }
        assert_eq!(
            lookup_path("logs-*,x", &["@timestamp", "a b"]),
            "/logs-*,x/_field_caps?fields=@timestamp,a%20b&include_unmapped=true\
             &ignore_unavailable=true&allow_no_indices=true&expand_wildcards=open"
        );
    }
}
