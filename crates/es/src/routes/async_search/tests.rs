use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::ids::continuation::{open, seal, IdKey};
use crate::memory::Meter;
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
        filters: FilterSet::new([("tenant".to_string(), "a".to_string())]).into(),
        indices: vec!["logs-*".to_string()].into(),
        ids: binding(token),
        guard: Default::default(),
    }
}

fn sealed(a: &Binding, body: &[u8]) -> Option<Vec<u8>> {
    seal_response(a, body, &Meter::unlimited()).unwrap()
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
    let out = String::from_utf8(sealed(&a, body.as_bytes()).unwrap()).unwrap();
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
    let v: Value = serde_json::from_slice(&sealed(&a, body).unwrap()).unwrap();
    assert_eq!(
        open(&a, IdKind::AsyncSearch, v["id"].as_str().unwrap()).unwrap(),
        "Abc"
    );
    assert_eq!(v["is_running"], json!(false));
}

/// rel26: the point in time an async search on one names is its response's `pit_id`, read as
/// the answer's structure has it, never a document's text; none when the answer names two.
#[test]
fn the_point_in_time_is_read_from_the_responses_pit_id() {
    let named = br#"{"id":"x","is_running":false,"response":{"pit_id":"cGl0Mg==","hits":{"hits":[{"_source":{"pit_id":"b3RoZXI="}}]}}}"#;
    assert_eq!(pit_id(named).as_deref(), Some("cGl0Mg=="));
    let after = br#"{"id":"x","response":{"took":3,"hits":{"hits":[]},"pit_id":"cGl0Mg=="}}"#;
    assert_eq!(pit_id(after).as_deref(), Some("cGl0Mg=="));
    for none in [
        &br#"{"id":"x","response":{"hits":{"hits":[{"_source":{"pit_id":"b3RoZXI="}}]}}}"#[..],
        br#"{"id":"x","pit_id":"cGl0Mg==","response":{}}"#,
        br#"{"id":"x","response":{"pit_id":"cGl0Mg==","pit_id":"b3RoZXI="}}"#,
        br#"{"id":"x","response":{"pit_id":""}}"#,
        br#"{"id":"x","response":{"pit_id":7}}"#,
        br#"{"id":"x","response":{"pit_id":"cGl0Mg=="}"#,
        b"not json",
    ] {
        assert_eq!(pit_id(none), None, "{}", String::from_utf8_lossy(none));
    }
}

/// async25: whether a search still runs is read from the answer's top-level `is_running`
/// (the first one: Elasticsearch writes it before the search's `response`), never from a
/// document's text; an answer without a boolean one, or not an object, says nothing.
#[test]
fn is_running_is_read_from_the_answers_top_level_only() {
    let running = br#"{"id":"x","is_partial":true,"is_running":true,"response":{"hits":{"hits":[{"_source":{"is_running":false}}]}}}"#;
    assert_eq!(is_running(running), Some(true));
    let done = br#"{"id":"x","is_partial":false,"is_running":false,"response":{"took":3}}"#;
    assert_eq!(is_running(done), Some(false));
    // Status answers; the key after the response; a body cut after it (read up to the key).
    assert_eq!(
        is_running(br#"{"id":"x","is_running":false,"completion_status":200}"#),
        Some(false)
    );
    assert_eq!(
        is_running(br#"{"response":{"is_running":true},"is_running":false}"#),
        Some(false)
    );
    assert_eq!(
        is_running(br#"{"id":"x","is_running":true,"respo"#),
        Some(true)
    );
    // A document's `is_running` inside the response is not the search's.
    for silent in [
        &br#"{"id":"x","response":{"hits":{"hits":[{"_source":{"is_running":false}}]}}}"#[..],
        br#"{"id":"x","is_running":"false"}"#,
        br#"{"id":"x","is_running":null}"#,
        br#"[{"is_running":false}]"#,
        b"not json",
        b"",
    ] {
        assert_eq!(
            is_running(silent),
            None,
            "{}",
            String::from_utf8_lossy(silent)
        );
    }
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
        assert_eq!(sealed(&a, body), Some(body.to_vec()));
    }
}

#[test]
fn the_answer_seal_dispatches_async_answers_here() {
    let a = binding("tok_a");
    let body = format!(r#"{{"id":"{BACKEND_ID}","response":{{"pit_id":"cGl0"}}}}"#);
    // Whatever the status: a failed async search still carries its id.
    for success in [true, false] {
        let out = crate::routes::seal_answer(
            &a,
            Some(SEAL),
            None,
            success,
            body.as_bytes(),
            &Meter::unlimited(),
        )
        .unwrap()
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(open(&a, IdKind::Pit, v["response"]["pit_id"].as_str().unwrap()).is_ok());
        assert!(open(&a, IdKind::AsyncSearch, v["id"].as_str().unwrap()).is_ok());
    }
    // The continuation module does not know async answers (no import cycle): it refuses them.
    assert_eq!(
        continuation::seal_response(&a, SEAL, body.as_bytes(), &Meter::unlimited()).unwrap(),
        None
    );
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
        let names: Vec<_> = ["logs-a", "logs-b", "secret"]
            .iter()
            .map(|n| crate::indices::resolution::ResolvedName {
                name: n.to_string(),
                indices: vec![n.to_string()],
                kind: crate::indices::resolution::NameKind::Index,
            })
            .collect();
        r.names.insert(e.clone(), names.into());
    }
    // The fixture's histograms are on a date field.
    crate::testing::with_field_types(&prepared, &mut r, "date");
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
    assert_eq!(p.answer.seal(), Some(SUBMIT_SEAL));
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
    let body =
        serde_json::to_vec(&json!({"pit": {"id": own, "keep_alive": "1m"}, "size": 10})).unwrap();
    let p = run(
        &s,
        &head("POST", "/_async_search", Some("keep_alive=1m")),
        Some(&body),
    )
    .unwrap();
    assert_eq!(p.path, "/_async_search");
    assert_eq!(p.answer.seal(), Some(SUBMIT_SEAL));
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
    assert_eq!(p.query, crate::testing::pairs(&[("keep_alive", "1m")]));
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
        let err = run(&s, &head(m, &format!("/_async_search/{other}"), None), None).unwrap_err();
        assert_eq!(err.kind, RejectKind::Forbidden, "{m}");
    }
}

mod props {
    use proptest::prelude::*;

    use super::*;

    /// The ids the former tree reading took: `id` and `response.pit_id`, non-empty strings.
    fn tree_ids(v: &Value) -> Vec<(IdKind, String)> {
        let id = v.get("id").and_then(Value::as_str);
        let pit = v.pointer("/response/pit_id").and_then(Value::as_str);
        [(IdKind::AsyncSearch, id), (IdKind::Pit, pit)]
            .into_iter()
            .filter_map(|(k, s)| s.filter(|s| !s.is_empty()).map(|s| (k, s.to_owned())))
            .collect()
    }

    /// JSON text of random answers: objects keyed by the names that matter (plain, escaped),
    /// repeated at will, nested; scalars of every type, some the tree refuses.
    fn answer_text() -> impl Strategy<Value = String> {
        let scalar = prop::sample::select(vec![
            r#""FmRldE8zREVEUzA2ZVpUeGs2ejJFUFEa=""#,
            r#""cGl0MQ==""#,
            r#""""#,
            r#""p\u0051""#,
            r#""\ud800""#,
            "1",
            "-0",
            "3.5",
            "1e400",
            "true",
            "null",
        ])
        .prop_map(str::to_owned);
        let key = prop::sample::select(vec![
            "id",
            "response",
            "pit_id",
            "\\u0069d",
            "pit\\u005fid",
            "hits",
            "Id",
        ]);
        let object = |key: prop::sample::Select<&'static str>, inner: BoxedStrategy<String>| {
            prop::collection::vec((key, inner), 0..5).prop_map(|m| {
                let members: Vec<String> =
                    m.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            })
        };
        let inner_key = key.clone();
        let value = scalar.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                object(inner_key.clone(), inner.boxed()),
            ]
        });
        // Mostly objects at the top, as answers are.
        prop_oneof![9 => object(key, value.clone().boxed()), 1 => value]
    }

    proptest! {
        #![proptest_config(crate::testing::cases(2048))]

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

        /// Session 11 review: the ids read as an answer streams by are the ids its tree gives,
        /// for answers of random shape (the keys that matter, escaped or repeated, at any depth;
        /// values of every type, some the tree refuses). Where the tree reads the answer, the
        /// streaming reading does too, with the same ids; and the sealed answer carries none of
        /// them raw.
        #[test]
        fn ids_in_passing_are_the_trees_for_any_answer(answer in answer_text()) {
            let a = binding("tok_a");
            if let Ok(tree) = serde_json::from_str::<Value>(&answer) {
                let passing = serde_json::from_str::<Ids>(&answer).map(Ids::list);
                let want = tree_ids(&tree);
                prop_assert_eq!(passing.unwrap_or_default(), want.clone(), "{}", answer);
                if let Some(out) = sealed(&a, answer.as_bytes()) {
                    let sealed = serde_json::from_slice::<Ids>(&out).map(Ids::list).unwrap_or_default();
                    prop_assert_eq!(sealed.len(), want.len(), "{}", answer);
                    prop_assert!(sealed.iter().all(|(k, id)| is_sealed(&a, *k, id)), "{}", answer);
                    // Review 12: a repeated key's earlier values too.
                    let every = serde_json::from_slice::<Ids>(&out).map(|f| f.every()).unwrap_or_default();
                    prop_assert!(every.iter().all(|(k, id)| is_sealed(&a, *k, id)), "{}", answer);
                }
            }
        }

        /// Arbitrary presented ids are refused unless sealed for this token.
        #[test]
        fn arbitrary_presented_ids_never_open(presented in "[A-Za-z0-9_=-]{0,120}") {
            let s = scope("tok_a");
            prop_assert!(by_id(AsyncOp::Get, &presented, &s).is_err());
            let prefixed = format!("esgc1_{presented}");
            prop_assert!(by_id(AsyncOp::Get, &prefixed, &s).is_err());
        }

        /// A sealed id with one character changed or cut short opens for no token: the ids
        /// above are never well formed, so they stop before the seal's tag is checked; these
        /// reach it. The unchanged id opens for its own token and kind only.
        #[test]
        fn a_changed_sealed_id_never_opens(
            backend in "[A-Za-z0-9=]{1,40}",
            at in any::<prop::sample::Index>(),
            c in prop::sample::select(vec!['A', 'B', 'Q', 'g', 'w', '_', '-', '0', '9', '=']),
            cut in any::<bool>(),
        ) {
            let s = scope("tok_a");
            let sealed = seal(&s.ids, IdKind::AsyncSearch, &backend);
            prop_assert_eq!(open(&s.ids, IdKind::AsyncSearch, &sealed).ok(), Some(backend.clone()));
            prop_assert!(open(&binding("tok_b"), IdKind::AsyncSearch, &sealed).is_err());
            prop_assert!(open(&s.ids, IdKind::Pit, &sealed).is_err());
            let i = at.index(sealed.len());
            let changed = if cut {
                sealed[..i].to_string()
            } else {
                format!("{}{c}{}", &sealed[..i], &sealed[i + 1..])
            };
            if changed != sealed {
                prop_assert!(open(&s.ids, IdKind::AsyncSearch, &changed).is_err(), "{} -> {}", sealed, changed);
            }
        }
    }
}

/// Session 11: the ids of an answer are read as it streams by, without its tree (a page of
/// hits can be 256 MiB). They are the ids the tree gave (the reference below is the former
/// reading): a repeated key's last value, strings only, escaped keys, ids anywhere else ignored.
#[test]
fn ids_read_in_passing_are_the_ids_of_the_tree() {
    fn from_tree(v: &Value) -> Vec<(IdKind, String)> {
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
    let answers = [
        r#"{"id":"a","response":{"pit_id":"p","hits":{"hits":[{"id":"x","pit_id":"y"}]}}}"#,
        r#"{"id":"a","id":"b","response":{"pit_id":"p","pit_id":"q"}}"#,
        r#"{"id":"a","id":7}"#,
        r#"{"\u0069d":"esc","response":{"pit\u005fid":"pe"}}"#,
        r#"{"id":"","response":{"pit_id":""}}"#,
        r#"{"id":{"id":"nested"},"response":"text"}"#,
        r#"{"id":["a"],"response":[{"pit_id":"p"}]}"#,
        r#"{"id":null,"response":null,"is_running":false}"#,
        r#"{"response":{"pit_id":3.5},"id":true}"#,
        r#"{"hits":{"id":"deep"}}"#,
        r#"["id","a"]"#,
        r#""id""#,
        r#"{}"#,
    ];
    for answer in answers {
        let tree: Value = serde_json::from_str(answer).unwrap();
        let passing = serde_json::from_str::<Ids>(answer)
            .map(Ids::list)
            .unwrap_or_default();
        assert_eq!(passing, from_tree(&tree), "{answer}");
    }
}

/// Session 11 review: a page of hits can hold a document serde_json's tree refuses (its
/// `_source` is sent back as it was indexed: a lone surrogate escape, a number past f64, nesting
/// past 128 levels, an object whose first key is serde_json's raw value token, bytes that are
/// not UTF-8). The ids are read without that tree, so such an answer still has its ids sealed;
/// the former tree reading failed and sent the answer unchanged, backend ids and all.
#[test]
fn ids_beside_documents_the_tree_refuses_are_sealed() {
    let a = binding("tok_a");
    let pit = "cGl0MQ==";
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let sources: [&[u8]; 5] = [
        br#"{"s":"\ud800"}"#,
        br#"{"n":1e400}"#,
        deep.as_bytes(),
        br#"{"$serde_json::private::RawValue":1}"#,
        b"{\"s\":\"\xff\"}",
    ];
    for source in sources {
        let mut body = format!(
            r#"{{"id":"{BACKEND_ID}","is_running":false,"response":{{"pit_id":"{pit}","hits":{{"hits":[{{"_id":"1","_source":"#
        )
        .into_bytes();
        body.extend_from_slice(source);
        body.extend_from_slice(b"}]}}}");
        assert!(
            serde_json::from_slice::<Value>(&body).is_err(),
            "the tree refuses it"
        );
        let out = sealed(&a, &body).expect("sealed");
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains(BACKEND_ID), "{text:.300}");
        assert!(!text.contains(pit), "{text:.300}");
        let ids = serde_json::from_slice::<Ids>(&out).unwrap().list();
        assert_eq!(ids.len(), 2, "{text:.300}");
        assert!(
            ids.iter().all(|(k, id)| is_sealed(&a, *k, id)),
            "{text:.300}"
        );
    }
}

/// Session 11 review: an id the text does not hold verbatim (escaped) is sealed by rebuilding
/// the answer's tree; when the tree cannot be built either, the answer is refused (`None`,
/// a 502), never sent with its backend id (it was sent unchanged).
#[test]
fn escaped_ids_beside_documents_the_tree_refuses_are_refused() {
    let a = binding("tok_a");
    let body = br#"{"id":"\u0041bc","response":{"hits":{"hits":[{"_source":{"s":"\ud800"}}]}}}"#;
    assert_eq!(sealed(&a, body), None);
    let body = br#"{"id":"Abc","response":{"pit_id":"p\u0051","hits":{"hits":[{"_source":{"n":1e400}}]}}}"#;
    assert_eq!(sealed(&a, body), None);
}

/// Session 12: the copies sealing makes of an answer (up to 256 MiB) are claimed before they
/// are made, each returned once the next replaces it: what stays claimed is the sealed answer.
/// A budget short of two copies refuses; the tree of an answer rebuilt for an escaped id is
/// claimed too.
#[test]
fn sealing_claims_its_copies_first() {
    use crate::memory::{budget, Refused};
    let a = binding("tok_a");
    let ones = vec!["1"; 50_000].join(",");
    let body = format!(
        r#"{{"id":"{BACKEND_ID}","response":{{"pit_id":"cGl0","hits":{{"hits":[{{"_source":{{"n":[{ones}]}}}}]}}}}}}"#
    );
    let seal = |body: &str, meter: &Meter| {
        crate::routes::seal_answer(&a, Some(SEAL), None, true, body.as_bytes(), meter)
    };
    let meter = Meter::unlimited();
    let out = seal(&body, &meter).unwrap().unwrap();
    assert_eq!(meter.used(), out.len());
    let grant = budget(out.len() + out.len() / 2, Refused::Busy);
    let refused = seal(&body, &Meter::new(&grant)).unwrap_err();
    assert_eq!(refused.kind, RejectKind::Busy);
    // An escaped id: the answer's tree is built, and claimed (a value per two bytes here).
    let escaped = body.replace(&format!("\"{BACKEND_ID}\""), r#""\u0041bc""#);
    let meter = Meter::unlimited();
    let out = seal(&escaped, &meter).unwrap().unwrap();
    assert!(
        meter.used() > 5 * out.len(),
        "{} {}",
        meter.used(),
        out.len()
    );
    let grant = budget(4 * escaped.len(), Refused::Busy);
    let refused = seal(&escaped, &Meter::new(&grant)).unwrap_err();
    assert_eq!(refused.kind, RejectKind::Busy);
}

/// Review 12: an answer whose id places are repeated (`id` twice, `pit_id` twice in a
/// `response`, `response` twice) has each of their string values sealed, not only the last
/// one the tree keeps: the earlier ones were left in the text raw (a reader keeping a repeated
/// key's first value, or any reading of the text, saw the backend id). Escaped, they are
/// sealed by the rebuild, which keeps one value per key.
#[test]
fn every_value_of_a_repeated_id_key_is_sealed() {
    let a = binding("tok_a");
    let raw = ["RAWid1", "RAWid2", "RAWpit1", "RAWpit2", "RAWpit3"];
    for body in [
        r#"{"id":"RAWid1","id":"RAWid2","is_running":false}"#,
        r#"{"id":"RAWid1","id":7}"#,
        r#"{"id":"RAWid1","response":{"pit_id":"RAWpit1","pit_id":"RAWpit2","hits":{}}}"#,
        r#"{"response":{"pit_id":"RAWpit1"},"id":"RAWid2","response":{"pit_id":"RAWpit3"}}"#,
        r#"{"response":{"pit_id":"RAWpit1"},"response":{"hits":{}}}"#,
        r#"{"id":"RAW\u0069d1","id":"RAWid2","response":{"pit_id":"RAWpit1"}}"#,
        r#"{"id":"RAWid1","id":"RAWid2","response":{"pit_id":"RAW\u0070it1","pit_id":"RAWpit2"}}"#,
    ] {
        let out = sealed(&a, body.as_bytes()).expect("sealed");
        let text = String::from_utf8(out).unwrap();
        for r in raw {
            assert!(!text.contains(r), "{body} -> {text}");
        }
        // Every value at an id's place (escaped ones decoded) is a sealed id, and the tree's
        // reading finds as many ids as before.
        let found = serde_json::from_str::<Ids>(&text).unwrap();
        let every = found.every();
        assert!(every.iter().all(|(k, id)| is_sealed(&a, *k, id)), "{text}");
        let before = serde_json::from_str::<Ids>(body).unwrap().list().len();
        assert_eq!(found.list().len(), before, "{text}");
    }
}

/// Only an answer naming a context its own request created frees it when refused: a scrolling
/// search and an async search submit do; a scroll's next page, a search on a point in time and
/// a poll do not (their client holds the id and may still use it).
#[test]
fn only_the_answers_that_create_a_context_release_it() {
    use crate::ids::continuation::Release;
    let s = scope("tok_a");
    let release = |method, path, query, body: Option<Value>| {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        let p = run(&s, &head(method, path, query), bytes.as_deref()).unwrap();
        p.answer.seal().map(|seal| seal.release)
    };
    let q = json!({"query": {"match_all": {}}});
    assert_eq!(
        release(
            "POST",
            "/logs-a/_search",
            Some("scroll=1m"),
            Some(q.clone())
        ),
        Some(Some(Release::Scroll))
    );
    assert_eq!(
        release("POST", "/logs-a/_search", Some("scroll=1m"), None),
        Some(Some(Release::Scroll))
    );
    assert_eq!(
        release("POST", "/logs-a/_async_search", None, Some(q.clone())),
        Some(Some(Release::AsyncSearch))
    );
    assert_eq!(
        release("POST", "/logs-a/_async_search", None, None),
        Some(Some(Release::AsyncSearch))
    );
    let scroll = seal(&s.ids, IdKind::Scroll, "c2Nyb2xs");
    assert_eq!(
        release(
            "POST",
            "/_search/scroll",
            None,
            Some(json!({"scroll_id": scroll, "scroll": "1m"}))
        ),
        Some(None)
    );
    let pit = seal(&s.ids, IdKind::Pit, "cGl0MQ==");
    assert_eq!(
        release(
            "POST",
            "/_search",
            None,
            Some(json!({"pit": {"id": pit, "keep_alive": "1m"}}))
        ),
        Some(None)
    );
    let own = seal(&s.ids, IdKind::AsyncSearch, BACKEND_ID);
    let poll = format!("/_async_search/{own}");
    assert_eq!(release("GET", &poll, None, None), Some(None));
    // Session 14: a SQL query opens a cursor, its next page does not.
    assert_eq!(
        release(
            "POST",
            "/_sql",
            None,
            Some(json!({"query": "SELECT * FROM \"logs-a\""}))
        ),
        Some(Some(Release::SqlCursor))
    );
    let cursor = seal(&s.ids, IdKind::SqlCursor, "Y3Vyc29y");
    assert_eq!(
        release("POST", "/_sql", None, Some(json!({ "cursor": cursor }))),
        Some(None)
    );
}

#[test]
fn a_released_context_is_named_only_as_json_text_or_an_encoded_segment() {
    use crate::ids::continuation::Release;
    let id = "a\"b/../c?d";
    let (m, path, body) = crate::routes::release_request(Release::AsyncSearch, id);
    assert_eq!(
        (m, path.as_str(), body),
        (
            Method::Delete,
            "/_async_search/a%22b%2F%2E%2E%2Fc%3Fd",
            None
        )
    );
    let cases = [
        (
            Release::Scroll,
            "/_search/scroll",
            json!({"scroll_id": [id]}),
        ),
        (Release::Pit, "/_pit", json!({"id": id})),
        (
            Release::OpenSearchPit,
            "/_search/point_in_time",
            json!({"pit_id": [id]}),
        ),
    ];
    for (release, want_path, want_body) in cases {
        let (m, path, body) = crate::routes::release_request(release, id);
        assert_eq!((m, path.as_str()), (Method::Delete, want_path));
        let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(body, want_body);
    }
    let (m, path, body) = crate::routes::release_request(Release::SqlCursor, id);
    assert_eq!((m, path.as_str()), (Method::Post, "/_sql/close"));
    let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(body, json!({ "cursor": id }));
}
