//! Elasticsearch async search (`_async_search`) for `read` tokens, with ids bound to the token.
//!
//! A submit (`POST [/{index}]/_async_search`) is rewritten exactly like `_search` (the token's
//! filters injected, indices narrowed, the `pit` form without an index) by `flow`; this module
//! owns what is particular to async search: the id routes (poll `GET /_async_search/{id}`,
//! `GET /_async_search/status/{id}`, `DELETE /_async_search/{id}`) and sealing the ids that
//! answers carry (`id`, and the `response.pit_id` of a search on a point in time).
//!
//! Invariant: pure. A poll, status or delete reaches the backend only with an id sealed for the
//! presenting token as an async search id (`continuation::open`); the forwarded path is built
//! from that opened id, percent-encoded so that it stays one path segment. Every answer's ids
//! are replaced with their sealed forms before the client sees them.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::continuation::{self, Binding, IdKind, Seal};
use super::ordinals::Positions;
use super::{Method, Rejection, Scope};

/// What a submit, poll or status answer carries: an async search id in `id` (only while the
/// search runs, or with `keep_on_completion=true`), sealed for the token.
pub const SEAL: Seal = Seal {
    field: "id",
    kind: IdKind::AsyncSearch,
    required: false,
};

/// Longest path esgate forwards (as in `flow`): ES refuses request lines over 4 KiB.
const MAX_FORWARDED_PATH: usize = 3500;

/// Everything but ASCII letters, digits, `-` and `_` is percent-encoded in a forwarded id, so
/// that a backend id can never be read as `/`, `.`/`..`, a query or a fragment.
const ID_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// The three operations on an existing async search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsyncOp {
    /// `GET /_async_search/{id}`: the (partial or final) results.
    Get,
    /// `GET /_async_search/status/{id}`: progress without results.
    Status,
    /// `DELETE /_async_search/{id}`.
    Delete,
}

impl AsyncOp {
    /// The action name used in permits, audit records and metrics.
    pub fn action(self) -> &'static str {
        match self {
            AsyncOp::Get => "async_search_get",
            AsyncOp::Status => "async_search_status",
            AsyncOp::Delete => "async_search_delete",
        }
    }
}

/// The action name of a submit.
pub const SUBMIT_ACTION: &str = "async_search_submit";

/// The path suffix a search-like route is forwarded to.
pub(super) fn search_api(async_submit: bool) -> &'static str {
    if async_submit {
        "/_async_search"
    } else {
        "/_search"
    }
}

/// The upstream request for a poll, status or delete presenting `sealed` (the id as decoded
/// from the request path): its method, its path with the backend id, and the seal for its
/// answer. Another token's id, another kind of id, a forged or a raw backend id is refused.
pub(super) fn by_id(
    op: AsyncOp,
    sealed: &str,
    scope: &Scope,
) -> Result<(Method, String, Option<Seal>, Option<Positions>), Rejection> {
    let opened = continuation::open(&scope.ids, IdKind::AsyncSearch, sealed)?;
    let (positions, backend_id) = split_payload(&opened)
        .ok_or_else(|| Rejection::forbidden("this async search id was not issued to this token"))?;
    if backend_id.is_empty() {
        return Err(Rejection::forbidden(
            "this async search id was not issued to this token",
        ));
    }
    let encoded = utf8_percent_encode(backend_id, ID_SEGMENT).to_string();
    let (method, path, seal) = match op {
        AsyncOp::Get => (Method::Get, format!("/_async_search/{encoded}"), Some(SEAL)),
        AsyncOp::Status => (
            Method::Get,
            format!("/_async_search/status/{encoded}"),
            Some(SEAL),
        ),
        AsyncOp::Delete => (Method::Delete, format!("/_async_search/{encoded}"), None),
    };
    if path.len() > MAX_FORWARDED_PATH {
        return Err(Rejection::forbidden("the async search id is too long"));
    }
    // Only a poll's answer carries hits whose ordinal sort values must be sealed.
    let positions = positions.filter(|_| op == AsyncOp::Get);
    Ok((method, path, seal, positions))
}

/// Marks a sealed async search payload that carries the ordinal sort positions of its search
/// (see `ordinals`) before the backend id: backend ids never contain this character.
const POSITIONS_MARK: char = '\u{1}';

/// The sealed form of an async search id, carrying `positions` to the polls of its search.
pub fn seal_id(binding: &Binding, backend_id: &str, positions: Option<&Positions>) -> String {
    let payload = match positions {
        None => backend_id.to_string(),
        Some(p) => format!("{POSITIONS_MARK}{}{POSITIONS_MARK}{backend_id}", p.encode()),
    };
    continuation::seal(binding, IdKind::AsyncSearch, &payload)
}

/// An opened async search payload: the positions it carries, if any, and the backend id.
fn split_payload(opened: &str) -> Option<(Option<Positions>, &str)> {
    let Some(rest) = opened.strip_prefix(POSITIONS_MARK) else {
        return Some((None, opened));
    };
    let (encoded, backend_id) = rest.split_once(POSITIONS_MARK)?;
    Some((Some(Positions::decode(encoded)?), backend_id))
}

/// Seals the ids in an async search answer (any status: a failed search answers with its error
/// status and still carries its `id`): the top-level `id` as an async search id and
/// `response.pit_id` as a point-in-time id. The rest of the body keeps its bytes when the ids
/// can be replaced textually (numbers keep their precision); otherwise the body is
/// re-serialised with the sealed ids. A body that is not JSON is returned unchanged.
pub fn seal_response(binding: &Binding, body: &[u8]) -> Vec<u8> {
    seal_response_with(binding, body, None)
}

/// [`seal_response`] for an async search whose answers carry ordinal sort values at
/// `positions`: its id carries them to the polls.
pub fn seal_response_with(
    binding: &Binding,
    body: &[u8],
    positions: Option<&Positions>,
) -> Vec<u8> {
    let seal_one = |kind: IdKind, id: &str| match kind {
        IdKind::AsyncSearch => seal_id(binding, id, positions),
        _ => continuation::seal(binding, kind, id),
    };
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let ids = ids_in(&parsed);
    if ids.is_empty() {
        return body.to_vec();
    }
    let mut text = String::from_utf8_lossy(body).into_owned();
    for (kind, backend_id) in &ids {
        // An id without JSON escapes appears verbatim in quotes; it is a random, unguessable
        // value, so every occurrence is this id.
        let needle = format!("\"{backend_id}\"");
        let sealed = format!("\"{}\"", seal_one(*kind, backend_id));
        text = text.replace(&needle, &sealed);
    }
    let replaced_all = serde_json::from_str::<Value>(&text)
        .map(|v| ids_in(&v).iter().all(|(k, id)| is_sealed(binding, *k, id)))
        .unwrap_or(false);
    if replaced_all {
        return text.into_bytes();
    }
    // The backend escaped something in an id: rebuild the body instead.
    let mut v = parsed;
    for (kind, backend_id) in ids {
        let sealed = Value::String(seal_one(kind, &backend_id));
        match kind {
            IdKind::AsyncSearch => {
                if let Some(slot) = v.get_mut("id") {
                    *slot = sealed;
                }
            }
            _ => {
                if let Some(slot) = v.get_mut("response").and_then(|r| r.get_mut("pit_id")) {
                    *slot = sealed;
                }
            }
        }
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| b"{}".to_vec())
}

/// The ids to seal in an answer, with their kinds.
fn ids_in(v: &Value) -> Vec<(IdKind, String)> {
    let mut out = Vec::new();
    if let Some(id) = v
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        out.push((IdKind::AsyncSearch, id.to_owned()));
    }
    if let Some(pit) = v
        .get("response")
        .and_then(|r| r.get("pit_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        out.push((IdKind::Pit, pit.to_owned()));
    }
    out
}

fn is_sealed(binding: &Binding, kind: IdKind, id: &str) -> bool {
    continuation::open(binding, kind, id).is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::continuation::{open, seal, IdKey};
    use crate::{FilterSet, RejectKind};

    const BACKEND_ID: &str = "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc=";

    fn binding(token: &str) -> Binding {
        Binding {
            token_id: token.into(),
            key: Arc::new(IdKey::new([3; 32])),
        }
    }

    fn scope(token: &str) -> Scope {
        Scope {
            filters: FilterSet::new([("tenant".to_string(), "a".to_string())]),
            indices: vec!["logs-*".to_string()],
            ids: binding(token),
            guard: Default::default(),
        }
    }

    #[test]
    fn poll_status_and_delete_forward_the_backend_id_encoded_in_one_segment() {
        let s = scope("tok_a");
        let sealed = seal(&s.ids, IdKind::AsyncSearch, BACKEND_ID);
        let encoded = "FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEaMkZ5QTVrSTZSaVN3WlNFVmtlWHJsdzoxMDc%3D";
        let cases = [
            (
                AsyncOp::Get,
                Method::Get,
                format!("/_async_search/{encoded}"),
                Some(SEAL),
            ),
            (
                AsyncOp::Status,
                Method::Get,
                format!("/_async_search/status/{encoded}"),
                Some(SEAL),
            ),
            (
                AsyncOp::Delete,
                Method::Delete,
                format!("/_async_search/{encoded}"),
                None,
            ),
        ];
        for (op, method, path, seal_spec) in cases {
            assert_eq!(
                by_id(op, &sealed, &s).unwrap(),
                (method, path, seal_spec, None),
                "{op:?}"
            );
        }
    }

    #[test]
    fn backend_ids_with_path_characters_stay_inside_their_segment() {
        let s = scope("tok_a");
        for (backend, want) in [
            ("../_search", "/_async_search/%2E%2E%2F_search"),
            ("a?b#c d", "/_async_search/a%3Fb%23c%20d"),
            (".", "/_async_search/%2E"),
        ] {
            let sealed = seal(&s.ids, IdKind::AsyncSearch, backend);
            assert_eq!(by_id(AsyncOp::Get, &sealed, &s).unwrap().1, want);
        }
    }

    #[test]
    fn foreign_forged_raw_and_other_kind_ids_are_refused() {
        let s = scope("tok_a");
        let other_token = seal(&binding("tok_b"), IdKind::AsyncSearch, BACKEND_ID);
        let scroll = seal(&s.ids, IdKind::Scroll, BACKEND_ID);
        let pit = seal(&s.ids, IdKind::Pit, BACKEND_ID);
        let mut forged = seal(&s.ids, IdKind::AsyncSearch, BACKEND_ID);
        forged.push('A');
        let empty = seal(&s.ids, IdKind::AsyncSearch, "");
        for bad in [
            other_token.as_str(),
            scroll.as_str(),
            pit.as_str(),
            forged.as_str(),
            BACKEND_ID,
            "",
            "esgc1_",
            empty.as_str(),
        ] {
            for op in [AsyncOp::Get, AsyncOp::Status, AsyncOp::Delete] {
                let err = by_id(op, bad, &s).unwrap_err();
                assert_eq!(err.kind, RejectKind::Forbidden, "{op:?} {bad:.30}");
                assert!(!err.reason.contains(BACKEND_ID));
            }
        }
    }

    #[test]
    fn a_sealed_async_id_is_safe_in_a_url_path() {
        let sealed = seal(&binding("tok_a"), IdKind::AsyncSearch, BACKEND_ID);
        assert!(sealed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn answers_get_their_ids_sealed_and_keep_everything_else() {
        let a = binding("tok_a");
        let body = format!(
            r#"{{"id":"{BACKEND_ID}","is_partial":true,"is_running":true,"response":{{"took":3,"pit_id":"cGl0MQ==","hits":{{"total":{{"value":12345678901234567890,"relation":"eq"}},"hits":[]}}}}}}"#
        );
        let out = String::from_utf8(seal_response(&a, body.as_bytes())).unwrap();
        assert!(!out.contains(BACKEND_ID), "{out}");
        assert!(!out.contains("cGl0MQ=="), "{out}");
        assert!(
            out.contains("12345678901234567890"),
            "numbers keep their bytes"
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            open(&a, IdKind::AsyncSearch, v["id"].as_str().unwrap()).unwrap(),
            BACKEND_ID
        );
        assert_eq!(
            open(&a, IdKind::Pit, v["response"]["pit_id"].as_str().unwrap()).unwrap(),
            "cGl0MQ=="
        );
        assert_eq!(v["is_running"], json!(true));
    }

    #[test]
    fn escaped_ids_are_sealed_by_rebuilding_the_body() {
        let a = binding("tok_a");
        // `\u0041` is `A`: the text form differs from the parsed id.
        let body = br#"{"id":"\u0041bc","is_running":false}"#;
        let v: Value = serde_json::from_slice(&seal_response(&a, body)).unwrap();
        assert_eq!(
            open(&a, IdKind::AsyncSearch, v["id"].as_str().unwrap()).unwrap(),
            "Abc"
        );
        assert_eq!(v["is_running"], json!(false));
    }

    #[test]
    fn answers_without_ids_or_not_json_are_unchanged() {
        let a = binding("tok_a");
        for body in [
            &br#"{"is_running":false,"response":{"hits":{"hits":[]}}}"#[..],
            br#"{"acknowledged":true}"#,
            br#"{"id":""}"#,
            b"not json",
        ] {
            assert_eq!(seal_response(&a, body), body.to_vec());
        }
    }

    #[test]
    fn the_continuation_seal_dispatches_async_answers_here() {
        let a = binding("tok_a");
        let body = format!(r#"{{"id":"{BACKEND_ID}","response":{{"pit_id":"cGl0"}}}}"#);
        let out = continuation::seal_response(&a, SEAL, body.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(open(&a, IdKind::Pit, v["response"]["pit_id"].as_str().unwrap()).is_ok());
        assert!(open(&a, IdKind::AsyncSearch, v["id"].as_str().unwrap()).is_ok());
    }

    // === the whole flow (plan → prepare → authorize) ===

    fn head<'a>(method: &'a str, path: &'a str, query: Option<&'a str>) -> crate::RequestHead<'a> {
        crate::RequestHead {
            method,
            path,
            query,
            content_type: Some("application/json"),
            content_encoding: None,
        }
    }

    /// Runs the three steps; every expression resolves to `logs-a`, `logs-b` and `secret`.
    fn run(
        s: &Scope,
        h: &crate::RequestHead<'_>,
        body: Option<&[u8]>,
    ) -> Result<crate::Permit, Rejection> {
        let plan = crate::plan(h, s)?;
        let prepared = crate::prepare(plan, body, h, s)?;
        let mut r = crate::Resolution::default();
        for e in prepared.to_resolve() {
            let names = ["logs-a", "logs-b", "secret"]
                .iter()
                .map(|n| crate::resolution::ResolvedName {
                    name: n.to_string(),
                    indices: vec![n.to_string()],
                    kind: crate::resolution::NameKind::Index,
                })
                .collect();
            r.names.insert(e.clone(), names);
        }
        crate::authorize(prepared, &r, s)
    }

    fn filter() -> Value {
        json!([{"term": {"tenant": {"value": "a"}}}])
    }

    #[test]
    fn kibanas_submit_is_rewritten_like_a_search_on_the_tokens_indices() {
        let s = scope("tok_a");
        let q = "batched_reduce_size=64&ccs_minimize_roundtrips=true&wait_for_completion_timeout=200ms&keep_on_completion=false&keep_alive=60000ms&ignore_unavailable=true";
        let body = json!({
            "size": 500,
            "sort": [{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}],
            "fields": [{"field": "*", "include_unmapped": "true"}],
            "track_total_hits": true,
            "runtime_mappings": {},
            "_source": false,
            "query": {"bool": {"filter": [{"range": {"@timestamp": {"gte": "now-15m", "format": "strict_date_optional_time"}}}]}},
            "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "30s", "min_doc_count": 1}}},
            "highlight": {"pre_tags": ["@kibana-highlighted-field@"], "post_tags": ["@/kibana-highlighted-field@"], "fields": {"*": {}}, "fragment_size": 2147483647}
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        let p = run(
            &s,
            &head("POST", "/logs-*/_async_search", Some(q)),
            Some(&bytes),
        )
        .unwrap();
        assert_eq!(p.action, "async_search_submit");
        assert_eq!(p.method, Method::Post);
        assert_eq!(p.path, "/logs-a,logs-b/_async_search");
        assert_eq!(p.answer.seal(), Some(SEAL));
        assert!(p
            .query
            .contains(&("keep_on_completion".into(), "false".into())));
        assert!(p
            .query
            .contains(&("expand_wildcards".into(), "open".into())));
        let sent: Value = serde_json::from_slice(&p.body.unwrap().bytes).unwrap();
        assert_eq!(sent["query"]["bool"]["filter"], filter());
        assert_eq!(sent["query"]["bool"]["must"], json!([body["query"]]));
        assert_eq!(sent["aggs"], body["aggs"]);
    }

    #[test]
    fn submit_without_index_or_body_searches_the_tokens_patterns_with_the_filter() {
        let s = scope("tok_a");
        let p = run(&s, &head("POST", "/_async_search", None), None).unwrap();
        assert_eq!(p.path, "/logs-a,logs-b/_async_search");
        let sent: Value = serde_json::from_slice(&p.body.unwrap().bytes).unwrap();
        assert_eq!(sent["query"]["bool"]["filter"], filter());
    }

    #[test]
    fn submit_refuses_what_search_refuses_and_foreign_indices() {
        let s = scope("tok_a");
        let cases: [(&str, Option<&str>, &[u8]); 4] = [
            (
                "/logs-a/_async_search",
                None,
                br#"{"aggs":{"all":{"global":{}}}}"#,
            ),
            ("/secret/_async_search", None, b"{}"),
            ("/logs-a/_async_search", Some("scroll=1m"), b"{}"),
            ("/logs-a/_async_search", Some("q=tenant:b"), b"{}"),
        ];
        for (path, q, body) in cases {
            let err = run(&s, &head("POST", path, q), Some(body)).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{path} {q:?}");
        }
    }

    #[test]
    fn submit_on_a_point_in_time_opens_the_tokens_pit_id() {
        let s = scope("tok_a");
        let own = seal(&s.ids, IdKind::Pit, "cGl0MQ==");
        let body = serde_json::to_vec(&json!({"pit": {"id": own, "keep_alive": "1m"}, "size": 10}))
            .unwrap();
        let p = run(
            &s,
            &head("POST", "/_async_search", Some("keep_alive=1m")),
            Some(&body),
        )
        .unwrap();
        assert_eq!(p.path, "/_async_search");
        assert_eq!(p.answer.seal(), Some(SEAL));
        let sent: Value = serde_json::from_slice(&p.body.unwrap().bytes).unwrap();
        assert_eq!(sent["pit"], json!({"id": "cGl0MQ==", "keep_alive": "1m"}));
        assert_eq!(sent["query"]["bool"]["filter"], filter());

        let foreign = seal(&binding("tok_b"), IdKind::Pit, "cGl0MQ==");
        let body = serde_json::to_vec(&json!({"pit": {"id": foreign}})).unwrap();
        let err = run(&s, &head("POST", "/_async_search", None), Some(&body)).unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
        let body = serde_json::to_vec(&json!({"pit": {"id": own}})).unwrap();
        let err = run(
            &s,
            &head("POST", "/logs-a/_async_search", None),
            Some(&body),
        )
        .unwrap_err();
        assert_eq!(
            err.kind,
            RejectKind::BadRequest,
            "a pit names its own indices"
        );
    }

    #[test]
    fn poll_status_and_delete_through_the_flow_reach_only_the_backend_id() {
        let s = scope("tok_a");
        let sealed = seal(&s.ids, IdKind::AsyncSearch, "abc=");
        let cases = [
            (
                "GET",
                format!("/_async_search/{sealed}"),
                Some("wait_for_completion_timeout=100ms&keep_alive=60000ms"),
                "async_search_get",
                Method::Get,
                "/_async_search/abc%3D",
            ),
            (
                "GET",
                format!("/_async_search/status/{sealed}"),
                None,
                "async_search_status",
                Method::Get,
                "/_async_search/status/abc%3D",
            ),
            (
                "DELETE",
                format!("/_async_search/{sealed}"),
                None,
                "async_search_delete",
                Method::Delete,
                "/_async_search/abc%3D",
            ),
        ];
        for (m, path, q, action, method, forwarded) in cases {
            let p = run(&s, &head(m, &path, q), None).unwrap();
            assert_eq!(
                (p.action, p.method, p.path.as_str()),
                (action, method, forwarded)
            );
            assert!(p.body.is_none());
            assert!(p.indices.is_empty());
        }
        let p = run(
            &s,
            &head(
                "GET",
                &format!("/_async_search/{sealed}"),
                Some("keep_alive=1m"),
            ),
            None,
        )
        .unwrap();
        assert_eq!(p.query, vec![("keep_alive".to_string(), "1m".to_string())]);
        // Parameters the poll does not take are refused before the id is even opened.
        let err = run(
            &s,
            &head("GET", &format!("/_async_search/{sealed}"), Some("size=1")),
            None,
        )
        .unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden);
        let other = seal(&binding("tok_b"), IdKind::AsyncSearch, "abc=");
        for m in ["GET", "DELETE"] {
            let err =
                run(&s, &head(m, &format!("/_async_search/{other}"), None), None).unwrap_err();
            assert_eq!(err.kind, RejectKind::Forbidden, "{m}");
        }
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Whatever the backend id, the forwarded path is the route's segments plus exactly
            /// one segment that decodes back to the backend id.
            #[test]
            fn any_backend_id_is_forwarded_as_one_segment(backend in "\\PC{1,80}") {
                let s = scope("tok_a");
                let sealed = seal(&s.ids, IdKind::AsyncSearch, &backend);
                let (_, path, _, _) = by_id(AsyncOp::Status, &sealed, &s).unwrap();
                let rest = path.strip_prefix("/_async_search/status/").unwrap();
                prop_assert!(!rest.contains('/') && !rest.contains('?') && !rest.contains('#'));
                prop_assert!(rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'%' || b == b'-' || b == b'_'));
                let decoded = percent_encoding::percent_decode_str(rest).decode_utf8().unwrap();
                prop_assert_eq!(decoded.as_ref(), backend.as_str());
            }

            /// Arbitrary presented ids are refused unless sealed for this token.
            #[test]
            fn arbitrary_presented_ids_never_open(presented in "[A-Za-z0-9_=-]{0,120}") {
                let s = scope("tok_a");
                prop_assert!(by_id(AsyncOp::Get, &presented, &s).is_err());
                let prefixed = format!("esgc1_{presented}");
                prop_assert!(by_id(AsyncOp::Get, &prefixed, &s).is_err());
            }
        }
    }
}
