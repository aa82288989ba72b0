//! A search that sends no body (a dashboard's or a client's plain `GET /{index}/_search`, an
//! async submit without a body): its forwarded body depends only on the token's filters and
//! cost guard, so it is rewritten once per filter set ([`EmptySearch`], kept in the
//! `FilterSet`) and copied per request (issue 10: rewriting and serialising the empty body was
//! about a tenth of a small GET's instructions).
//!
//! Invariant: byte for byte what the serde path (`rewrite_serde`) forwards for the same
//! request, and the same refusals in the same order; `bodiless_matches_serde` (tests) holds
//! the two to it. Anything else (a body, a URI search, a `sort` parameter, a scroll) is left
//! to the other paths.

use serde_json::{Map, Value};

use super::{Form, Request, Upstream};
use crate::dsl::json::{Obj, J};
use crate::dsl::rewrite;
use crate::ids::ordinals;
use crate::routes::JSON_BODY;
use crate::{FilterSet, ForwardBody, Method, Rejection};

/// `rewrite::search` of no body for one filter set, and its JSON text: the wrapped `query`
/// alone (an object with no other key, so the guard's `timeout` is appended after it, as
/// serde_json's ordered map appends it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EmptySearch {
    body: Map<String, Value>,
    bytes: Vec<u8>,
}

impl EmptySearch {
    /// The rewritten empty search of `filters`, or `None` when it is not of the shape this
    /// path copies (then every bodiless search takes the serde path).
    pub(crate) fn of(filters: &FilterSet) -> Option<EmptySearch> {
        let body = rewrite::search(None, filters).ok()?;
        // What `ordinals::prepare` would do: nothing (no sort, no slice).
        if !ordinals::plain_is_noop(J::from(&body)) {
            return None;
        }
        let Value::Object(body) = body else {
            return None;
        };
        if body.len() != 1 || !body.contains_key("query") {
            return None;
        }
        let bytes = serde_json::to_vec(&body).ok()?;
        Some(EmptySearch { body, bytes })
    }
}

#[cfg(test)]
thread_local! {
    /// How many searches this path forwarded on this thread.
    pub(super) static TAKEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The rewritten empty search [`forward`] copies for `req`, or `None` when the request is not
/// one this path covers (see the module doc) and the other paths decide it. Asked apart from
/// `forward`: its upstream request (664 bytes) goes back as it is made, not through an
/// `Option` around it (perf29c).
pub(super) fn covered<'s>(req: &Request<'s>) -> Option<&'s EmptySearch> {
    #[cfg(test)]
    if super::tests::SERDE_ONLY.with(std::cell::Cell::get) {
        return None;
    }
    if req.raw_body.is_some_and(|b| !b.is_empty())
        || req.uri_query.is_some()
        || req.scrolls()
        || req.params.iter().any(|(k, _)| k == "sort")
    {
        return None;
    }
    req.scope.filters.empty_search()
}

/// The upstream request of a bodiless search in `form` ([`covered`] gave `empty`): the serde
/// path's steps for no body, in its order: the path's expression, the cost guard (its
/// refusals, `timeout` taken out of the parameters and into the body), the body.
pub(super) fn forward(
    req: &mut Request<'_>,
    form: &Form,
    empty: &EmptySearch,
) -> Result<Upstream, Rejection> {
    // Nothing reads the request's expression after this (the search is this path's).
    let mut up = Upstream::at_path_of(Method::Post, req.take_index()?, "/", form.api);
    up.seal = form.id;
    // No body: no aggregations (no histogram fields to pass on).
    let timeout = req
        .scope
        .guard
        .search_checked(Obj::V(&empty.body), &mut req.params)?;
    let bytes = match timeout {
        None => empty.bytes.clone(),
        Some(timeout) => {
            let mut bytes = Vec::with_capacity(empty.bytes.len() + timeout.len() + 16);
            bytes.extend_from_slice(&empty.bytes[..empty.bytes.len() - 1]);
            bytes.extend_from_slice(b",\"timeout\":");
            serde_json::to_writer(&mut bytes, &timeout)
                .map_err(|_| Rejection::bad_request("body could not be serialised"))?;
            bytes.push(b'}');
            bytes
        }
    };
    #[cfg(test)]
    TAKEN.with(|n| n.set(n.get() + 1));
    up.body = Some(ForwardBody::new(bytes, JSON_BODY));
    Ok(up)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::super::tests::SERDE_ONLY;
    use super::TAKEN;
    use crate as es;
    use crate::dsl::cost::CostGuard;
    use crate::testing::{head, scope};
    use crate::{FilterSet, Prepared, Rejection, Scope};

    fn prepare(
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Option<&[u8]>,
        scope: &Scope,
        encoded: bool,
        serde_only: bool,
    ) -> Result<Prepared, Rejection> {
        SERDE_ONLY.with(|s| s.set(serde_only));
        let mut h = head(method, path, query);
        if encoded {
            // Neither is read for an empty body.
            h.content_type = Some("text/plain");
            h.content_encoding = Some("br");
        }
        let out = es::plan(&h, scope).and_then(|plan| es::prepare(plan, body, &h, scope));
        SERDE_ONLY.with(|s| s.set(false));
        out
    }

    /// The prepared request with its forwarded bytes.
    fn shown(p: Prepared) -> (Option<Vec<u8>>, String) {
        let mut p = p;
        let bytes = p.upstream.body.take().map(|b| b.bytes);
        (bytes, format!("{p:?}"))
    }

    fn scopes() -> Vec<Scope> {
        let filtered = scope();
        let mut open = scope();
        open.filters = FilterSet::new([]).into();
        let mut several = scope();
        several.filters = FilterSet::new([
            ("tenant".to_string(), "a".to_string()),
            ("tenant".to_string(), "b".to_string()),
            ("team".to_string(), "x\"y\\z\u{1}é".to_string()),
        ])
        .into();
        // A field named like the kNN key: `rewrite::search` also looks for kNN searches in
        // the wrapped query.
        let mut knn = scope();
        knn.filters = FilterSet::new([("knn".to_string(), "a".to_string())]).into();
        let mut limited = several.clone();
        limited.guard = CostGuard {
            max_size: Some(100),
            max_buckets: Some(1000),
            timeout_ms: Some(5000),
            ..Default::default()
        };
        let mut timed = scope();
        timed.guard = CostGuard {
            max_size: None,
            max_buckets: None,
            timeout_ms: Some(90_000),
            ..Default::default()
        };
        let mut sized = knn.clone();
        sized.guard = CostGuard {
            max_size: Some(10),
            max_buckets: None,
            timeout_ms: None,
            ..Default::default()
        };
        vec![filtered, open, several, knn, limited, timed, sized]
    }

    /// Every bodiless search (and its neighbours the path leaves alone) is decided exactly as
    /// the serde path decides it: the same refusal, or the same request and forwarded bytes.
    #[test]
    fn bodiless_matches_serde() {
        let paths = [
            "/logs-a/_search",
            "/logs-*/_search",
            "/_search",
            "/logs-a,logs-b/_search",
            "/other/_search",
            "/logs-a/_async_search",
            "/logs-a/_count",
        ];
        let queries = [
            None,
            Some("size=5"),
            Some("size=1000"),
            Some("size=5&from=8"),
            Some("from=x"),
            Some("size=-1"),
            Some("timeout=1s"),
            Some("timeout=10m"),
            Some("timeout=bad"),
            Some("request_cache=true&typed_keys=true"),
            Some("filter_path=hits.hits&pretty=true"),
            Some("scroll=1m"),
            Some("sort=a:asc"),
            Some("sort=_doc"),
            Some("q=x"),
            Some("q=tenant:b"),
            Some("wait_for_completion_timeout=1s&keep_alive=1m"),
            Some("unknown=1"),
        ];
        let bodies: [(Option<&[u8]>, bool); 5] = [
            (None, false),
            (Some(b""), false),
            (Some(b"{}"), false),
            (None, true),
            (Some(b""), true),
        ];
        let mut taken = 0;
        let mut cases = 0;
        for scope in scopes() {
            for path in paths {
                for query in queries {
                    for method in ["GET", "POST"] {
                        for (body, encoded) in bodies {
                            let before = TAKEN.with(Cell::get);
                            let fast = prepare(method, path, query, body, &scope, encoded, false);
                            taken += usize::from(TAKEN.with(Cell::get) > before);
                            let serde = prepare(method, path, query, body, &scope, encoded, true);
                            let case = format!(
                                "{method} {path} {query:?} {body:?} encoded {encoded} {scope:?}"
                            );
                            match (fast, serde) {
                                (Ok(f), Ok(s)) => assert_eq!(shown(f), shown(s), "{case}"),
                                (Err(f), Err(s)) => assert_eq!(f, s, "{case}"),
                                (f, s) => panic!(
                                    "paths disagree on {case}: {:?} / {:?}",
                                    f.map(shown),
                                    s.map(shown)
                                ),
                            }
                            cases += 1;
                        }
                    }
                }
            }
        }
        // The path is taken where it applies (not only ever left to the others).
        assert!(taken > cases / 5, "taken {taken} of {cases}");
    }

    /// A plain dashboard GET takes this path, and what it forwards is the wrapped filter.
    #[test]
    fn a_plain_get_forwards_the_wrapped_filter() {
        let scope = scope();
        let before = TAKEN.with(Cell::get);
        let p = prepare("GET", "/logs-a/_search", None, None, &scope, false, false).unwrap();
        assert_eq!(TAKEN.with(Cell::get), before + 1);
        let (bytes, _) = shown(p);
        let body: serde_json::Value = serde_json::from_slice(&bytes.unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"query": {"bool": {
                "must": [{"match_all": {}}],
                "filter": [{"term": {"tenant": {"value": "a"}}}]
            }}})
        );
    }
}
