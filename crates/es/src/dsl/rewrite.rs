//! Search and count body validation and filter injection (security.md I-4, I-5, B1–B22).
//!
//! Invariant: a body leaves this module only if every key on the way down is on an
//! allow-list (top-level keys here, query types in `query`, aggregation types in `aggs`, and
//! their parameters), nothing on the deny-list appears anywhere (`global`, `significant_*`,
//! `min_doc_count: 0` on terms-like aggregations, scripts, runtime mappings, remote-fetch
//! queries, `wrapper`, join queries, suggesters, `profile`/`explain`, …, and whatever lets
//! index-wide term statistics or scores decide a match set or a count: `more_like_this`, fuzzy
//! and prefix expansion, expanding rewrites, expansions over metadata fields, `min_score`,
//! samplers; see `expansion`), and the token's filter clauses sit in a fresh outer
//! `bool.filter` around the user's query (or `match_all`), in every top-level `knn` element's
//! `filter`, in every leaf of a `retriever` (see `retriever`), and in the `filter` of every kNN
//! search anywhere else in the body, with or without a retriever. The user's own `bool` is
//! never merged into. Rejections name keys, never values.
//!
//! Layering: `query` (the query checker, the filter wrapper) is the leaf; `aggs` and
//! `retriever` build on it; this module orchestrates a whole body on top of all three.
//!
//! The tree path (`search_tree`, `count_tree`) puts the token's clauses into each body as a copy
//! whose strings borrow the shared [`FilterSet`] (`Node::reborrow`): a deep clone of their owned
//! strings, and its drop, cost about 500 instructions a search (issue 10, goal 6).

use serde_json::{Map, Value};
// The unit tests below (`use super::*`) build their bodies with it.
#[cfg(test)]
use serde_json::json;

pub use crate::dsl::aggs::check_aggs;
use std::borrow::Cow;

use crate::dsl::fields::{self, Position};
use crate::dsl::json::J;
use crate::dsl::query::{
    array_of, check_collapse, check_fields, check_highlight, check_key, check_knn, check_source,
    check_stored_fields, flat, keyed, keys, no_seq_no_primary_term, only_false, prepend_clauses,
    scalar, single, table, uint, wrap_unwalked, Slot, SortAt, Table,
};
pub use crate::dsl::query::{check_query, filter_knn_queries, wrap};
use crate::dsl::{retriever, values};
use crate::request::tree::Node;
use crate::{FilterSet, Rejection};

/// Validates a `_search` body (or its absence) and returns the body to forward.
pub fn search(body: Option<Value>, filters: &FilterSet) -> Result<Value, Rejection> {
    let mut obj = into_object(body)?;
    if obj.contains_key("aggs") && obj.contains_key("aggregations") {
        return Err(Rejection::bad_request(
            "body has both [aggs] and [aggregations]",
        ));
    }
    // Grafana and Kibana send these empty; an empty object is a no-op, so it is dropped
    // rather than forwarded. Anything non-empty is denied by `TOP_LEVEL`.
    for key in ["runtime_mappings", "script_fields"] {
        if obj
            .get(key)
            .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
        {
            obj.remove(key);
        }
    }
    for (key, value) in &obj {
        check_key(TOP_LEVEL, key, J::from(value))?;
    }
    let mut names = Vec::new();
    for (key, value) in &obj {
        if key == "knn" {
            crate::dsl::query::knn_inner_hits(J::from(value), &mut names)?;
        }
        crate::dsl::query::unique_inner_hits(J::from(value), &mut names)?;
    }
    for (key, value) in &obj {
        if key != "highlight" {
            nested_highlights_have_queries(J::from(value))?;
        }
    }
    let highlight_query = obj
        .get("highlight")
        .is_some_and(|h| highlight_needs_query(J::from(h)))
        .then(|| own_query(&obj));
    collapse_expands_within_the_query(&obj, filters)?;
    // With a retriever, the retriever selects the documents (its leaves filtered by
    // `retriever`); without one, the query, sub-searches and top-level kNN do.
    if !retriever::rewrite_in_body(&mut obj, filters)? {
        wrap_entry_points(&mut obj, filters)?;
    }
    // kNN searches anywhere else in the body (post_filter, aggregations, rescore, retrievers
    // and their filters) get the token's clauses too, whatever the body's shape.
    // Before the kNN filter injection: a kNN query in the client's query gets the token's
    // clauses in its highlight copy too.
    if let (Some(q), Some(Value::Object(h))) = (highlight_query, obj.get_mut("highlight")) {
        h.insert("highlight_query".to_string(), q);
    }
    for value in obj.values_mut() {
        filter_knn_queries(value, filters);
    }
    if filters.constant_scores() {
        constant_scores(&mut obj);
    }
    // A sort object with several fields becomes the equivalent list, so the priority does not
    // depend on how the backend orders an object's keys.
    if let Some(Value::Object(fields)) = obj
        .get("sort")
        .filter(|s| s.as_object().is_some_and(|m| m.len() > 1))
    {
        let list = fields.iter().map(|(k, v)| single(k, v.clone())).collect();
        obj.insert("sort".to_string(), Value::Array(list));
    }
    Ok(Value::Object(obj))
}

/// For a token with constant scores (review 15), the scores the query wrap does not reach:
/// every rescore's `rescore_query` (a rescore scores its window with it on its own, and adds
/// that score to the hit's) and the inner hits of `nested` clauses
/// ([`query::constant_inner_hits`](crate::dsl::query::constant_inner_hits)) go under
/// `constant_score`. Their match sets are unchanged.
fn constant_scores(obj: &mut Map<String, Value>) {
    if let Some(rescore) = obj.get_mut("rescore") {
        let mut one = |r: &mut Value| {
            if let Some(q) = r.pointer_mut("/query/rescore_query") {
                let inner = std::mem::take(q);
                *q = crate::dsl::query::constant_score(inner);
            }
        };
        match rescore {
            Value::Array(items) => items.iter_mut().for_each(&mut one),
            r => one(r),
        }
    }
    for value in obj.values_mut() {
        crate::dsl::query::constant_inner_hits(value);
    }
}

/// A top-level `collapse` with `inner_hits` for a token with filters needs a top-level query
/// that holds the token's clauses once rewritten: a `query` or none (the wrapped `match_all`
/// is added), or a `standard` retriever (its query is wrapped). Not a kNN-only body, a
/// `knn`, `rrf` or `linear` retriever, nor `sub_searches`.
///
/// Session 17 (attack17a, H): Elasticsearch expands each collapsed hit's inner hits with a
/// search of its own on the coordinating node (`ExpandSearchPhase`): the hit's collapse value
/// as a filter, and the body's `query` as `must` (its `post_filter` too in recent versions,
/// not on noida). A body whose documents come from kNN searches has no query (esgate adds
/// none beside a kNN search: it would OR every tenant document into the kNN hits, security.md
/// B6), so the expansion matched every document of the index with the hit's value, other
/// tenants' included, and returned them, sources and all, as inner hits (seen on noida with a
/// top-level `knn` and with a `knn` retriever).
fn collapse_expands_within_the_query(
    obj: &Map<String, Value>,
    filters: &FilterSet,
) -> Result<(), Rejection> {
    let expands = obj
        .get("collapse")
        .is_some_and(|c| c.get("inner_hits").is_some());
    if !expands || filters.is_empty() {
        return Ok(());
    }
    let scoped = match obj.get("retriever") {
        Some(r) => r.get("standard").is_some(),
        None => {
            let knn = match obj.get("knn") {
                Some(Value::Array(items)) => !items.is_empty(),
                Some(_) => true,
                None => false,
            };
            (obj.contains_key("query") || !knn) && !obj.contains_key("sub_searches")
        }
    };
    if scoped {
        return Ok(());
    }
    Err(Rejection::forbidden(
        "[collapse] with [inner_hits] needs a [query] (or a standard retriever) for this token: without one its groups are expanded over every document of the index",
    ))
}

/// Whether a `highlight` object highlights with the search's query: it has no
/// `highlight_query` of its own.
///
/// Review 14 (the leak oracle): the backend highlights the terms of the query it runs, and
/// after the rewrite that query holds the token's filter clauses (`bool.filter` clauses are
/// highlighted too), so `"highlight": {"fields": {"*": {}}}` (Kibana's Discover, Grafana's
/// logs) marked the filter's terms in every hit (`tenant: a`): the token learnt its filters'
/// fields and values, and its answers differed from a cluster holding only its documents.
/// Such a highlight gets the client's own query as its `highlight_query` ([`own_query`]).
fn highlight_needs_query(highlight: J<'_>) -> bool {
    highlight.get("highlight_query").is_none()
}

/// The query the client asked for, before the token's filters are added: the body's `query`
/// (beside a kNN search too: its vectors highlight nothing), a standard retriever's `query`
/// and `filter` (the backend highlights the terms of both), else `match_all` (a kNN-only,
/// hybrid or other retriever search highlights nothing then: fewer highlights than the
/// backend would give, never the filters).
fn own_query(obj: &Map<String, Value>) -> Value {
    let match_all = || single("match_all", Value::Object(Map::new()));
    let Some(r) = obj.get("retriever") else {
        return obj.get("query").cloned().unwrap_or_else(match_all);
    };
    let standard = r.get("standard");
    let query = standard
        .and_then(|s| s.get("query"))
        .cloned()
        .unwrap_or_else(match_all);
    match standard.and_then(|s| s.get("filter")) {
        None => query,
        Some(filter) => {
            let filter = match filter {
                Value::Array(items) => Value::Array(items.clone()),
                one => Value::Array(vec![one.clone()]),
            };
            let mut b = Map::new();
            b.insert("must".to_string(), Value::Array(vec![query]));
            b.insert("filter".to_string(), filter);
            single("bool", Value::Object(b))
        }
    }
}

/// A `highlight` of `top_hits` or of `collapse.inner_hits` (which highlight with the search's
/// query, filters included, as the top-level one does: [`highlight_needs_query`]) must have its
/// own `highlight_query`; refused without one (not copied in: a copy of the query per
/// aggregation would multiply the body). Inner hits of `nested`, `has_child` and `has_parent`
/// highlight with their clause's own query and are not concerned; they are allowed either way.
fn nested_highlights_have_queries(v: J<'_>) -> Result<(), Rejection> {
    match v {
        J::Object(m) => {
            for key in ["top_hits", "inner_hits"] {
                let Some(options) = m.get(key) else {
                    continue;
                };
                // Inner hits of a query clause (it has a path or a type) are not concerned.
                if key == "inner_hits"
                    && ["path", "type", "parent_type"]
                        .iter()
                        .any(|k| m.get(k).is_some())
                {
                    continue;
                }
                let bare = |o: J<'_>| o.get("highlight").is_some_and(highlight_needs_query);
                let refused = match options {
                    J::Array(items) => items.iter().any(bare),
                    o => bare(o),
                };
                if refused {
                    return Err(Rejection::forbidden(format!(
                        "[highlight] in [{key}] needs its own [highlight_query] for this token (it would highlight the token's filters)"
                    )));
                }
            }
            m.try_each(|_, child| nested_highlights_have_queries(child))
        }
        J::Array(items) => items.try_each(nested_highlights_have_queries),
        _ => Ok(()),
    }
}

/// [`search`] over the borrowed tree (issue 10, goal 6) for the bodies it covers: the same
/// checks (the [`J`] view of the same tables and code), then the same edits on the tree.
///
/// `Ok(None)` leaves the body to [`search`]: a body that is not an object, or that has a
/// retriever, sub-searches, a top-level kNN, or a kNN key anywhere once wrapped (the kNN filter
/// injection has no tree version yet). A refusal here is `search`'s refusal too (the checks are
/// the same code); callers rerun `search` for its message, so only accepted bodies must match.
/// `knn_key`: whether a key of the body may be `knn` (its arena's
/// [`Arena::has_knn_key`](crate::request::tree::Arena::has_knn_key); `true` is always sound).
/// `highlight_keys`: how many keys of the body are `highlight` (its parse's share of
/// [`Arena::highlight_keys`](crate::request::tree::Arena::highlight_keys)): a body with one
/// anywhere but at the top level is left to `search` (`nested_highlights_have_queries`).
/// `accepted`: the top-level entries the request's earlier searches had accepted (an
/// `_msearch`'s), not checked again; `None` for a request of one search.
pub(crate) fn search_tree<'a>(
    body: Node<'a>,
    knn_key: bool,
    highlight_keys: usize,
    filters: &'a FilterSet,
    mut accepted: Option<&mut Accepted<'a>>,
) -> Result<Option<Node<'a>>, Rejection> {
    // The top level is always changed (at least its query is wrapped): its entries move into
    // a built object (`Node::into_entries`), each unchanged one keeping its source text.
    let Some(mut obj) = body.into_entries() else {
        return Ok(None);
    };
    // One pass over the top-level keys for what the steps below look for (issue 10: a scan
    // per step, nine in all, each comparing every key). The tree has no duplicate keys.
    let (mut aggs, mut aggregations, mut empty_dropped, mut sort_list) =
        (false, false, false, false);
    let mut highlight = None;
    for (i, (k, v)) in obj.iter().enumerate() {
        match &**k {
            "retriever" | "sub_searches" | "knn" => return Ok(None),
            // Its rescore query goes under `constant_score` (`constant_scores`), on the serde
            // path only.
            "rescore" if filters.constant_scores() => return Ok(None),
            "highlight" => highlight = Some(i),
            "aggs" => aggs = true,
            "aggregations" => aggregations = true,
            "runtime_mappings" | "script_fields" => {
                empty_dropped |= v.object_len() == Some(0);
            }
            "sort" => sort_list = v.object_len() > Some(1),
            _ => {}
        }
    }
    if highlight_keys > usize::from(highlight.is_some()) {
        return Ok(None);
    }
    if aggs && aggregations {
        return Err(Rejection::bad_request(
            "body has both [aggs] and [aggregations]",
        ));
    }
    // As `search`: empty `runtime_mappings` and `script_fields` dropped (serde_json's
    // `remove` is a swap-remove: the last entry takes the removed one's place).
    if empty_dropped {
        for key in ["runtime_mappings", "script_fields"] {
            if let Some(i) = obj
                .iter()
                .position(|(k, v)| k == key && v.object_len() == Some(0))
            {
                obj.swap_remove(i);
            }
        }
    }
    let mut query = None;
    for (i, entry) in obj.iter().enumerate() {
        let (key, value) = entry;
        if key == "query" && query.is_none() {
            query = Some(i);
        }
        if accepted.as_ref().is_some_and(|a| a.holds(entry)) {
            continue;
        }
        check_key(TOP_LEVEL, key, J::from(value))?;
        if let Some(a) = accepted.as_deref_mut() {
            a.add(entry);
        }
    }
    // No retriever, sub-search or top-level kNN: the query is wrapped (removed and appended,
    // as `wrap_entry_points` does).
    let query = query.map(|i| obj.swap_remove(i).1);
    // As `search`: a top-level `highlight` without its own query highlights with the client's
    // (`highlight_needs_query`). Looked up again: the empty entries dropped and the query
    // taken out above moved entries (the key is unique).
    if highlight.is_some() {
        if let Some((_, h)) = obj.iter_mut().find(|(k, _)| k == "highlight") {
            // Opened first: its entries are then compared as built ones (the parsed object's
            // lookup reads the tape); one with its own query is written alike either way.
            h.open();
            if let Node::Object(entries) = h {
                if !entries.iter().any(|(k, _)| k == "highlight_query") {
                    let own = query.clone().unwrap_or_else(|| {
                        Node::object(vec![(Cow::Borrowed("match_all"), Node::object(Vec::new()))])
                    });
                    entries
                        .make_mut()
                        .push((Cow::Borrowed("highlight_query"), own));
                }
            }
        }
    }
    obj.push((Cow::Borrowed("query"), wrap_tree(query, filters)));
    let mut out = Node::object(obj);
    if !filters.is_empty()
        && may_hold_knn(knn_key, filters)
        && has_key_anywhere(J::from(&out), "knn")
    {
        return Ok(None);
    }
    // A sort object with several fields becomes the equivalent list (as `search`).
    if let (true, Node::Object(entries)) = (sort_list, &mut out) {
        if let Some((_, sort)) = entries.make_mut().iter_mut().find(|(k, _)| k == "sort") {
            if sort.object_len() > Some(1) {
                if let Some(fields) = std::mem::replace(sort, Node::Null).into_entries() {
                    let list = fields
                        .into_iter()
                        .map(|(k, v)| Node::object(vec![(k, v)]))
                        .collect();
                    *sort = Node::array(list);
                }
            }
        }
    }
    Ok(Some(out))
}

/// Top-level entries of the searches of one request that [`search_tree`] checked and accepted
/// (`check_key` of [`TOP_LEVEL`]), by key and source text, so that the same entry in a later
/// search of the request is not checked again (issue 10, goal 6: a dashboard's `_msearch`
/// repeats its panels' aggregations and time range in every search; a panel repeated per
/// variable value differs only in its query text). Sound because `check_key` decides from the
/// key and the value alone (no other part of the body, no state), and equal source text is an
/// equal value: only a parsed container that kept its source text (no escape) is
/// held, with its key (compared as text). Only acceptances are held, so a refusal is made
/// where and as it was. Small containers (cheaper to check than to look up)
/// are not held, and at most [`Accepted::MAX`] entries ([`Accepted::PER_KEY`] a key), each
/// looked up by its length first.
/// `repeated_entries_decide_as_when_checked` (msearch tests) holds it to checking every entry.
#[derive(Default)]
pub(crate) struct Accepted<'a> {
    entries: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Accepted<'a> {
    /// Most entries held.
    const MAX: usize = 32;
    /// Shortest source text held.
    const MIN_LEN: usize = 48;
    /// Most entries held under one key: a key whose value changes from search to search (a
    /// query per panel) is looked up in a few texts, not in every earlier search's.
    const PER_KEY: usize = 4;

    /// The entry's key and source text, when it is one [`Accepted`] may hold.
    fn text(entry: &(Cow<'a, str>, Node<'a>)) -> Option<(&'a str, &'a [u8])> {
        match entry {
            (Cow::Borrowed(k), Node::Parsed(p)) => {
                let raw = p.raw()?;
                (raw.len() >= Self::MIN_LEN).then_some((*k, raw))
            }
            _ => None,
        }
    }

    /// Whether the same entry was checked and accepted before.
    fn holds(&self, entry: &(Cow<'a, str>, Node<'a>)) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let Some((key, raw)) = Self::text(entry) else {
            return false;
        };
        self.entries
            .iter()
            .any(|(k, r)| r.len() == raw.len() && *k == key && *r == raw)
    }

    /// The entry, just checked and accepted.
    fn add(&mut self, entry: &(Cow<'a, str>, Node<'a>)) {
        if self.entries.len() < Self::MAX {
            if let Some(entry) = Self::text(entry) {
                if self.entries.iter().filter(|(k, _)| *k == entry.0).count() < Self::PER_KEY {
                    self.entries.push(entry);
                }
            }
        }
    }
}

/// [`count`] over the borrowed tree: `{"query": wrap(query)}`. `Ok(None)` leaves the body to
/// `count`: not an object, or a kNN key in the query (its filter injection has no tree
/// version yet); refusals are `count`'s (the same check code), callers rerun it for them.
pub(crate) fn count_tree<'a>(
    body: Node<'a>,
    knn_key: bool,
    filters: &'a FilterSet,
) -> Result<Option<Node<'a>>, Rejection> {
    let Some(mut obj) = body.into_entries() else {
        return Ok(None);
    };
    if let Some((key, _)) = obj.iter().find(|(k, _)| k != "query") {
        return Err(crate::dsl::query::key_not_allowed(key));
    }
    let query = obj.pop().map(|(_, q)| q);
    if let Some(q) = &query {
        crate::dsl::query::check(J::from(q))?;
        if !filters.is_empty()
            && may_hold_knn(knn_key, filters)
            && has_key_anywhere(J::from(q), "knn")
        {
            return Ok(None);
        }
    }
    Ok(Some(Node::object(vec![(
        Cow::Borrowed("query"),
        wrap_tree(query, filters),
    )])))
}

/// `query::wrap_unwalked` on the tree: `{"bool": {"filter": clauses, "must": [query]}}`, the
/// clauses' strings borrowed from the token's [`FilterSet`] (`Node::reborrow`), which outlives
/// the request's tree.
fn wrap_tree<'a>(query: Option<Node<'a>>, filters: &'a FilterSet) -> Node<'a> {
    // As `query::wrap`: the client's query under `constant_score` for a token with constant
    // scores (review 15).
    let inner = match query {
        Some(q) if filters.constant_scores() => Node::object(vec![(
            Cow::Borrowed("constant_score"),
            Node::object(vec![(Cow::Borrowed("filter"), q)]),
        )]),
        Some(q) => q,
        None => Node::object(vec![(Cow::Borrowed("match_all"), Node::object(Vec::new()))]),
    };
    let mut bool_query = Vec::with_capacity(2);
    if !filters.is_empty() {
        // The token's clauses as they are in its filter set, not copied, their text written
        // once.
        bool_query.push((Cow::Borrowed("filter"), filters.clause_array()));
    }
    bool_query.push((Cow::Borrowed("must"), Node::array(vec![inner])));
    Node::object(vec![(Cow::Borrowed("bool"), Node::object(bool_query))])
}

/// Whether the body or the token's clauses may hold a `knn` key: `knn_key` says it of the
/// body (its parse's [`Arena::has_knn_key`](crate::request::tree::Arena::has_knn_key), exact:
/// the parser compares every key it reads, decoded), and the [`FilterSet`] knows it of its
/// clauses since it was built. Spares the walk of the tree for it.
fn may_hold_knn(knn_key: bool, filters: &FilterSet) -> bool {
    knn_key || filters.clauses_hold_knn()
}

/// Whether `key` is a key of any object in `v`, read through [`J`]: built, shared and parsed
/// containers alike.
pub(crate) fn has_key_anywhere(v: J<'_>, key: &str) -> bool {
    match v {
        J::Object(m) => m
            .iter()
            .any(|(k, child)| k == key || has_key_anywhere(child, key)),
        J::Array(items) => items.iter().any(|i| has_key_anywhere(i, key)),
        _ => false,
    }
}

/// The token's filters around a retriever-less body's entry points: every sub-search, the
/// query (unless the body is kNN-only) and every top-level kNN.
fn wrap_entry_points(obj: &mut Map<String, Value>, filters: &FilterSet) -> Result<(), Rejection> {
    let hybrid = obj.contains_key("sub_searches");
    if let Some(Value::Array(subs)) = obj.get_mut("sub_searches") {
        // Each sub-search is a query of its own: each gets the token's filters.
        for sub in subs.iter_mut() {
            if let Some(m) = sub.as_object_mut() {
                let q = m.remove("query");
                m.insert("query".to_string(), wrap_unwalked(q, filters));
            }
        }
    }
    if hybrid && obj.contains_key("query") {
        return Err(Rejection::bad_request(
            "[sub_searches] cannot be used together with [query]",
        ));
    }
    let knn_only = !obj.contains_key("query")
        && match obj.get("knn") {
            Some(Value::Array(items)) => !items.is_empty(),
            Some(Value::Object(_)) => true,
            _ => false,
        };
    if !knn_only && !hybrid {
        // With only `knn`, adding a query would OR every tenant document into the kNN hits
        // (security.md B6); the kNN filters below carry the token clauses instead.
        let query = obj.remove("query");
        obj.insert("query".to_string(), wrap_unwalked(query, filters));
    }
    if let Some(knn) = obj.get_mut("knn") {
        inject_knn(knn, filters)?;
    }
    Ok(())
}

/// Validates a `_count` body (`query` only) and returns `{"query": wrap(...)}`.
pub fn count(body: Option<Value>, filters: &FilterSet) -> Result<Value, Rejection> {
    let mut obj = into_object(body)?;
    for key in obj.keys() {
        if key != "query" {
            return Err(crate::dsl::query::key_not_allowed(key));
        }
    }
    let query = obj.remove("query");
    if let Some(q) = &query {
        check_query(q)?;
        crate::dsl::query::unique_inner_hits(J::from(q), &mut Vec::new())?;
    }
    Ok(single("query", wrap(query, filters)))
}

/// The keys of a search body and what each takes.
const TOP_LEVEL: Table = table![
    (&["query", "post_filter"], Slot::Query),
    (&["size", "from", "terminate_after"], Slot::Uint),
    (&["timeout"], Slot::Str),
    (&["track_total_hits"], Slot::Check(track_total_hits)),
    (&["min_score"], Slot::ScoreThreshold),
    (&["version", "track_scores"], Slot::Bool),
    (
        &["seq_no_primary_term"],
        Slot::Check(no_seq_no_primary_term),
    ),
    (&["explain", "profile"], Slot::Check(only_false)),
    (&["_source"], Slot::Check(check_source)),
    (&["fields", "docvalue_fields"], Slot::Check(check_fields)),
    (&["stored_fields"], Slot::Check(check_stored_fields)),
    (&["sort"], Slot::Sort(SortAt::TopLevel)),
    (&["search_after"], Slot::Check(search_after)),
    (&["aggs", "aggregations"], Slot::Check(aggregations)),
    (&["highlight"], Slot::Check(check_highlight)),
    (&["collapse"], Slot::Check(check_collapse)),
    (&["knn"], Slot::Check(top_level_knn)),
    (&["slice"], Slot::Check(slice)),
    (&["rescore"], Slot::Check(rescores)),
    (&["stats"], Slot::Strings),
    // Checked and filtered by `retriever::rewrite_in_body`.
    (&["retriever"], Slot::Check(checked_by_retriever)),
    (&["sub_searches"], Slot::Check(check_sub_searches)),
    (&["rank"], Slot::Object("rank", RANK)),
    (
        &[
            "pit",
            "runtime_mappings",
            "script_fields",
            "suggest",
            "indices_boost",
            "ext",
            "search_pipeline",
            "derived",
            "scroll",
        ],
        Slot::Feature,
    ),
];

/// `rank`: reciprocal rank fusion with its numeric options only.
const RANK: Table = table![(
    &["rrf"],
    Slot::Flat(keys!["window_size", "rank_window_size", "rank_constant"]),
)];
const RESCORE: Table = table![
    (&["window_size"], Slot::Uint),
    (&["query"], Slot::Object("rescore query", RESCORE_QUERY)),
];
const RESCORE_QUERY: Table = table![
    (&["rescore_query"], Slot::Query),
    (
        &["query_weight", "rescore_query_weight", "score_mode"],
        Slot::Scalar,
    ),
];
const SUB_SEARCH: Table = table![(&["query"], Slot::Query)];

fn checked_by_retriever(_: J<'_>, _: &str) -> Result<(), Rejection> {
    Ok(())
}

fn track_total_hits(v: J<'_>, key: &str) -> Result<(), Rejection> {
    match v {
        J::Bool(_) => Ok(()),
        _ => uint(v, key),
    }
}

fn search_after(v: J<'_>, key: &str) -> Result<(), Rejection> {
    array_of(v, key, |x| scalar(x, key))
}

fn aggregations(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    check_aggs(v)
}

fn top_level_knn(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    match v {
        J::Array(items) => items.iter().try_for_each(check_knn),
        _ => check_knn(v),
    }
}

/// `slice`: its `id` and `max` (`values::check_slice`), and its `field` checked as every field
/// position is (`fields::check`, deny by default for metadata names): Elasticsearch keeps a
/// document in slice `id` when the hash of its value of `field` modulo `max` is `id`, so
/// slicings with many `max`s rebuild the value, whatever field it is (attack24).
/// `ids::ordinals` decides which continuations may slice, and over which counters.
fn slice(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    flat(v, keys!["id", "max", "field"])?;
    values::check_slice(v)?;
    match v.get("field") {
        None => Ok(()),
        Some(J::String(f)) => fields::check(f, Position::Data),
        Some(_) => Err(Rejection::bad_request("[slice.field] must be a string")),
    }
}

fn rescores(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    match v {
        J::Array(items) => items.iter().try_for_each(|i| keyed(i, "rescore", RESCORE)),
        _ => keyed(v, "rescore", RESCORE),
    }
}

/// `sub_searches` (Elasticsearch 8.8+ hybrid search): a non-empty list of `{"query": ...}`.
fn check_sub_searches(v: J<'_>, _key: &str) -> Result<(), Rejection> {
    let J::Array(items) = v else {
        return Err(Rejection::bad_request("[sub_searches] must be a list"));
    };
    if items.is_empty() {
        return Err(Rejection::bad_request("[sub_searches] must not be empty"));
    }
    for item in items {
        keyed(item, "sub_searches", SUB_SEARCH)?;
        if item.get("query").is_none() {
            return Err(Rejection::bad_request(
                "each of [sub_searches] needs [query]",
            ));
        }
    }
    Ok(())
}

fn inject_knn(knn: &mut Value, filters: &FilterSet) -> Result<(), Rejection> {
    match knn {
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|i| inject_knn_one(i, filters)),
        _ => inject_knn_one(knn, filters),
    }
}

fn inject_knn_one(knn: &mut Value, filters: &FilterSet) -> Result<(), Rejection> {
    let Value::Object(m) = knn else {
        return Err(Rejection::bad_request("[knn] must be an object"));
    };
    prepend_clauses(m, filters.clauses());
    Ok(())
}

fn into_object(body: Option<Value>) -> Result<Map<String, Value>, Rejection> {
    match body {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(Rejection::bad_request("request body must be a JSON object")),
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;
    use crate::dsl::query::assert_each_key_once;

    #[test]
    fn tables_name_each_key_once() {
        for (name, table) in [
            ("TOP_LEVEL", TOP_LEVEL),
            ("RANK", RANK),
            ("RESCORE", RESCORE),
            ("RESCORE_QUERY", RESCORE_QUERY),
            ("SUB_SEARCH", SUB_SEARCH),
        ] {
            assert_each_key_once(name, table);
            crate::dsl::query::assert_lookups_are_the_scans(name, table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RejectKind;

    /// Asserts that a search with `body` is refused for tenant a, with `kind`.
    #[track_caller]
    fn refused_as(body: &Value, kind: RejectKind) {
        let got = search(Some(body.clone()), &tenant_a());
        assert_eq!(got.map_err(|r| r.kind), Err(kind), "{body}");
    }

    fn tenant_a() -> FilterSet {
        FilterSet::new([("tenant".to_string(), "a".to_string())])
    }

    /// The parse's `knn` key flag (`Arena::has_knn_key`, which `may_hold_knn` reads in place of
    /// a scan of the body's text, issue 10) says exactly what a walk of the parsed tree finds
    /// (`has_key_anywhere`): keys `knn` plain and escaped, at any depth, next to near misses,
    /// `knn` as a string value, in arrays, and the same for every body of an arena (as an
    /// msearch's lines share one).
    #[test]
    fn the_parse_counts_highlight_keys_as_a_walk_counts_them() {
        use crate::request::tree;
        fn count(v: J<'_>) -> usize {
            match v {
                J::Object(m) => m
                    .iter()
                    .map(|(k, c)| usize::from(k == "highlight") + count(c))
                    .sum(),
                J::Array(items) => items.iter().map(count).sum(),
                _ => 0,
            }
        }
        let keys = [
            "highlight",
            "h\\u0069ghlight",
            "highligh\\u0074",
            "highlights",
            "Highlight",
            "x",
        ];
        let mut bodies = Vec::new();
        for k in keys {
            for other in keys {
                bodies.push(format!(r#"{{"{k}":{{"fields":{{"*":{{}}}}}}}}"#));
                bodies.push(format!(
                    r#"{{"{other}":"{k}","aggs":{{"t":{{"top_hits":{{"{k}":{{}}}}}}}}}}"#
                ));
                bodies.push(format!(
                    r#"{{"q":[{{"{k}":1}},{{"{other}":{{"{k}":[]}}}}]}}"#
                ));
            }
        }
        let mut found = 0;
        for body in &bodies {
            let arena = tree::Arena::default();
            let Ok(parsed) = tree::parse(body.as_bytes(), &arena) else {
                assert!(
                    crate::request::body::parse_strict(body.as_bytes()).is_err(),
                    "{body}"
                );
                continue;
            };
            let walked = count(J::from(&parsed));
            assert_eq!(arena.highlight_keys(), walked, "{body}");
            found += walked;
        }
        assert!(found > 50, "{found}");
    }

    #[test]
    fn the_parse_knows_knn_keys_as_a_walk_finds_them() {
        use crate::request::tree;
        let keys = [
            "knn",
            "k\\u006en",
            "\\u006bnn",
            "kn\\u006e",
            "kn",
            "knnn",
            "Knn",
            "knn ",
            "k\\nn",
            "a",
        ];
        let mut bodies = Vec::new();
        for k in keys {
            for other in ["a", "knn", "kn"] {
                bodies.push(format!(r#"{{"{k}":1}}"#));
                bodies.push(format!(r#"{{"{other}":"{k}","x":["{k}"]}}"#));
                bodies.push(format!(r#"{{"{other}":{{"b":[{{"{k}":{{}}}}]}}}}"#));
                bodies.push(format!(r#"{{"{other}":1, "{k}" : [1]}}"#));
                bodies.push(format!(r#"[{{"{other}":{{"{k}":null}}}},"{k}"]"#));
                bodies.push(format!(
                    r#"{{"q":{{"{other}":2}},"r":[{{"s":{{"{k}":[]}}}}]}}"#
                ));
            }
        }
        let mut found = 0;
        for body in &bodies {
            let arena = tree::Arena::default();
            let Ok(parsed) = tree::parse(body.as_bytes(), &arena) else {
                // Only duplicate keys (`{"knn":1,"k\u006en":[1]}`) are refused, as serde's.
                assert!(crate::request::body::parse_strict(body.as_bytes()).is_err());
                continue;
            };
            let walked = has_key_anywhere(J::from(&parsed), "knn");
            assert_eq!(arena.has_knn_key(), walked, "{body}");
            found += usize::from(walked);
        }
        assert!(
            found > 20 && found < bodies.len() - 20,
            "{found} of {}",
            bodies.len()
        );
        // One arena for several bodies knows of any of them.
        let arena = tree::Arena::default();
        for body in [r#"{"a":1}"#, r#"{"b":{"knn":1}}"#, r#"{"c":2}"#] {
            tree::parse(body.as_bytes(), &arena).unwrap();
        }
        assert!(arena.has_knn_key());
    }

    /// A filter on a field named `knn` puts a `knn` key in every wrapped body: the tree path
    /// leaves such bodies to `search` (known once per `FilterSet`, no longer per search), and
    /// writes the clauses it borrows as `search` writes its own.
    #[test]
    fn clauses_with_a_knn_key_are_known_once_and_borrowed_clauses_match_search() {
        let body = br#"{"query":{"match":{"msg":"x"}}}"#;
        let knn = FilterSet::new([("knn".to_string(), "a".to_string())]);
        assert!(knn.clauses_hold_knn());
        assert!(!tenant_a().clauses_hold_knn());
        let arena = crate::request::tree::Arena::default();
        let tree = crate::request::tree::parse(body, &arena).unwrap();
        assert!(search_tree(tree, arena.has_knn_key(), 0, &knn, None)
            .unwrap()
            .is_none());
        let two = FilterSet::new([
            ("tenant".to_string(), "a".to_string()),
            ("tenant".to_string(), "b\"c".to_string()),
            ("team".to_string(), "x".to_string()),
        ]);
        for filters in [tenant_a(), two, FilterSet::default()] {
            let tree = crate::request::tree::parse(body, &arena).unwrap();
            let out = search_tree(tree, arena.has_knn_key(), 0, &filters, None)
                .unwrap()
                .unwrap();
            let mut bytes = Vec::new();
            crate::request::tree::write(&out, &mut bytes);
            let serde = search(Some(serde_json::from_slice(body).unwrap()), &filters).unwrap();
            assert_eq!(bytes, serde_json::to_vec(&serde).unwrap());
        }
    }

    #[test]
    fn text_queries_are_nested_no_deeper_than_uri_search_and_keep_the_regex_guard() {
        let nested = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        for ty in ["query_string", "simple_query_string"] {
            let ok = json!({"query": {ty: {"query": nested(32)}}});
            assert!(search(Some(ok), &tenant_a()).is_ok(), "{ty}");
            let deep = json!({"query": {ty: {"query": nested(200)}}});
            let err = search(Some(deep), &tenant_a()).unwrap_err();
            assert_eq!(err.kind, RejectKind::BadRequest, "{ty}");
        }
        for q in [
            json!({"query_string": {"query": "a", "max_determinized_states": 100000000}}),
            json!({"regexp": {"user": {"value": "a.*", "max_determinized_states": 100000000}}}),
        ] {
            assert!(search(Some(json!({ "query": q })), &tenant_a()).is_err());
        }
    }

    fn tenant_clause() -> Value {
        json!({"term":{"tenant":{"value":"a"}}})
    }

    #[test]
    fn missing_or_empty_body_becomes_the_wrapped_filter() {
        let want = json!({"query":{"bool":{"filter":[tenant_clause()],"must":[{"match_all":{}}]}}});
        assert_eq!(search(None, &tenant_a()).unwrap(), want); // BODY-43
        assert_eq!(search(Some(json!({})), &tenant_a()).unwrap(), want); // BODY-42
        assert_eq!(count(None, &tenant_a()).unwrap(), want); // A20
    }

    #[test]
    fn wraps_the_user_query_without_merging() {
        // BODY-38 / BODY-39: the user's own bool is kept as is inside must.
        let user =
            json!({"bool":{"filter":[{"term":{"tenant":"b"}}],"should":[{"match":{"m":"x"}}]}});
        let got = search(Some(json!({"query": user.clone(), "size": 5})), &tenant_a()).unwrap();
        assert_eq!(
            got,
            json!({"size":5,"query":{"bool":{"filter":[tenant_clause()],"must":[user]}}})
        );
    }

    /// Review 15: with constant scores the client's query runs under `constant_score` at every
    /// entry point (query, sub-searches, a standard retriever's query, beside a top-level kNN,
    /// `_count`), every rescore query and every `nested` clause with inner hits too; the body
    /// of no query stays `match_all` (1.0 already). With relevance scores (the set's default)
    /// the rewrite is the one the tests above pin.
    #[test]
    fn constant_scores_wrap_every_scored_query() {
        let constant = tenant_a().with_constant_scores(true);
        assert!(constant.constant_scores() && !tenant_a().constant_scores());
        let q = json!({"match": {"m": "x"}});
        let cs = |q: Value| json!({"constant_score": {"filter": q}});
        let wrapped = |q: Value| json!({"bool": {"filter": [tenant_clause()], "must": [q]}});

        let got = search(Some(json!({"query": q.clone(), "size": 5})), &constant).unwrap();
        assert_eq!(got, json!({"size": 5, "query": wrapped(cs(q.clone()))}));
        let got = count(Some(json!({"query": q.clone()})), &constant).unwrap();
        assert_eq!(got, json!({"query": wrapped(cs(q.clone()))}));
        let none = json!({"query": wrapped(json!({"match_all": {}}))});
        assert_eq!(search(None, &constant).unwrap(), none);
        assert_eq!(count(None, &constant).unwrap(), none);

        let got = search(
            Some(json!({"sub_searches": [{"query": q.clone()}], "rank": {"rrf": {}}})),
            &constant,
        )
        .unwrap();
        assert_eq!(got["sub_searches"][0]["query"], wrapped(cs(q.clone())));
        let got = search(
            Some(
                json!({"retriever": {"rrf": {"retrievers": [{"standard": {"query": q.clone()}}]}}}),
            ),
            &constant,
        )
        .unwrap();
        assert_eq!(
            got["retriever"]["rrf"]["retrievers"][0]["standard"]["query"],
            wrapped(cs(q.clone()))
        );
        let knn = json!({"field": "v", "query_vector": [1.0], "k": 1, "num_candidates": 2});
        let got = search(Some(json!({"query": q.clone(), "knn": knn})), &constant).unwrap();
        assert_eq!(got["query"], wrapped(cs(q.clone())));

        let rescore = |q: Value| json!({"window_size": 5, "query": {"rescore_query": q}});
        let got = search(
            Some(json!({"query": q.clone(), "rescore": [rescore(q.clone()), rescore(q.clone())]})),
            &constant,
        )
        .unwrap();
        assert_eq!(
            got["rescore"],
            json!([rescore(cs(q.clone())), rescore(cs(q.clone()))])
        );
        let got = search(
            Some(json!({"query": q.clone(), "rescore": rescore(q.clone())})),
            &constant,
        )
        .unwrap();
        assert_eq!(got["rescore"], rescore(cs(q.clone())));

        let nested = |q: Value, hits: bool| {
            let path = if hits { "c" } else { "d" };
            let mut n = json!({"path": path, "query": q});
            if hits {
                n["inner_hits"] = json!({"size": 2});
            }
            json!({"nested": n})
        };
        let body = json!({"query": {"bool": {"should": [nested(q.clone(), true), nested(q.clone(), false)]}},
                          "post_filter": {"bool": {"filter": [nested(q.clone(), false)]}}});
        let got = search(Some(body.clone()), &constant).unwrap();
        assert_eq!(
            got["query"],
            wrapped(cs(
                json!({"bool": {"should": [nested(cs(q.clone()), true), nested(q.clone(), false)]}})
            ))
        );
        assert_eq!(got["post_filter"], body["post_filter"]);
        let body = json!({"post_filter": nested(q.clone(), true)});
        let got = search(Some(body), &constant).unwrap();
        assert_eq!(got["post_filter"], nested(cs(q.clone()), true));

        // Relevance: none of it.
        let body = json!({"query": nested(q.clone(), true), "rescore": rescore(q.clone())});
        let got = search(Some(body), &tenant_a()).unwrap();
        assert_eq!(got["query"], wrapped(nested(q.clone(), true)));
        assert_eq!(got["rescore"], rescore(q.clone()));
    }

    /// The tree path writes the constant wrap byte for byte as `search`, and leaves a body
    /// with a rescore to it (its rescore query is wrapped there).
    #[test]
    fn the_tree_path_wraps_constant_scores_as_search_does() {
        use crate::request::tree;
        let constant = tenant_a().with_constant_scores(true);
        for body in [
            &br#"{"query":{"match":{"msg":"x"}},"size":3}"#[..],
            br#"{"size":0,"aggs":{"t":{"terms":{"field":"f"}}}}"#,
            br#"{"query":{"bool":{"must":[{"term":{"a":"b"}}]}},"highlight":{"fields":{"m":{}}}}"#,
        ] {
            for filters in [&constant, &tenant_a()] {
                let arena = tree::Arena::default();
                let parsed = tree::parse(body, &arena).unwrap();
                let out = search_tree(
                    parsed,
                    arena.has_knn_key(),
                    arena.highlight_keys(),
                    filters,
                    None,
                )
                .unwrap()
                .unwrap();
                let mut bytes = Vec::new();
                tree::write(&out, &mut bytes);
                let serde = search(Some(serde_json::from_slice(body).unwrap()), filters).unwrap();
                assert_eq!(bytes, serde_json::to_vec(&serde).unwrap());
            }
        }
        let body = br#"{"query":{"match":{"m":"x"}},"rescore":{"query":{"rescore_query":{"match":{"m":"y"}}}}}"#;
        let arena = tree::Arena::default();
        let parsed = tree::parse(body, &arena).unwrap();
        assert!(search_tree(parsed, false, 0, &constant, None)
            .unwrap()
            .is_none());
        let parsed = tree::parse(body, &arena).unwrap();
        assert!(search_tree(parsed, false, 0, &tenant_a(), None)
            .unwrap()
            .is_some());
        let count_body = br#"{"query":{"match":{"m":"x"}}}"#;
        for filters in [&constant, &tenant_a()] {
            let parsed = tree::parse(count_body, &arena).unwrap();
            let out = count_tree(parsed, false, filters).unwrap().unwrap();
            let mut bytes = Vec::new();
            tree::write(&out, &mut bytes);
            let serde = count(Some(serde_json::from_slice(count_body).unwrap()), filters).unwrap();
            assert_eq!(bytes, serde_json::to_vec(&serde).unwrap());
        }
    }

    #[test]
    fn without_token_filters_the_wrapper_has_only_must() {
        let got = search(
            Some(json!({"query":{"term":{"x":"y"}}})),
            &FilterSet::default(),
        )
        .unwrap();
        assert_eq!(got, json!({"query":{"bool":{"must":[{"term":{"x":"y"}}]}}}));
        // Checks still apply.
        assert!(search(
            Some(json!({"aggs":{"g":{"global":{}}}})),
            &FilterSet::default()
        )
        .is_err());
    }

    #[test]
    fn several_values_and_fields_become_terms_and_term_clauses() {
        let f = FilterSet::new([
            ("tenant".to_string(), "a".to_string()),
            ("tenant".to_string(), "b".to_string()),
            ("env".to_string(), "prod".to_string()),
        ]);
        let got = count(Some(json!({"query":{"match_all":{}}})), &f).unwrap();
        assert_eq!(
            got,
            json!({"query":{"bool":{"filter":[
                {"term":{"env":{"value":"prod"}}},
                {"terms":{"tenant":["a","b"]}}
            ],"must":[{"match_all":{}}]}}})
        );
    }

    #[test]
    fn knn_elements_get_the_token_filter() {
        // BODY-11: object form without filter.
        let got = search(
            Some(json!({"knn":{"field":"vec","query_vector":[1,0],"k":5,"num_candidates":10}})),
            &tenant_a(),
        )
        .unwrap();
        assert_eq!(got["knn"]["filter"], json!([tenant_clause()]));
        // A kNN-only search stays kNN-only: no match_all query is OR-ed in (B6).
        assert!(got.get("query").is_none(), "{got}");
        // An empty kNN array retrieves nothing by itself, so the wrapped query is added.
        let got = search(Some(json!({"knn": []})), &tenant_a()).unwrap();
        assert_eq!(got["query"]["bool"]["filter"], json!([tenant_clause()]));
        // BODY-12: array form with its own filter plus a query.
        let got = search(
            Some(json!({"query":{"match_all":{}},"knn":[
                {"field":"vec","query_vector":[1,0],"k":5,"num_candidates":10,"filter":{"term":{"env":"x"}}},
                {"field":"vec","query_vector":[0,1],"k":5,"num_candidates":10,"filter":[{"term":{"env":"y"}}]}
            ]})),
            &tenant_a(),
        )
        .unwrap();
        assert_eq!(
            got["knn"][0]["filter"],
            json!([tenant_clause(), {"term":{"env":"x"}}])
        );
        assert_eq!(
            got["knn"][1]["filter"],
            json!([tenant_clause(), {"term":{"env":"y"}}])
        );
    }

    #[test]
    fn allows_common_dashboard_bodies() {
        let bodies = [
            json!({"size":0,"query":{"bool":{"filter":[{"range":{"@timestamp":{"gte":"now-1h","lte":"now","format":"epoch_millis"}}},{"query_string":{"query":"*","analyze_wildcard":true}}]}},
                   "aggs":{"2":{"date_histogram":{"field":"@timestamp","fixed_interval":"30s","min_doc_count":0,"extended_bounds":{"min":1,"max":2},"format":"epoch_millis"},
                   "aggs":{"3":{"terms":{"field":"host","size":10,"order":{"_count":"desc"},"min_doc_count":1}},"4":{"avg":{"field":"cpu"}}}}}}),
            json!({"query":{"match":{"message":"hello"}},"highlight":{"fields":{"message":{}},"highlight_query":{"match":{"message":"x"}}},"sort":[{"@timestamp":{"order":"desc","unmapped_type":"boolean"}},"_score"],"_source":{"includes":["a"]},"track_total_hits":true}),
            json!({"query":{"nested":{"path":"p","query":{"term":{"p.x":1}},"inner_hits":{"size":1}}},"collapse":{"field":"user","inner_hits":{"name":"last","size":1,"sort":[{"t":"desc"}]}}}),
            json!({"post_filter":{"term":{"x":1}},"rescore":{"window_size":10,"query":{"rescore_query":{"match":{"m":"x"}}}},"explain":false,"profile":false}),
            json!({"aggs":{"f":{"filters":{"filters":{"a":{"term":{"x":1}}}}},"g":{"filter":{"exists":{"field":"x"}},"aggs":{"t":{"top_hits":{"size":1,"_source":false}}}}}}),
            json!({"query":{"match":{"m":{"query":"some text","fuzziness":0,"operator":"and"}}}}),
            json!({"query":{"terms":{"user":["a","b"],"boost":1.0}},"search_after":[1,"x"],"fields":["a",{"field":"b","format":"x"}]}),
            json!({"query":{"function_score":{"query":{"match_all":{}},"functions":[{"filter":{"term":{"x":1}},"weight":2}]}}}),
        ];
        for b in bodies {
            let got = search(Some(b.clone()), &tenant_a());
            assert!(got.is_ok(), "{b}: {got:?}");
        }
    }

    /// Session 17 (attack17a): a collapse's inner hits are expanded with the body's top-level
    /// query; without one (kNN only, a kNN retriever, sub-searches) they are refused for a
    /// token with filters, allowed with a query, a standard retriever, or no filters.
    #[test]
    fn collapse_inner_hits_need_a_query_holding_the_token_clauses() {
        let knn = json!({"field": "v", "query_vector": [1.0, 2.0], "num_candidates": 5});
        let c = json!({"field": "user", "inner_hits": {"name": "g"}});
        for body in [
            json!({"knn": knn, "collapse": c}),
            json!({"knn": [knn], "collapse": c, "post_filter": {"match_all": {}}}),
            json!({"retriever": {"knn": knn}, "collapse": c}),
            json!({"retriever": {"rrf": {"retrievers": [{"standard": {}}, {"knn": knn}]}}, "collapse": c}),
            json!({"sub_searches": [{"query": {"match_all": {}}}], "collapse": c}),
        ] {
            refused_as(&body, RejectKind::Forbidden);
            assert!(
                search(Some(body.clone()), &FilterSet::default()).is_ok(),
                "{body}"
            );
        }
        for body in [
            json!({"collapse": c}),
            json!({"knn": [], "collapse": c}),
            json!({"knn": knn, "query": {"match_all": {}}, "collapse": c}),
            json!({"retriever": {"standard": {}}, "collapse": c}),
            json!({"knn": knn, "collapse": {"field": "user"}}),
        ] {
            let got = search(Some(body.clone()), &tenant_a());
            assert!(got.is_ok(), "{body}: {got:?}");
        }
    }

    #[test]
    fn every_knn_search_in_the_body_gets_the_token_clauses() {
        let knn = json!({"knn": {"field": "v", "query_vector": [1.0, 2.0], "num_candidates": 5}});
        let filtered = json!({"knn": {"field": "v", "query_vector": [1.0, 2.0], "num_candidates": 5,
            "filter": [tenant_clause()]}});
        let body = json!({
            "query": {"bool": {"should": [knn.clone()]}},
            "post_filter": knn.clone(),
            "aggs": {"f": {"filter": knn.clone()}},
        });
        let out = search(Some(body), &tenant_a()).unwrap();
        assert_eq!(
            out["query"]["bool"]["must"][0]["bool"]["should"][0],
            filtered
        );
        assert_eq!(out["post_filter"], filtered);
        assert_eq!(out["aggs"]["f"]["filter"], filtered);
        // Counting goes through the same wrapper.
        let c = count(Some(json!({"query": knn})), &tenant_a()).unwrap();
        assert_eq!(c["query"]["bool"]["must"][0], filtered);
        // Already filtered (the top-level kNN): not filtered twice.
        let top = search(
            Some(json!({"knn": {"field": "v", "query_vector": [1.0], "k": 1}})),
            &tenant_a(),
        )
        .unwrap();
        assert_eq!(top["knn"]["filter"], json!([tenant_clause()]));
    }

    /// Issue 8.1 / 17.1: queries whose match set depends on what the whole shard holds
    /// (index-wide document frequencies, the first N terms of an expansion), in every position
    /// a query can take.
    fn statistics_dependent_queries() -> Vec<Value> {
        vec![
            json!({"more_like_this":{"fields":["m"],"like":["some text"],"min_term_freq":1}}),
            json!({"more_like_this":{"fields":["m"],"like":"x","unlike":"y","max_doc_freq":2}}),
            json!({"common":{"m":{"query":"a b","cutoff_frequency":0.001}}}),
            json!({"match":{"m":{"query":"a b","cutoff_frequency":0.001}}}),
            json!({"intervals":{"m":{"prefix":{"prefix":"ab"}}}}),
            json!({"span_multi":{"match":{"prefix":{"user":"b"}}}}),
            json!({"fuzzy":{"user":"bob"}}),
            json!({"fuzzy":{"user":{"value":"bob","fuzziness":0}}}),
            json!({"match":{"user":{"query":"bob","fuzziness":"AUTO"}}}),
            json!({"match":{"user":{"query":"bob","fuzziness":1}}}),
            json!({"match":{"user":{"query":"bob","max_expansions":1}}}),
            json!({"match":{"user":{"query":"bob","fuzziness":0,"fuzzy_rewrite":"top_terms_1"}}}),
            json!({"match_phrase_prefix":{"m":"hello fro"}}),
            json!({"match_bool_prefix":{"m":"hello fro"}}),
            json!({"multi_match":{"query":"bob","fields":["user"],"fuzziness":2}}),
            json!({"multi_match":{"query":"he","fields":["m"],"type":"phrase_prefix"}}),
            json!({"multi_match":{"query":"he","fields":["m"],"type":"bool_prefix"}}),
            json!({"multi_match":{"query":"he","fields":["m"],"max_expansions":3}}),
            json!({"prefix":{"user":{"value":"b","rewrite":"top_terms_1"}}}),
            json!({"wildcard":{"user":{"value":"b*","rewrite":"scoring_boolean"}}}),
            json!({"regexp":{"user":{"value":"b.*","rewrite":"constant_score_boolean"}}}),
            json!({"prefix":{"_id":"b"}}),
            json!({"wildcard":{"_id":{"value":"b*"}}}),
            json!({"regexp":{"_routing":"b.*"}}),
            json!({"term":{"_id":{"value":"B1","case_insensitive":true}}}),
            json!({"query_string":{"query":"user:bob~"}}),
            json!({"query_string":{"query":"bob~1","default_field":"user"}}),
            json!({"query_string":{"query":"user:bob","fuzziness":"AUTO"}}),
            json!({"query_string":{"query":"user:b*","rewrite":"top_terms_1"}}),
            json!({"query_string":{"query":"user:bob","fuzzy_max_expansions":1}}),
            json!({"query_string":{"query":"user:bob","fuzzy_rewrite":"top_terms_boost_1"}}),
            json!({"query_string":{"query":"he","type":"phrase_prefix","fields":["m"]}}),
            json!({"query_string":{"query":"_id:b*"}}),
            json!({"query_string":{"query":"b*","default_field":"_id"}}),
            json!({"query_string":{"query":"/b.*/","fields":["user","_id"]}}),
            json!({"simple_query_string":{"query":"bob~2","fields":["user"]}}),
            json!({"simple_query_string":{"query":"b*","fields":["_id"]}}),
            json!({"simple_query_string":{"query":"bob","fuzzy_max_expansions":1}}),
            json!({"simple_query_string":{"query":"\"a\\\" b~2 \"","flags":"PHRASE|FUZZY"}}),
            json!({"simple_query_string":{"query":"\"a b\"~2","flags":"FUZZY"}}),
        ]
    }

    /// Every position a query can take in a search body.
    fn in_every_position(q: &Value) -> Vec<Value> {
        vec![
            json!({"query": q}),
            json!({"query": {"bool": {"should": [{"match_all": {}}, {"nested": {"path": "p", "query": q}}]}}}),
            json!({"post_filter": q}),
            json!({"aggs": {"f": {"filter": q}}}),
            json!({"aggs": {"f": {"filters": {"filters": {"x": q}}}}}),
            json!({"query": {"function_score": {"query": q}}}),
            json!({"query": {"function_score": {"functions": [{"filter": q, "weight": 2}]}}}),
            json!({"highlight": {"fields": {"m": {}}, "highlight_query": q}}),
            json!({"rescore": {"query": {"rescore_query": q}}}),
            json!({"knn": {"field": "v", "query_vector": [1.0], "k": 1, "num_candidates": 1, "filter": q}}),
            json!({"retriever": {"standard": {"query": q}}}),
            json!({"retriever": {"standard": {"filter": q}}}),
            json!({"retriever": {"rrf": {"retrievers": [{"standard": {}}], "filter": q}}}),
            json!({"sub_searches": [{"query": q}], "rank": {"rrf": {}}}),
        ]
    }

    #[test]
    fn queries_whose_matches_depend_on_the_whole_shard_are_refused_everywhere() {
        for q in statistics_dependent_queries() {
            for body in in_every_position(&q) {
                refused_as(&body, RejectKind::Forbidden);
            }
            let got = count(Some(json!({ "query": q })), &tenant_a());
            assert_eq!(got.map_err(|r| r.kind), Err(RejectKind::Forbidden), "{q}");
        }
    }

    #[test]
    fn exact_full_text_and_constant_score_multi_term_queries_pass() {
        let allowed = [
            json!({"match":{"user":{"query":"bob","fuzziness":0,"prefix_length":1}}}),
            json!({"match":{"user":{"query":"bob","fuzziness":"0","fuzzy_transpositions":true}}}),
            json!({"match":{"m":"hello world"}}),
            json!({"multi_match":{"query":"bob","fields":["user","_id"],"type":"best_fields"}}),
            json!({"prefix":{"user":{"value":"b","rewrite":"constant_score"}}}),
            json!({"prefix":{"user":"b"}}),
            json!({"wildcard":{"user":{"value":"b*","rewrite":"constant_score_blended","case_insensitive":true}}}),
            json!({"regexp":{"user":"b.*"}}),
            json!({"prefix":{"_index":"logs"}}),
            json!({"term":{"_id":"a1"}}),
            json!({"term":{"_id":{"value":"a1","case_insensitive":false}}}),
            json!({"term":{"user":{"value":"Alice","case_insensitive":true}}}),
            json!({"ids":{"values":["a1"]}}),
            json!({"query_string":{"query":"user:b* AND message:\"hello world\"~2"}}),
            json!({"query_string":{"query":"_id:a1 OR _exists_:user","rewrite":"constant_score"}}),
            json!({"query_string":{"query":"bo?","default_field":"user","fuzziness":0}}),
            json!({"query_string":{"query":"*","fields":["*"]}}),
            json!({"simple_query_string":{"query":"\"a b\"~2 | bo*","fields":["user","m^2"]}}),
            json!({"simple_query_string":{"query":"a b","flags":"AND|OR"}}),
            json!({"match_phrase":{"m":{"query":"hello world","slop":2}}}),
            json!({"combined_fields":{"query":"hello","fields":["m"]}}),
        ];
        for q in allowed {
            let got = search(Some(json!({ "query": q.clone() })), &tenant_a());
            assert!(got.is_ok(), "{q}: {got:?}");
        }
    }

    #[test]
    fn score_thresholds_and_score_samplers_are_refused() {
        // Issue 17.2: scores carry index-wide statistics; a threshold or a top-by-score
        // sample turns them into counts.
        let bodies = [
            json!({"min_score": 0.5}),
            json!({"min_score": 0}),
            json!({"query": {"function_score": {"query": {"match": {"m": "x"}}, "min_score": 1}}}),
            json!({"aggs": {"f": {"filter": {"function_score": {"min_score": 1}}}}}),
            json!({"post_filter": {"function_score": {"min_score": 1}}}),
            json!({"retriever": {"standard": {"query": {"match": {"m": "x"}}, "min_score": 1}}}),
            json!({"retriever": {"rrf": {"retrievers": [{"standard": {"min_score": 1}}]}}}),
            json!({"aggs": {"s": {"sampler": {"shard_size": 1}, "aggs": {"t": {"terms": {"field": "u"}}}}}}),
            json!({"aggs": {"t": {"terms": {"field": "u"}, "aggs": {"s": {"diversified_sampler": {"field": "u"}}}}}}),
        ];
        for b in bodies {
            let got = search(Some(b.clone()), &tenant_a());
            assert_eq!(got.map_err(|r| r.kind), Err(RejectKind::Forbidden), "{b}");
        }
        let c = count(
            Some(json!({"query": {"function_score": {"min_score": 1}}})),
            &tenant_a(),
        );
        assert_eq!(c.map_err(|r| r.kind), Err(RejectKind::Forbidden));
    }

    #[test]
    fn every_knn_search_beside_or_inside_a_retriever_gets_the_token_clauses() {
        // Issue 8.3: with a retriever, kNN searches in the retriever's filters and elsewhere in
        // the body were forwarded without the token's clauses.
        let knn = json!({"knn": {"field": "v", "query_vector": [1.0, 2.0], "num_candidates": 5}});
        let filtered = json!({"knn": {"field": "v", "query_vector": [1.0, 2.0], "num_candidates": 5,
            "filter": [tenant_clause()]}});
        let body = json!({
            "retriever": {"rrf": {"retrievers": [
                {"standard": {"query": knn.clone(), "filter": knn.clone()}},
                {"standard": {"filter": [{"match_all": {}}, knn.clone()]}},
                {"knn": {"field": "v", "query_vector": [1.0, 2.0], "k": 1, "num_candidates": 5,
                    "filter": {"bool": {"must": [knn.clone()]}}}},
            ], "filter": knn.clone()}},
            "post_filter": knn.clone(),
            "aggs": {"f": {"filter": knn.clone()}},
        });
        let out = search(Some(body), &tenant_a()).unwrap();
        let kids = &out["retriever"]["rrf"]["retrievers"];
        assert_eq!(
            kids[0]["standard"]["query"]["bool"]["must"][0], filtered,
            "{out}"
        );
        assert_eq!(kids[0]["standard"]["filter"], filtered);
        assert_eq!(kids[1]["standard"]["filter"][1], filtered);
        assert_eq!(
            kids[2]["knn"]["filter"],
            json!([tenant_clause(), {"bool": {"must": [filtered.clone()]}}])
        );
        assert_eq!(out["retriever"]["rrf"]["filter"], filtered);
        assert_eq!(out["post_filter"], filtered);
        assert_eq!(out["aggs"]["f"]["filter"], filtered);
    }

    #[test]
    fn every_sub_search_gets_the_filters() {
        let body = json!({"sub_searches": [{"query": {"match": {"m": "x"}}}, {"query": {"term": {"u": "y"}}}],
            "rank": {"rrf": {"rank_window_size": 50}}});
        let out = search(Some(body), &tenant_a()).unwrap();
        assert_eq!(
            out["sub_searches"],
            json!([
                {"query": {"bool": {"filter": [tenant_clause()], "must": [{"match": {"m": "x"}}]}}},
                {"query": {"bool": {"filter": [tenant_clause()], "must": [{"term": {"u": "y"}}]}}},
            ])
        );
        assert!(
            out.get("query").is_none(),
            "no top-level query beside sub_searches: {out}"
        );
        let both =
            json!({"query": {"match_all": {}}, "sub_searches": [{"query": {"match_all": {}}}]});
        assert!(search(Some(both), &tenant_a()).is_err());
    }

    #[test]
    fn denies_features_that_escape_the_filter() {
        let cases = [
            json!({"aggs":{"all":{"global":{},"aggs":{"u":{"terms":{"field":"user"}}}}}}), // BODY-01
            json!({"aggregations":{"all":{"global":{}}}}), // BODY-02
            json!({"aggs":{"u":{"terms":{"field":"user","min_doc_count":0}}}}), // BODY-03
            json!({"aggs":{"f":{"filter":{"match_all":{}},"aggs":{"u":{"terms":{"field":"user","min_doc_count":0}}}}}}), // BODY-04
            json!({"aggs":{"s":{"significant_terms":{"field":"env"}}}}), // BODY-05
            json!({"aggs":{"s":{"significant_text":{"field":"m"}}}}),    // BODY-07
            json!({"suggest":{"s":{"text":"x","term":{"field":"m"}}}}),  // BODY-08
            json!({"retriever":{"pinned":{"ids":["b1"],"retriever":{"standard":{}}}}}), // BODY-13
            json!({"query":{"pinned":{"ids":["b1"],"organic":{"match_none":{}}}}}), // BODY-16
            json!({"sub_searches":[{"query":{"match_all":{}}, "knn": {}}]}),
            json!({"sub_searches":[{"query":{"match_all":{}}}],"rank":{"rrf":{"x":{}}}}),
            json!({"runtime_mappings":{"tenant":{"type":"keyword","script":"emit('a')"}}}), // BODY-20
            json!({"query":{"terms":{"user":{"index":"logs-b","id":"b1","path":"user"}}}}), // BODY-24
            json!({"query":{"more_like_this":{"like":[{"_index":"logs-b","_id":"b1"}]}}}), // BODY-26
            json!({"query":{"more_like_this":{"like":{"doc":{"m":"x"}}}}}),
            json!({"query":{"percolate":{"field":"q","index":"x","id":"1"}}}), // BODY-28
            json!({"query":{"geo_shape":{"loc":{"indexed_shape":{"index":"secret","id":"1"}}}}}), // BODY-29
            json!({"profile":true,"query":{"prefix":{"user":"bob"}}}), // BODY-30
            json!({"query":{"wrapper":{"query":"e30="}}}),             // BODY-32
            json!({"explain":true}),                                   // BODY-33
            json!({"query":{"has_child":{"type":"c","query":{"match_all":{}},"inner_hits":{}}}}), // BODY-35
            json!({"query":{"has_parent":{"parent_type":"p","query":{"match_all":{}}}}}),
            json!({"indices_boost":[{"secret":5}]}), // BODY-37
            json!({"search_pipeline":{"request_processors":[]}}), // BODY-40
            json!({"ext":{}}),
            json!({"pit":{"id":"x"}}),
            json!({"script_fields":{"x":{"script":"1"}}}),
            json!({"query":{"script":{"script":"true"}}}),
            json!({"query":{"function_score":{"script_score":{"script":"1"}}}}),
            json!({"query":{"function_score":{"functions":[{"script_score":{"script":"1"}}]}}}),
            json!({"aggs":{"x":{"terms":{"script":"doc['u'].value"}}}}),
            json!({"aggs":{"x":{"scripted_metric":{}}}}),
            json!({"aggs":{"x":{"children":{"type":"c"}}}}),
            json!({"aggs":{"x":{"parent":{"type":"c"}}}}),
            json!({"aggs":{"x":{"max":{"field":"a"},"aggs":{"y":{"global":{}}}}}}),
            json!({"sort":[{"_script":{"script":"1","type":"number"}}]}),
            json!({"query":{"rule":{"ruleset_ids":["x"],"organic":{"match_all":{}}}}}),
            json!({"knn":{"field":"v","query_vector_builder":{},"k":1,"num_candidates":1}}),
            json!({"knn":{"field":"v","query_vector":[1],"k":1,"num_candidates":1,"filter":{"wrapper":{"query":"e30="}}}}),
            json!({"highlight":{"fields":{"m":{"highlight_query":{"has_child":{}}}}}}),
            json!({"post_filter":{"percolate":{}}}),
            json!({"rescore":{"query":{"rescore_query":{"wrapper":{"query":"x"}}}}}),
            json!({"query":{"bool":{"must":[{"bool":{"should":[{"nested":{"path":"p","query":{"wrapper":{"query":"x"}}}}]}}]}}}),
            json!({"unknown_key":1}),
            json!({"query":{"unknown_query":{}}}),
            json!({"aggs":{"x":{"unknown_agg":{}}}}),
            json!({"query":{"term":{"f":{"value":"x","script":"1"}}}}),
        ];
        for c in cases {
            let got = search(Some(c.clone()), &tenant_a());
            assert_eq!(got.map_err(|r| r.kind), Err(RejectKind::Forbidden), "{c}");
        }
    }

    /// Review 14 (the leak oracle): the backend highlights the terms of the query it runs,
    /// the token's filter clauses included, so a top-level `highlight` without a query of its
    /// own gets the client's query (`match_all` when it has none); a `highlight` of `top_hits`
    /// or `collapse.inner_hits` without one is refused; inner hits of a query clause and
    /// highlights with their own query are left as they are.
    #[test]
    fn highlights_use_the_clients_query_not_the_filters() {
        let hl = |body: Value| -> Value {
            let out = search(Some(body.clone()), &tenant_a()).expect("accepted");
            out["highlight"]["highlight_query"].clone()
        };
        let q = json!({"match": {"message": "fox"}});
        assert_eq!(
            hl(json!({"query": q, "highlight": {"fields": {"*": {}}}})),
            q
        );
        assert_eq!(
            hl(json!({"highlight": {"fields": {"*": {}}}})),
            json!({"match_all": {}})
        );
        let own = json!({"term": {"user": "x"}});
        assert_eq!(
            hl(json!({"query": q, "highlight": {"fields": {"*": {}}, "highlight_query": own}})),
            own
        );
        assert_eq!(
            hl(
                json!({"retriever": {"standard": {"query": q}}, "highlight": {"fields": {"*": {}}}})
            ),
            q
        );
        // A standard retriever's own `filter` highlights too, as the backend does with it
        // (oracle18, seed 182 case 2391: nothing was highlighted).
        let f = json!({"match": {"message": "world"}});
        assert_eq!(
            hl(json!({"retriever": {"standard": {"query": q, "filter": f}},
                "highlight": {"fields": {"*": {}}}})),
            json!({"bool": {"must": [q], "filter": [f]}})
        );
        assert_eq!(
            hl(json!({"retriever": {"standard": {"filter": [f, q]}},
                "highlight": {"fields": {"*": {}}}})),
            json!({"bool": {"must": [{"match_all": {}}], "filter": [f, q]}})
        );
        // A kNN query in the copy gets the token's clauses as everywhere else.
        let knn = json!({"knn": {"field": "v", "query_vector": [1.0], "num_candidates": 5}});
        assert!(
            hl(json!({"query": knn, "highlight": {"fields": {"*": {}}}}))
                .to_string()
                .contains("tenant")
        );
        // The filters are still applied to the query itself.
        let out = search(
            Some(json!({"query": q, "highlight": {"fields": {"*": {}}}})),
            &tenant_a(),
        )
        .unwrap();
        assert!(out["query"].to_string().contains("tenant"), "{out}");
        assert!(!out["highlight"].to_string().contains("tenant"), "{out}");
        let refused = [
            json!({"aggs": {"t": {"top_hits": {"highlight": {"fields": {"*": {}}}}}}}),
            json!({"aggs": {"n": {"terms": {"field": "u"}, "aggs": {"t": {"top_hits": {"size": 1, "highlight": {"fields": {"m": {}}}}}}}}}),
            json!({"collapse": {"field": "user", "inner_hits": {"name": "i", "highlight": {"fields": {"*": {}}}}}}),
            json!({"collapse": {"field": "user", "inner_hits": [{"name": "i"}, {"name": "j", "highlight": {"fields": {"*": {}}}}]}}),
        ];
        for body in refused {
            refused_as(&body, RejectKind::Forbidden);
        }
        let accepted = [
            json!({"aggs": {"t": {"top_hits": {"highlight": {"fields": {"*": {}}, "highlight_query": {"match_all": {}}}}}}}),
            json!({"collapse": {"field": "user", "inner_hits": {"name": "i", "highlight": {"fields": {"*": {}}, "highlight_query": q}}}}),
            json!({"query": {"nested": {"path": "items", "query": {"match_all": {}}, "inner_hits": {"highlight": {"fields": {"*": {}}}}}}}),
        ];
        for body in accepted {
            assert!(search(Some(body.clone()), &tenant_a()).is_ok(), "{body}");
        }
    }

    /// Review 15: the fast vector highlighter (`type: fvh`) rewrites a multi-term query
    /// (prefix, wildcard, regexp, a range on a string field) against the whole shard's terms
    /// and keeps only the first 1024 of them, other tenants' terms included (Lucene's
    /// `FieldQuery.flatten`, `TopTermsScoringBooleanQueryRewrite(1024)`): whether a hit's own
    /// term is highlighted told how many terms other tenants hold in a range (seen on osmem).
    /// It is refused wherever a highlight goes; `unified` (the default) and `plain` highlight
    /// from the hit's own text and stay allowed.
    #[test]
    fn the_fast_vector_highlighter_is_refused() {
        let q = json!({"prefix": {"message": "z"}});
        let refused = [
            json!({"query": q, "highlight": {"type": "fvh", "fields": {"message": {}}}}),
            json!({"query": q, "highlight": {"fields": {"message": {"type": "fvh"}}}}),
            json!({"query": q, "highlight": {"fields": [{"message": {"type": "fvh"}}]}}),
            json!({"query": q, "highlight": {"fields": {"message": {"type": "FVH"}}}}),
            json!({"query": q, "highlight": {"fields": {"message": {"type": ["fvh"]}}}}),
            json!({"aggs": {"t": {"top_hits": {"highlight": {"type": "fvh", "fields": {"*": {}}, "highlight_query": q}}}}}),
            json!({"collapse": {"field": "user", "inner_hits": {"name": "i", "highlight": {"fields": {"*": {"type": "fvh"}}, "highlight_query": q}}}}),
            json!({"query": {"nested": {"path": "items", "query": q, "inner_hits": {"highlight": {"fields": {"*": {"type": "fvh"}}}}}}}),
        ];
        for body in refused {
            refused_as(&body, RejectKind::Forbidden);
        }
        for ty in ["unified", "plain"] {
            for body in [
                json!({"query": q, "highlight": {"type": ty, "fields": {"message": {}}}}),
                json!({"query": q, "highlight": {"fields": {"message": {"type": ty}}}}),
            ] {
                assert!(search(Some(body.clone()), &tenant_a()).is_ok(), "{body}");
            }
        }
    }

    /// attack26 (hardening): `highlight.fields` names are checked as every field position is:
    /// metadata names other than the document's own and patterns that could match them are
    /// refused, in every place a highlight goes and in both forms of the list; `*` (Kibana's
    /// Discover), plain names, dotted patterns and `_id` are not.
    #[test]
    fn highlight_field_names_are_checked_like_every_field() {
        let q = json!({"match": {"message": "x"}});
        for name in ["_seq_no", "_primary_term", "_s*", "*no", "_mine"] {
            for body in [
                json!({"query": q, "highlight": {"fields": {name: {}}}}),
                json!({"query": q, "highlight": {"fields": [{name: {}}]}}),
                json!({"aggs": {"t": {"top_hits": {"highlight": {"fields": {name: {}}, "highlight_query": q}}}}}),
                json!({"collapse": {"field": "user", "inner_hits": {"name": "i", "highlight": {"fields": {name: {}}, "highlight_query": q}}}}),
            ] {
                refused_as(&body, RejectKind::Forbidden);
            }
        }
        for name in ["*", "message", "message*", "*.keyword", "_id"] {
            let body = json!({"query": q, "highlight": {"fields": {name: {}}}});
            assert!(search(Some(body.clone()), &tenant_a()).is_ok(), "{body}");
        }
    }

    /// attack26 (hardening, carried from attack24): `docvalue_fields` of `*` alone is refused
    /// wherever it goes (top level, `top_hits`, collapse and nested inner hits; a name or an
    /// object's `field`): Elasticsearch resolves it over every mapped field, `_seq_no` and
    /// `_primary_term` included, and only its failure on `_source` kept them out. `fields`
    /// of `*` (metadata left out) and dotted or prefixed patterns stay allowed.
    #[test]
    fn docvalue_fields_of_every_field_are_refused() {
        for dv in [
            json!(["*"]),
            json!([{"field": "*"}]),
            json!(["n", "*"]),
            json!("*"),
        ] {
            for body in [
                json!({"docvalue_fields": dv}),
                json!({"aggs": {"t": {"top_hits": {"docvalue_fields": dv}}}}),
                json!({"collapse": {"field": "user", "inner_hits": {"name": "i", "docvalue_fields": dv}}}),
                json!({"query": {"nested": {"path": "items", "query": {"match_all": {}}, "inner_hits": {"docvalue_fields": dv}}}}),
            ] {
                refused_as(&body, RejectKind::Forbidden);
            }
        }
        for body in [
            json!({"fields": ["*"]}),
            json!({"docvalue_fields": ["*.keyword", "n*", {"field": "@timestamp", "format": "epoch_millis"}]}),
            json!({"aggs": {"t": {"top_hits": {"fields": [{"field": "*"}]}}}}),
        ] {
            assert!(search(Some(body.clone()), &tenant_a()).is_ok(), "{body}");
        }
    }

    /// Attack27a (pinned, no finding): patterns other than `*` alone in `docvalue_fields` and
    /// `highlight.fields`. Elasticsearch resolves them with `Regex.simpleMatch` (only `*` is a
    /// wildcard; `**` is no all-fields pattern there, so it reaches metadata fields): one that
    /// starts with `_`, or starts with `*` and holds no `.`, can match a metadata name and is
    /// refused; one with a `.` matches dotted names only, one starting with another character
    /// names no metadata field.
    #[test]
    fn field_patterns_other_than_star_reach_no_metadata_field() {
        for dv in ["**", "*o", "*_no", "*q*", "_*", "_s*", "_seq*"] {
            for body in [
                json!({"docvalue_fields": [dv]}),
                json!({"docvalue_fields": [{"field": dv}]}),
                json!({"aggs": {"t": {"top_hits": {"docvalue_fields": [dv]}}}}),
                json!({"highlight": {"fields": {dv: {}}}}),
                json!({"highlight": {"fields": [{dv: {}}]}}),
            ] {
                refused_as(&body, RejectKind::Forbidden);
            }
        }
        for dv in ["*.*", "*.keyword", ".*", "a*", "@t*"] {
            for body in [
                json!({"docvalue_fields": [dv]}),
                json!({"highlight": {"fields": {dv: {}}}}),
            ] {
                assert!(search(Some(body.clone()), &tenant_a()).is_ok(), "{body}");
            }
        }
        assert!(search(
            Some(json!({"highlight": {"fields": {"*": {}}}})),
            &tenant_a()
        )
        .is_ok());
    }

    /// Review 13 (the leak oracle): two inner hits of one name in a body are refused, on the
    /// search and count paths, wherever they are (query, post_filter, aggregations, lists);
    /// distinct names, and `collapse`'s inner hits (named apart by ES), are not.
    #[test]
    fn inner_hits_of_one_name_are_refused() {
        let nested = |path: &str, opts: Value| json!({"nested": {"path": path, "query": {"term": {format!("{path}.sku"): "x9"}}, "inner_hits": opts}});
        let refused = [
            json!({"query": nested("items", json!({})), "post_filter": nested("items", json!({}))}),
            json!({"query": {"bool": {"should": [nested("items", json!({})), nested("items", json!({"size": 1}))]}}}),
            json!({"query": {"bool": {"should": [nested("a", json!({"name": "n"})), nested("b", json!({"name": "n"}))]}}}),
            json!({"query": nested("a", json!({"name": "b"})), "post_filter": nested("b", json!({}))}),
            json!({"query": {"bool": {"filter": [{"has_child": {"type": "c", "query": {"match_all": {}}, "inner_hits": {}}},
                {"has_child": {"type": "c", "query": {"match_all": {}}, "inner_hits": {}}}]}}}),
            json!({"query": {"bool": {"filter": [{"has_parent": {"parent_type": "p", "query": {"match_all": {}}, "inner_hits": {}}},
                {"has_child": {"type": "c", "query": {"match_all": {}}, "inner_hits": {"name": "p"}}}]}}}),
            json!({"query": nested("items", json!({})), "aggs": {"f": {"filter": nested("items", json!({}))}}}),
        ];
        for body in refused {
            refused_as(&body, RejectKind::Forbidden);
            if let Some(q) = body
                .get("query")
                .filter(|_| body.as_object().unwrap().len() == 1)
            {
                let got = count(Some(json!({"query": q})), &tenant_a());
                assert_eq!(
                    got.map_err(|r| r.kind),
                    Err(RejectKind::Forbidden),
                    "{body}"
                );
            }
        }
        // Review 14: kNN searches' inner hits, named after every path their field may lie under.
        let knn = |field: &str, opts: Value| json!({"field": field, "query_vector": [1.0, 0.0], "k": 3, "num_candidates": 10, "inner_hits": opts});
        let knn_refused = [
            json!({"knn": [knn("items.vec", json!({})), knn("items.vec", json!({}))]}),
            json!({"knn": knn("items.vec", json!({})), "query": nested("items", json!({}))}),
            json!({"knn": knn("a.b.vec", json!({})), "query": nested("a", json!({}))}),
            json!({"knn": knn("a.b.vec", json!({})), "query": nested("x", json!({"name": "a.b"}))}),
            json!({"knn": knn("p.vec", json!({"name": "n"})), "post_filter": nested("q", json!({"name": "n"}))}),
            json!({"query": {"bool": {"should": [{"knn": knn("items.vec", json!({}))}, nested("items", json!({}))]}}}),
        ];
        for body in knn_refused {
            let got = search(Some(body.clone()), &tenant_a()).expect_err("refused");
            assert_eq!(got.kind, RejectKind::Forbidden, "{body}");
            assert!(
                got.reason.contains("[inner_hits] named"),
                "{body}: {}",
                got.reason
            );
        }
        for body in [
            json!({"knn": knn("items.vec", json!({}))}),
            json!({"knn": [knn("items.vec", json!({})), knn("items.vec", json!({"name": "two"}))]}),
            json!({"knn": knn("items.vec", json!({})), "query": nested("parts", json!({}))}),
        ] {
            assert!(search(Some(body.clone()), &tenant_a()).is_ok(), "{body}");
        }
        let accepted = [
            json!({"query": nested("items", json!({})), "post_filter": nested("parts", json!({}))}),
            json!({"query": {"bool": {"should": [nested("items", json!({})), nested("items", json!({"name": "other"}))]}}}),
            json!({"query": nested("items", json!({})), "collapse": {"field": "user", "inner_hits": {"name": "items"}}}),
            json!({"query": nested("items", json!({}))}),
        ];
        for body in accepted {
            assert!(search(Some(body.clone()), &tenant_a()).is_ok(), "{body}");
        }
    }

    /// Issues #8.2 and #17.3: `_seq_no`, `_primary_term` and the doc-id sorts in every field
    /// position of a search body (the rule itself is tested in `fields`).
    #[test]
    fn internal_counters_are_refused_in_every_field_position() {
        let th = |opts: Value| json!({"aggs": {"t": {"terms": {"field": "u"}, "aggs": {"h": {"top_hits": opts}}}}});
        let ih = |opts: Value| json!({"query": {"nested": {"path": "p", "query": {"match_all": {}}, "inner_hits": opts}}});
        let cases = [
            json!({"sort": ["_seq_no"]}),
            json!({"sort": [{"_primary_term": "desc"}]}),
            json!({"sort": {"@timestamp": "desc", "_seq_no": "asc"}}),
            json!({"sort": [{"n": {"nested": {"path": "_seq_no"}}}]}),
            json!({"docvalue_fields": ["_seq_no"]}),
            json!({"docvalue_fields": [{"field": "_primary_term"}]}),
            json!({"fields": ["_seq_no"]}),
            json!({"stored_fields": ["_seq_no"]}),
            json!({"seq_no_primary_term": true}),
            json!({"collapse": {"field": "_seq_no"}}),
            json!({"collapse": {"field": "user", "inner_hits": {"name": "i", "sort": ["_doc"]}}}),
            json!({"collapse": {"field": "user", "inner_hits": {"name": "i", "sort": [{"_shard_doc": "asc"}]}}}),
            json!({"collapse": {"field": "user", "inner_hits": {"name": "i", "collapse": {"field": "_seq_no"}}}}),
            th(json!({"sort": ["_doc"]})),
            th(json!({"sort": [{"_seq_no": "desc"}]})),
            th(json!({"seq_no_primary_term": true})),
            th(json!({"docvalue_fields": ["_seq_no"]})),
            ih(json!({"sort": ["_doc"]})),
            ih(json!({"seq_no_primary_term": true})),
            ih(json!({"stored_fields": ["_primary_term"]})),
            json!({"aggs": {"t": {"terms": {"field": "_seq_no"}}}}),
            json!({"aggs": {"t": {"terms": {"field": "_doc"}}}}),
            json!({"aggs": {"h": {"histogram": {"field": "_seq_no", "interval": 1}}}}),
            json!({"aggs": {"r": {"range": {"field": "_seq_no", "ranges": [{"to": 5}]}}}}),
            json!({"aggs": {"m": {"max": {"field": "_seq_no"}}}}),
            json!({"aggs": {"m": {"cardinality": {"field": "_primary_term"}}}}),
            json!({"aggs": {"c": {"composite": {"sources": [{"s": {"terms": {"field": "_seq_no"}}}]}}}}),
            json!({"aggs": {"m": {"top_metrics": {"metrics": {"field": "n"}, "sort": ["_doc"]}}}}),
            json!({"aggs": {"m": {"top_metrics": {"metrics": {"field": "_seq_no"}, "sort": ["n"]}}}}),
            json!({"query": {"range": {"_seq_no": {"gte": 0}}}}),
            json!({"query": {"bool": {"filter": [{"term": {"_primary_term": 1}}]}}}),
            json!({"query": {"exists": {"field": "_seq_no"}}}),
            json!({"query": {"query_string": {"query": "_seq_no:[0 TO 9]"}}}),
            json!({"post_filter": {"range": {"_seq_no": {"lt": 3}}}}),
            json!({"aggs": {"f": {"filter": {"range": {"_seq_no": {"lt": 3}}}}}}),
            json!({"query": {"function_score": {"random_score": {"seed": 1, "field": "_seq_no"}}}}),
            json!({"query": {"function_score": {"random_score": {}}}}),
            json!({"query": {"function_score": {"functions": [{"field_value_factor": {"field": "_seq_no"}}]}}}),
            json!({"query": {"function_score": {"functions": [{"gauss": {"_seq_no": {"origin": 0, "scale": 1}}}]}}}),
            json!({"query": {"function_score": {"functions": [{"random_score": {"seed": 3}}]}}}),
        ];
        for c in cases {
            let got = search(Some(c.clone()), &tenant_a());
            assert_eq!(got.map_err(|r| r.kind), Err(RejectKind::Forbidden), "{c}");
        }
        // `fields: ["_source"]` answered 500 upstream: a 400 here.
        for c in [
            json!({"fields": ["_source"]}),
            json!({"docvalue_fields": ["_source"]}),
        ] {
            let got = search(Some(c.clone()), &tenant_a());
            assert_eq!(got.map_err(|r| r.kind), Err(RejectKind::BadRequest), "{c}");
        }
        // What carries the token's own data stays allowed; `_doc` in the top-level sort is
        // sealed on the way back (the point-in-time tiebreaker handling).
        for ok in [
            json!({"sort": [{"@timestamp": "desc"}, "_doc", "_score", {"_shard_doc": "asc"}]}),
            json!({"seq_no_primary_term": false, "version": true}),
            json!({"stored_fields": ["*"], "fields": [{"field": "*", "include_unmapped": true}]}),
            json!({"stored_fields": "_none_", "docvalue_fields": ["@timestamp", "_id"]}),
            json!({"aggs": {"i": {"terms": {"field": "_index", "order": {"_key": "asc"}}}}}),
            json!({"query": {"term": {"_index": "logs-a"}}, "collapse": {"field": "_id"}}),
            json!({"aggs": {"t": {"terms": {"field": "u"}, "aggs": {"h": {"top_hits": {"sort": ["_score", "n"], "version": true}}}}}}),
            json!({"query": {"function_score": {"random_score": {"seed": 1, "field": "_id"}}}}),
        ] {
            assert!(search(Some(ok.clone()), &tenant_a()).is_ok(), "{ok}");
        }
    }

    /// Issue #17.5: values that ended in a 5xx upstream are 400s here, wherever the
    /// aggregation sits.
    #[test]
    fn nonsense_values_are_bad_requests() {
        let under =
            |agg: Value| json!({"aggs": {"f": {"filter": {"match_all": {}}, "aggs": {"x": agg}}}});
        let cases = [
            json!({"date_histogram": {"field": "@timestamp", "fixed_interval": "0ms"}}),
            json!({"date_histogram": {"field": "@timestamp", "interval": 0}}),
            json!({"histogram": {"field": "n", "interval": 0}}),
            json!({"composite": {"size": 0, "sources": [{"u": {"terms": {"field": "user"}}}]}}),
            json!({"terms": {"field": "user", "order": {"nope": "asc"}}}),
            json!({"terms": {"field": "user", "size": 100000000}}),
            json!({"histogram": {"field": "n", "interval": 1, "extended_bounds": {"min": 0, "max": 100000000}}}),
        ];
        for agg in cases {
            for body in [json!({"aggs": {"x": agg.clone()}}), under(agg.clone())] {
                refused_as(&body, RejectKind::BadRequest);
            }
        }
        for slice in [
            json!({"id": 0, "max": 1}),
            json!({"id": 3, "max": 2}),
            json!({"max": 2}),
        ] {
            let got = search(Some(json!({ "slice": slice })), &tenant_a());
            assert_eq!(
                got.map_err(|r| r.kind),
                Err(RejectKind::BadRequest),
                "{slice}"
            );
        }
    }

    /// A slice's `field` is a field position like any other (attack24): Elasticsearch keeps a
    /// document in slice `id` when the hash of its value modulo `max` is `id`, so slicings with
    /// many `max`s rebuild the value. Metadata names other than the document's own data are
    /// refused here, in every body, as they are in sorts, aggregations and queries; not only the
    /// counters `ids::ordinals` knows by name.
    #[test]
    fn slice_fields_are_checked_like_every_field() {
        let sliced = |field: Value| json!({"slice": {"id": 1, "max": 3, "field": field}});
        for field in [
            "_doc_count",
            "_field_names",
            "_nested_path",
            "_tsid",
            "_s*",
            "_seq_no",
        ] {
            refused_as(&sliced(json!(field)), RejectKind::Forbidden);
        }
        for field in [json!(5), json!(null), json!(["n"])] {
            refused_as(&sliced(field), RejectKind::BadRequest);
        }
        for field in ["n", "user", "_id", "@timestamp", "*.n"] {
            let body = sliced(json!(field));
            assert!(search(Some(body.clone()), &tenant_a()).is_ok(), "{body}");
        }
    }

    /// attack25 (M, availability): a collapse's inner hits run one search per hit, at most
    /// `max_concurrent_group_searches` at once, whatever the client asks; more than
    /// Elasticsearch's own bound (10 per data node) is refused, in `inner_hits` too.
    #[test]
    fn collapse_group_searches_are_bounded() {
        let collapse = |n: Value| {
            json!({"query": {"match_all": {}}, "collapse": {"field": "user",
                "inner_hits": {"name": "i", "size": 1}, "max_concurrent_group_searches": n}})
        };
        for n in [11, 256, 2147483647_u64, u64::MAX] {
            refused_as(&collapse(json!(n)), RejectKind::Forbidden);
        }
        let nested = json!({"query": {"match_all": {}}, "collapse": {"field": "user",
            "inner_hits": {"name": "i", "collapse": {"field": "n",
                "max_concurrent_group_searches": 1000}}}});
        refused_as(&nested, RejectKind::Forbidden);
        for n in [json!(-1), json!("5"), json!(1.5)] {
            refused_as(&collapse(n), RejectKind::BadRequest);
        }
        for n in [0, 1, 10] {
            let body = collapse(json!(n));
            assert!(search(Some(body.clone()), &tenant_a()).is_ok(), "{body}");
        }
    }

    #[test]
    fn empty_runtime_mappings_and_script_fields_are_dropped_not_forwarded() {
        let got = search(
            Some(json!({"runtime_mappings":{},"script_fields":{},"size":1})),
            &tenant_a(),
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"size":1,"query":{"bool":{"filter":[tenant_clause()],"must":[{"match_all":{}}]}}})
        );
        for key in ["runtime_mappings", "script_fields"] {
            let body = json!({ key: {"x":{"type":"keyword"}} });
            assert_eq!(
                search(Some(body), &tenant_a()).unwrap_err().kind,
                RejectKind::Forbidden
            );
        }
    }

    #[test]
    fn terms_min_doc_count_accepts_positive_numbers_and_numeric_strings_only() {
        let cases = [
            (json!(1), true),
            (json!(5), true),
            (json!("1"), true),
            (json!(0), false),
            (json!("0"), false),
            (json!(0.0), false),
            (json!(-1), false),
            (json!("x"), false),
            (json!(null), false),
        ];
        for (mdc, ok) in cases {
            let body = json!({"aggs":{"t":{"terms":{"field":"u","min_doc_count": mdc.clone()}}}});
            assert_eq!(search(Some(body), &tenant_a()).is_ok(), ok, "{mdc}");
        }
    }

    #[test]
    fn rejects_malformed_shapes_with_400() {
        let cases = [
            json!(null), // BODY-45
            json!([]),
            json!("x"),
            json!({"size":"ten"}),
            json!({"query":{"match_all":{},"term":{"a":1}}}),
            json!({"query":"x"}),
            json!({"aggs":{},"aggregations":{}}),
            json!({"aggs":{"a":{"avg":{"field":"x"},"max":{"field":"x"}}}}),
        ];
        for c in cases {
            let got = search(Some(c.clone()), &tenant_a());
            assert_eq!(got.map_err(|r| r.kind), Err(RejectKind::BadRequest), "{c}");
        }
    }

    #[test]
    fn count_accepts_only_query() {
        assert!(count(
            Some(json!({"query":{"match_all":{}},"size":1})),
            &tenant_a()
        )
        .is_err());
        assert!(count(
            Some(json!({"query":{"wrapper":{"query":"e30="}}})),
            &tenant_a()
        )
        .is_err()); // BODY-48
        assert!(count(Some(json!({"aggs":{}})), &tenant_a()).is_err());
    }

    #[test]
    fn rejections_name_keys_but_not_values() {
        let err = search(
            Some(json!({"query":{"term":{"f":{"LEAKVALUE":"LEAKMARKER"}}}})),
            &tenant_a(),
        )
        .unwrap_err();
        assert!(!err.reason.contains("LEAKMARKER"), "{}", err.reason);
        assert!(err.reason.contains("LEAKVALUE"), "{}", err.reason);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        fn leaf_query() -> impl Strategy<Value = Value> {
            let field = "[a-z]{1,6}";
            prop_oneof![
                Just(json!({"match_all":{}})),
                (field, "[a-z0-9]{0,6}").prop_map(|(f, v)| json!({"term":{f:{"value":v}}})),
                (field, prop::collection::vec("[a-z]{1,4}", 0..3))
                    .prop_map(|(f, v)| json!({"terms":{f:v}})),
                (field, 0i64..100).prop_map(|(f, n)| json!({"range":{f:{"gte":n}}})),
                (field, "[a-z ]{0,8}").prop_map(|(f, t)| json!({"match":{f:t}})),
                field.prop_map(|f| json!({"exists":{"field":f}})),
                "[a-z*]{1,5}".prop_map(|q| json!({"query_string":{"query":q}})),
            ]
        }

        /// `q` with every nested path one level further below `p` (`p` becomes `p.p`): a
        /// nested clause inside another has a path below the outer one (`nested_inside`).
        fn below_p(mut q: Value) -> Value {
            fn walk(v: &mut Value) {
                match v {
                    Value::Object(m) => {
                        for (k, x) in m.iter_mut() {
                            if k == "nested" {
                                if let Some(Value::String(p)) = x.get_mut("path") {
                                    *p = format!("p.{p}");
                                }
                            }
                            walk(x);
                        }
                    }
                    Value::Array(items) => items.iter_mut().for_each(walk),
                    _ => {}
                }
            }
            walk(&mut q);
            q
        }

        fn query() -> impl Strategy<Value = Value> {
            leaf_query().prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3)
                        .prop_map(|v| json!({"bool":{"must":v}})),
                    prop::collection::vec(inner.clone(), 0..3)
                        .prop_map(|v| json!({"bool":{"should":v,"minimum_should_match":1}})),
                    inner
                        .clone()
                        .prop_map(|q| json!({"constant_score":{"filter":q}})),
                    inner
                        .clone()
                        .prop_map(|q| json!({"nested":{"path":"p","query":below_p(q)}})),
                    prop::collection::vec(inner, 1..3)
                        .prop_map(|v| json!({"dis_max":{"queries":v}})),
                ]
            })
        }

        fn filters() -> impl Strategy<Value = FilterSet> {
            prop::collection::vec(("[a-c]", "[a-z]{1,3}"), 0..4).prop_map(FilterSet::new)
        }

        /// Denied features, each as a function that places it somewhere given a valid query.
        fn denied_body() -> impl Strategy<Value = Value> {
            let bad_query = prop_oneof![
                Just(json!({"wrapper":{"query":"e30="}})),
                Just(json!({"has_child":{"type":"c","query":{"match_all":{}}}})),
                Just(json!({"percolate":{"field":"q","index":"x","id":"1"}})),
                Just(json!({"terms":{"u":{"index":"x","id":"1","path":"u"}}})),
                Just(json!({"script":{"script":"true"}})),
                Just(json!({"more_like_this":{"like":[{"_index":"x","_id":"1"}]}})),
                Just(json!({"pinned":{"ids":["1"],"organic":{"match_all":{}}}})),
            ];
            let bad_agg = prop_oneof![
                Just(json!({"global":{}})),
                Just(json!({"significant_terms":{"field":"x"}})),
                Just(json!({"terms":{"field":"x","min_doc_count":0}})),
                Just(json!({"scripted_metric":{}})),
            ];
            prop_oneof![
                (query(), bad_query.clone(), 0usize..4).prop_map(|(q, bad, depth)| {
                    let mut nested = bad;
                    for _ in 0..depth {
                        nested = json!({"bool":{"filter":[q.clone(), nested]}});
                    }
                    json!({"query": nested})
                }),
                bad_query.clone().prop_map(|b| json!({"post_filter": b})),
                bad_query.prop_map(|b| json!({"aggs":{"f":{"filter": b}}})),
                (bad_agg, 0usize..3).prop_map(|(bad, depth)| {
                    let mut aggs = json!({"x": bad});
                    for i in 0..depth {
                        aggs = json!({format!("l{i}"): {"terms":{"field":"f"},"aggs": aggs}});
                    }
                    json!({"aggs": aggs})
                }),
                prop_oneof![
                    Just("runtime_mappings"),
                    Just("suggest"),
                    Just("retriever"),
                    Just("ext"),
                    Just("indices_boost"),
                    Just("pit"),
                    Just("script_fields"),
                    Just("sub_searches")
                ]
                .prop_map(|k| json!({ k: {"x": {}} })),
            ]
        }

        proptest! {
            #[test]
            fn allowed_bodies_are_wrapped_with_exactly_the_token_clauses(
                q in prop::option::of(query()),
                size in prop::option::of(0u64..100),
                f in filters(),
            ) {
                let mut body = Map::new();
                if let Some(q) = &q { body.insert("query".into(), q.clone()); }
                if let Some(s) = size { body.insert("size".into(), json!(s)); }
                let out = search(Some(Value::Object(body)), &f).unwrap();
                let wrapper = &out["query"]["bool"];
                let expected_must = q.clone().unwrap_or_else(|| json!({"match_all":{}}));
                prop_assert_eq!(&wrapper["must"], &json!([expected_must]));
                if f.is_empty() {
                    prop_assert!(wrapper.get("filter").is_none());
                } else {
                    prop_assert_eq!(&wrapper["filter"], &Value::Array(f.clauses()));
                }
                prop_assert_eq!(out["query"].as_object().map(|m| m.len()), Some(1));
                prop_assert_eq!(wrapper.as_object().map(|m| m.len()), Some(if f.is_empty() { 1 } else { 2 }));
                if let Some(s) = size { prop_assert_eq!(&out["size"], &json!(s)); }
                let c = count(q.map(|q| json!({"query": q})), &f).unwrap();
                prop_assert_eq!(&c["query"], &out["query"]);
            }

            #[test]
            fn bodies_with_a_denied_feature_anywhere_are_rejected(body in denied_body(), f in filters()) {
                let got = search(Some(body), &f);
                prop_assert!(got.is_err());
            }
        }
    }
}

#[cfg(test)]
mod sort_order_tests {
    use crate::request::body::parse_strict;
    use crate::FilterSet;

    #[test]
    fn a_sort_object_with_several_fields_keeps_their_priority() {
        let body = parse_strict(
            br#"{"sort":{"_doc":{"order":"desc"},"@timestamp":{"order":"desc","unmapped_type":"boolean"}}}"#,
        )
        .unwrap();
        let out = super::search(Some(body), &FilterSet::default()).unwrap();
        let text = serde_json::to_string(&out["sort"]).unwrap();
        assert!(
            text.find("_doc").unwrap() < text.find("@timestamp").unwrap(),
            "{text}"
        );
        let bad = parse_strict(br#"{"sort":{"n":"asc","_script":{"script":"1"}}}"#).unwrap();
        assert!(super::search(Some(bad), &FilterSet::default()).is_err());
    }
}
