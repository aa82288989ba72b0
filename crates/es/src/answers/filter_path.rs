//! Elasticsearch's `filter_path` response filter, as a pure function over a JSON answer, for the
//! answers esgate reads whole and rewrites (sealed ids, transforms): there the parameter is
//! never sent to the backend (it could strip what esgate seals or checks), and esgate applies
//! it to its own final answer instead (see `shaping`).
//!
//! Semantics (Elasticsearch `FilterPath` / `FilterPathBasedFilter`):
//! - the value is a comma-separated list of filters; each filter is a dot-separated path;
//! - a segment matches one object key: `*` inside a segment matches any characters, `**` as a
//!   whole segment matches any number of keys (zero included);
//! - arrays are transparent: their elements are matched against the same path;
//! - a value whose path matches a filter completely is kept whole; an object or array reached
//!   only partially is kept when something inside it is kept (empty ones are dropped); a
//!   scalar reached only partially is dropped;
//! - a filter starting with `-` excludes what it matches; with only exclusions everything else
//!   is kept; with both, exclusions win;
//! - a key containing dots (`"a.b"`) is matched as its dot-separated parts.
//!
//! Invariant: pure and only ever removes parts of the value (never adds or changes one); the
//! matcher is a set of (filter, position) states, so any number of `**` costs polynomial time.

use serde_json::{Map, Value};

use crate::indices::index::glob_match;
use crate::Rejection;

/// Most filters one `filter_path` may list.
const MAX_FILTERS: usize = 64;
/// Most segments one filter may have.
const MAX_SEGMENTS: usize = 64;

/// One segment of a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of keys.
    AnyDepth,
    /// A key pattern (`*` wildcards).
    Key(String),
}

/// A parsed `filter_path` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterPath {
    include: Vec<Vec<Segment>>,
    exclude: Vec<Vec<Segment>>,
}

/// Matcher states: (filter index, position in that filter).
type States = Vec<(usize, usize)>;

/// How much of a value the include filters keep.
#[derive(Clone, Debug)]
enum Inclusion {
    /// Everything below (a filter matched completely, or there are no include filters).
    All,
    /// Only what the states still can match.
    Partial(States),
}

impl FilterPath {
    /// Parses a `filter_path` value. `None` when it lists no filter (nothing is filtered).
    pub fn parse(raw: &str) -> Result<Option<FilterPath>, Rejection> {
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for filter in raw.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (list, path) = match filter.strip_prefix('-') {
                Some(rest) => (&mut exclude, rest),
                None => (&mut include, filter),
            };
            let segments: Vec<Segment> = path
                .split('.')
                .map(|s| match s {
                    "" => Err(Rejection::bad_request(
                        "query parameter [filter_path] has an empty path segment",
                    )),
                    "**" => Ok(Segment::AnyDepth),
                    s => Ok(Segment::Key(s.to_string())),
                })
                .collect::<Result<_, _>>()?;
            if segments.len() > MAX_SEGMENTS {
                return Err(Rejection::bad_request(
                    "query parameter [filter_path] has a path that is too deep",
                ));
            }
            list.push(segments);
        }
        if include.len() + exclude.len() > MAX_FILTERS {
            return Err(Rejection::bad_request(
                "query parameter [filter_path] lists too many filters",
            ));
        }
        if include.is_empty() && exclude.is_empty() {
            return Ok(None);
        }
        Ok(Some(FilterPath { include, exclude }))
    }

    /// The parts of `value` the filters keep (`{}` when nothing is kept).
    pub fn apply(&self, value: Value) -> Value {
        let including = closure(&self.include, start(&self.include));
        let inclusion = if self.include.is_empty() || any_final(&self.include, &including) {
            Inclusion::All
        } else {
            Inclusion::Partial(including)
        };
        let excluding = closure(&self.exclude, start(&self.exclude));
        if any_final(&self.exclude, &excluding) {
            return Value::Object(Map::new());
        }
        self.walk(value, &inclusion, &excluding)
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    fn walk(&self, value: Value, inclusion: &Inclusion, excluding: &States) -> Option<Value> {
        match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, child) in map {
                    let excluding_next = step(&self.exclude, excluding, &key);
                    if any_final(&self.exclude, &excluding_next) {
                        continue;
                    }
                    let inclusion_next = match inclusion {
                        Inclusion::All => Inclusion::All,
                        Inclusion::Partial(states) => {
                            let next = step(&self.include, states, &key);
                            if next.is_empty() {
                                continue;
                            }
                            if any_final(&self.include, &next) {
                                Inclusion::All
                            } else {
                                Inclusion::Partial(next)
                            }
                        }
                    };
                    if let Some(kept) = self.walk(child, &inclusion_next, &excluding_next) {
                        out.insert(key, kept);
                    }
                }
                match inclusion {
                    Inclusion::All => Some(Value::Object(out)),
                    Inclusion::Partial(_) => (!out.is_empty()).then_some(Value::Object(out)),
                }
            }
            Value::Array(items) => {
                let out: Vec<Value> = items
                    .into_iter()
                    .filter_map(|item| self.walk(item, inclusion, excluding))
                    .collect();
                match inclusion {
                    Inclusion::All => Some(Value::Array(out)),
                    Inclusion::Partial(_) => (!out.is_empty()).then_some(Value::Array(out)),
                }
            }
            scalar => match inclusion {
                Inclusion::All => Some(scalar),
                Inclusion::Partial(_) => None,
            },
        }
    }
}

fn start(filters: &[Vec<Segment>]) -> States {
    (0..filters.len()).map(|f| (f, 0)).collect()
}

/// Adds the states reachable without consuming a key (`**` matching zero keys).
fn closure(filters: &[Vec<Segment>], mut states: States) -> States {
    let mut i = 0;
    while i < states.len() {
        let (f, p) = states[i];
        if filters[f].get(p) == Some(&Segment::AnyDepth) && !states.contains(&(f, p + 1)) {
            states.push((f, p + 1));
        }
        i += 1;
    }
    states
}

fn any_final(filters: &[Vec<Segment>], states: &States) -> bool {
    states.iter().any(|&(f, p)| p == filters[f].len())
}

/// The states after an object key (a dotted key consumes one segment per part).
fn step(filters: &[Vec<Segment>], states: &States, key: &str) -> States {
    let mut current = states.clone();
    for part in key.split('.') {
        let mut next: States = Vec::new();
        let mut push = |s: (usize, usize)| {
            if !next.contains(&s) {
                next.push(s);
            }
        };
        for &(f, p) in &current {
            match filters[f].get(p) {
                // A complete match keeps everything below it.
                None => push((f, p)),
                Some(Segment::AnyDepth) => push((f, p)),
                Some(Segment::Key(pattern)) => {
                    if glob_match(pattern, part) {
                        push((f, p + 1));
                    }
                }
            }
        }
        current = closure(filters, next);
        if current.is_empty() {
            break;
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filtered(filter: &str, v: Value) -> Value {
        FilterPath::parse(filter).unwrap().unwrap().apply(v)
    }

    fn search() -> Value {
        json!({
            "took": 3,
            "_scroll_id": "abc",
            "hits": {
                "total": {"value": 2, "relation": "eq"},
                "hits": [
                    {"_index": "logs-a", "_id": "1", "_source": {"user": "x", "n": 1}, "sort": [1]},
                    {"_index": "logs-a", "_id": "2", "_source": {"user": "y", "n": 2}, "sort": [2]}
                ]
            }
        })
    }

    #[test]
    fn the_documented_elasticsearch_examples_hold() {
        let all_hits = json!({"hits": {"hits": search()["hits"]["hits"].clone()}});
        let table: &[(&str, Value)] = &[
            (
                "took,hits.hits._id",
                json!({"took": 3, "hits": {"hits": [{"_id": "1"}, {"_id": "2"}]}}),
            ),
            (
                "hits.hits._source",
                json!({"hits": {"hits": [
                    {"_source": {"user": "x", "n": 1}}, {"_source": {"user": "y", "n": 2}}]}}),
            ),
            (
                "_scroll_id,hits.hits._source.user",
                json!({"_scroll_id": "abc", "hits": {"hits": [
                    {"_source": {"user": "x"}}, {"_source": {"user": "y"}}]}}),
            ),
            (
                "hits.total",
                json!({"hits": {"total": {"value": 2, "relation": "eq"}}}),
            ),
            (
                "**._id",
                json!({"hits": {"hits": [{"_id": "1"}, {"_id": "2"}]}}),
            ),
            ("hits.*.value", json!({"hits": {"total": {"value": 2}}})),
            ("hits.hits.*", all_hits),
            ("t*k", json!({"took": 3})),
            ("**", search()),
            ("nothing.here", json!({})),
            (
                "-hits.hits._source,-took",
                json!({"_scroll_id": "abc", "hits": {
                    "total": {"value": 2, "relation": "eq"},
                    "hits": [{"_index": "logs-a", "_id": "1", "sort": [1]},
                             {"_index": "logs-a", "_id": "2", "sort": [2]}]}}),
            ),
            (
                "hits.hits,-hits.hits._source,-**.sort",
                json!({"hits": {"hits": [{"_index": "logs-a", "_id": "1"},
                                         {"_index": "logs-a", "_id": "2"}]}}),
            ),
            // Exclusions win over inclusions of the same path.
            ("took,-took", json!({})),
        ];
        for (filter, expected) in table {
            assert_eq!(&filtered(filter, search()), expected, "{filter}");
        }
    }

    #[test]
    fn partial_containers_that_end_up_empty_are_dropped_matched_ones_kept() {
        let empty_hits = json!({"took": 1, "hits": {"hits": []}});
        assert_eq!(filtered("hits.hits._source", empty_hits.clone()), json!({}));
        assert_eq!(
            filtered("hits.hits", empty_hits),
            json!({"hits": {"hits": []}})
        );
        // A scalar reached only partially is dropped, inside an array too.
        assert_eq!(
            filtered("a.b", json!({"a": [1, {"b": 2}, {"c": 3}]})),
            json!({"a": [{"b": 2}]})
        );
        // Excluding everything (at the root too) keeps nothing.
        assert_eq!(filtered("-**", search()), json!({}));
        assert_eq!(filtered("**", json!(5)), json!(5));
        // Exclusions alone keep containers that end up empty.
        assert_eq!(filtered("-a.b", json!({"a": {"b": 1}})), json!({"a": {}}));
    }

    #[test]
    fn dotted_keys_and_any_depth() {
        assert_eq!(
            filtered("a.b.c", json!({"a.b": {"c": 1, "d": 2}})),
            json!({"a.b": {"c": 1}})
        );
        assert_eq!(
            filtered(
                "a.**.c",
                json!({"a": {"c": 1, "x": {"y": {"c": 2, "d": 3}}}})
            ),
            json!({"a": {"c": 1, "x": {"y": {"c": 2}}}})
        );
        // Many `**` stay cheap (states, not backtracking).
        let deep = (0..40).fold(json!(1), |v, _| json!({"k": v}));
        let filter = vec!["**"; 30].join(".") + ".x";
        assert_eq!(filtered(&filter, deep), json!({}));
    }

    #[test]
    fn it_only_ever_removes() {
        let v = search();
        for filter in [
            "took",
            "-took",
            "hits.hits._id,-hits.hits._index",
            "**.user",
        ] {
            let out = filtered(filter, v.clone());
            assert!(is_part_of(&out, &v), "{filter}: {out}");
        }
    }

    fn is_part_of(part: &Value, whole: &Value) -> bool {
        match (part, whole) {
            (Value::Object(p), Value::Object(w)) => p
                .iter()
                .all(|(k, pv)| w.get(k).is_some_and(|wv| is_part_of(pv, wv))),
            (Value::Array(p), Value::Array(w)) => {
                let mut it = w.iter();
                p.iter().all(|pv| it.any(|wv| is_part_of(pv, wv)))
            }
            _ => part == whole,
        }
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::from),
                "[a-c]{0,2}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-c]{1,2}|a\\.b", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn filter() -> impl Strategy<Value = String> {
            let segment = prop_oneof![
                Just("a".to_string()),
                Just("b".to_string()),
                Just("c*".to_string()),
                Just("*".to_string()),
                Just("**".to_string()),
            ];
            let path =
                (any::<bool>(), prop::collection::vec(segment, 1..4)).prop_map(|(neg, segs)| {
                    format!("{}{}", if neg { "-" } else { "" }, segs.join("."))
                });
            prop::collection::vec(path, 1..4).prop_map(|f| f.join(","))
        }

        proptest! {
            /// Whatever the filter, the answer is a part of the input: nothing added or changed.
            #[test]
            fn filtering_only_removes(v in json(), f in filter()) {
                let parsed = FilterPath::parse(&f).unwrap().unwrap();
                let out = parsed.apply(v.clone());
                // `{}` is the answer when nothing is kept (even of a scalar root).
                let nothing = Value::Object(Map::new());
                prop_assert!(out == nothing || is_part_of(&out, &v), "{} on {} gave {}", f, v, out);
            }

            /// `**` keeps everything.
            #[test]
            fn any_depth_alone_is_the_identity(v in json()) {
                let all = FilterPath::parse("**").unwrap().unwrap();
                prop_assert_eq!(all.apply(v.clone()), v);
            }
        }
    }

    #[test]
    fn parsing() {
        assert_eq!(FilterPath::parse("").unwrap(), None);
        assert_eq!(FilterPath::parse(" , ").unwrap(), None);
        for bad in ["a..b", ".a", "a.", "-"] {
            assert!(FilterPath::parse(bad).is_err(), "{bad}");
        }
        let many = vec!["a"; MAX_FILTERS + 1].join(",");
        assert!(FilterPath::parse(&many).is_err());
    }
}
