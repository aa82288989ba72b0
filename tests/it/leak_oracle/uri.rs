//! URI cases (session 20, attack20a): the read routes a `read` token may use, each with the
//! query parameters its route accepts drawn often and with varied values, and now and then one
//! it refuses. Beside a random search body (`Gen::url_params`) a parameter was almost never
//! forwarded (12-25% of session 19's cases accepted, most refused for their bodies), and most
//! routes had none at all. Each case is one of:
//!
//! - `_search` without a body or with a clean one (`clean_query`), with paging, sorts (fields,
//!   `_score`, `_doc`, several keys), `_source*`, `stored_fields`, `docvalue_fields`,
//!   `track_total_hits`, `terminate_after`, `version`, `routing`, `preference`, `timeout`,
//!   `request_cache`, the index options, `filter_path`, and `q` with its companions (`df`,
//!   `default_operator`, `analyzer`, `lenient`, `analyze_wildcard`);
//! - `_count` with `q` and its companions, `routing`, `preference`, `terminate_after`, the
//!   index options;
//! - `_validate/query` with `q` and its companions, the index options and the `false` forms of
//!   `explain`/`rewrite`/`all_shards`;
//! - `_explain/{id}` with `_source`, `_source_includes`/`_excludes`, `stored_fields`,
//!   `routing`, `preference` (the document under `get` compared);
//! - `_field_caps` with `fields`, `include_unmapped`, `filters`, `types`,
//!   `include_empty_fields`, the index options, a POST body (`fields`, `index_filter`);
//! - `_cat/indices` with `s` (rows compared in order), `h`, `bytes`, `v`, `local`;
//! - `_mapping`, `_resolve/index`, `_cluster/health` with their parameters;
//! - a scroll started with URI parameters (and `q`);
//! - `_msearch` with its URL parameters and header keys (`routing`, `preference`,
//!   `request_cache`, `allow_partial_search_results`, index options).
//!
//! Drawn from a stream of their own (`generate`), so every other case of a seed is the one it
//! was before they were added.

use serde_json::{json, Value};

use super::{encode, Body, Case, Gen, Kind, Parts, WIDE_INDICES};

/// The share of URI cases, and their stream.
pub(super) const URI_PERCENT: u64 = 15;
pub(super) const URI_STREAM: u64 = 0x0075_7269;

/// Tenant a's documents' ids, other tenants' and unknown ones.
const IDS: &[&str] = &["a1", "a2", "a7", "a13", "a20", "b1", "b3", "b9", "s1", "zz"];

impl Gen {
    /// A query esgate accepts for a filtered token, naming other tenants' values now and then.
    pub(super) fn clean_query(&mut self) -> Value {
        self.rng.pick(&[
            json!({"match_all": {}}),
            json!({"term": {"user": "alice"}}),
            json!({"term": {"user": "aaron"}}),
            json!({"terms": {"tags": ["red", "black"]}}),
            json!({"range": {"n": {"gte": -100, "lte": 40}}}),
            json!({"match": {"message": "hello secretword"}}),
            json!({"exists": {"field": "price"}}),
            json!({"bool": {"should": [{"term": {"status": "fatal"}}, {"term": {"status": "ok"}}]}}),
            json!({"range": {"@timestamp": {"gte": "2023-01-01", "lt": "2024-04-01"}}}),
            json!({"nested": {"path": "items", "query": {"term": {"items.sku": "s1"}}}}),
            json!({"bool": {"must_not": [{"term": {"tenant": "a"}}]}}),
        ])
    }

    /// `q` and, now and then, its companions: `name=value` pairs, encoded.
    fn uri_search_params(&mut self, companions: bool) -> Vec<String> {
        self.tag("u:q");
        let q = self.uri_query();
        // `+` is a space in a query string (Elasticsearch's decoding, and esgate's).
        let q = if self.rng.chance(20) {
            encode(q).replace("%20", "+")
        } else {
            encode(q)
        };
        let mut out = vec![format!("q={q}")];
        for _ in 0..if companions { self.rng.below(3) } else { 0 } {
            self.tag("u:q_companions");
            let p = match self.rng.below(5) {
                0 => format!(
                    "df={}",
                    self.rng
                        .pick(&["message", "user", "tags", "status", "*", "u*", "_index", "_id"])
                ),
                1 => format!(
                    "default_operator={}",
                    self.rng.pick(&["AND", "OR", "and", "XOR"])
                ),
                // osmem's URI search ignores `analyzer` and `lenient` (its body `query_string`
                // honours them, as Elasticsearch's URI search does, and so esgate's
                // translation): drawn on noida only, else `df` (FULL and ONLY_A answered the
                // body form alike, attack20a).
                2 if self.vectors => format!(
                    "analyzer={}",
                    self.rng
                        .pick(&["standard", "keyword", "whitespace", "simple", "nope"])
                ),
                3 if self.vectors => {
                    format!("lenient={}", self.rng.pick(&["true", "false", ""]))
                }
                2 | 3 => format!("df={}", self.rng.pick(&["message", "user"])),
                _ => format!("analyze_wildcard={}", self.rng.pick(&["true", "false"])),
            };
            if !out
                .iter()
                .any(|x| x.split('=').next() == p.split('=').next())
            {
                out.push(p);
            }
        }
        out
    }

    /// The index options, one of them.
    fn indices_option(&mut self) -> String {
        self.tag("u:indices_options");
        self.rng
            .pick(&[
                "ignore_unavailable=true",
                "ignore_unavailable=false",
                "allow_no_indices=true",
                "allow_no_indices=false",
                "expand_wildcards=open",
                "ignore_throttled=false",
                "expand_wildcards=all",
            ])
            .to_string()
    }

    /// A search's URI parameters (not `q`), and the body as the backend reads it with them.
    fn search_uri_params(&mut self, effective: &mut Value, out: &mut Vec<String>) {
        for _ in 0..1 + self.rng.below(4) {
            let before = effective.clone();
            let p = match self.rng.below(17) {
                0 => {
                    self.tag("u:size_from");
                    let n = self.rng.below(15);
                    effective["size"] = json!(n);
                    if self.rng.chance(40) {
                        let f = self.rng.below(6);
                        effective["from"] = json!(f);
                        out.push(format!("from={f}"));
                    }
                    format!("size={n}")
                }
                1 | 2 => {
                    self.tag("u:sort");
                    let s = self.rng.pick(&[
                        "n:desc",
                        "n",
                        "user:asc,n:desc",
                        "@timestamp:desc",
                        "price:desc",
                        "tags:asc,n",
                        "status:desc,_doc",
                        "_doc",
                        "_score",
                        "_score:asc,n",
                        "_index:desc,n:asc",
                        "_id",
                        "items.qty:desc",
                        "_seq_no",
                        "user:asc,_shard_doc",
                    ]);
                    if s.contains("_doc") {
                        self.tag("u:sort_doc");
                    }
                    let items: Vec<Value> = s
                        .split(',')
                        .map(|i| match i.rsplit_once(':') {
                            Some((f, d)) => {
                                let mut m = serde_json::Map::new();
                                m.insert(f.to_string(), json!(d));
                                Value::Object(m)
                            }
                            None => json!(i),
                        })
                        .collect();
                    effective["sort"] = json!(items);
                    format!("sort={}", encode(s))
                }
                3 => {
                    self.tag("u:track_total_hits");
                    let v = self.rng.pick(&["true", "false", "3", "100"]);
                    format!("track_total_hits={v}")
                }
                4 => {
                    self.tag("u:terminate_after");
                    let n = 1 + self.rng.below(5);
                    effective["terminate_after"] = json!(n);
                    format!("terminate_after={n}")
                }
                5 | 6 => {
                    self.tag("u:source");
                    let (k, v) = self.rng.pick(&[
                        ("_source", "false"),
                        ("_source", "true"),
                        ("_source", "user,n"),
                        ("_source", "us*"),
                        ("_source_includes", "user,tags"),
                        ("_source_includes", "items.*"),
                        ("_source_excludes", "message,items"),
                        ("_source_excludes", "t*"),
                    ]);
                    format!("{k}={}", encode(v))
                }
                7 => {
                    self.tag("u:stored_docvalue_fields");
                    let (k, v) = self.rng.pick(&[
                        ("stored_fields", "_none_"),
                        ("stored_fields", "user"),
                        ("stored_fields", "*"),
                        ("stored_fields", "_routing"),
                        ("docvalue_fields", "n"),
                        ("docvalue_fields", "user,@timestamp"),
                        ("docvalue_fields", "tags,price"),
                        ("docvalue_fields", "_id"),
                        ("docvalue_fields", "_seq_no"),
                        ("docvalue_fields", "items.sku"),
                    ]);
                    format!("{k}={}", encode(v))
                }
                8 => {
                    self.tag("u:version");
                    self.rng
                        .pick(&[
                            "version=true",
                            "track_scores=true",
                            "seq_no_primary_term=false",
                            "seq_no_primary_term=true",
                        ])
                        .to_string()
                }
                9 => {
                    self.tag("u:routing_preference");
                    self.rng
                        .pick(&[
                            "routing=a",
                            "routing=b,zed",
                            "preference=_local",
                            "preference=_shards%3A0",
                            "preference=session-1",
                            "preference=_only_nodes%3Ax",
                        ])
                        .to_string()
                }
                10 => {
                    self.tag("u:execution");
                    self.rng
                        .pick(&[
                            "timeout=10s",
                            "allow_partial_search_results=false",
                            "allow_partial_search_results=true",
                            "batched_reduce_size=2",
                            "max_concurrent_shard_requests=1",
                            "pre_filter_shard_size=1",
                            "request_cache=true",
                            "request_cache=false",
                            "search_type=query_then_fetch",
                            "search_type=dfs_query_then_fetch",
                        ])
                        .to_string()
                }
                11 => {
                    self.tag("u:answer_form");
                    self.rng
                        .pick(&[
                            "typed_keys=true",
                            "rest_total_hits_as_int=true",
                            "pretty=true",
                            "human=true",
                            "error_trace=false",
                        ])
                        .to_string()
                }
                12 => {
                    self.tag("u:filter_path");
                    let v = self.rng.pick(&[
                        "hits.total,aggregations",
                        "hits.hits._id,hits.total",
                        "-hits.hits._source",
                        "hits.hits._source.user,hits.total.value",
                    ]);
                    format!("filter_path={}", encode(v))
                }
                13 | 14 => self.indices_option(),
                _ => {
                    self.tag("u:refused");
                    self.rng
                        .pick(&[
                            "explain=true",
                            "min_score=0.5",
                            "stats=g1",
                            "suggest_field=user&suggest_text=aaron",
                            "q=user:alice",
                            "df=user",
                        ])
                        .to_string()
                }
            };
            // A parameter twice is a 400 of its own: drawn once each (and the body as the
            // backend reads it follows the one sent).
            let name = p.split('=').next().unwrap_or("").to_string();
            if out
                .iter()
                .any(|x| x.split('=').next() == Some(name.as_str()))
            {
                *effective = before;
            } else {
                out.push(p);
            }
        }
    }

    fn uri_index(&mut self) -> &'static str {
        if self.rng.chance(80) {
            self.rng.pick(&[
                "logs-*",
                "logs-*",
                "logs-1",
                "logs-2",
                "logs-3",
                "logs-all",
                "logs-1,logs-2",
                "*",
                "_all",
            ])
        } else {
            self.index()
        }
    }

    pub(super) fn uri_case(&mut self) -> Case {
        self.tag("uri_case");
        let index = self.uri_index();
        let parts: Parts = match self.rng.below(20) {
            0..=6 => self.uri_search(index),
            7..=9 => self.uri_count(index),
            10 => self.uri_validate(index),
            11 | 12 => self.uri_explain(),
            13 => self.uri_field_caps(index),
            14 => self.uri_cat(index),
            15 => self.uri_metadata(index),
            16 | 17 => self.uri_scroll(index),
            18 => self.uri_pit(index),
            _ if self.rng.chance(50) => self.uri_msearch(index),
            _ => self.uri_other_route(index),
        };
        self.plain_case(parts)
    }

    /// A body for a URI search: none, or a clean query (none beside `q`), now and then a small
    /// aggregation.
    fn uri_body(&mut self, with_q: bool) -> Option<Value> {
        let mut b = serde_json::Map::new();
        if !with_q && self.rng.chance(60) {
            b.insert("query".into(), self.clean_query());
        }
        if self.rng.chance(20) {
            self.tag("u:aggs");
            let agg = self.rng.pick(&[
                json!({"t": {"terms": {"field": "user"}}}),
                json!({"h": {"histogram": {"field": "n", "interval": 50}}}),
                json!({"m": {"max": {"field": "@timestamp"}}}),
            ]);
            b.insert("aggs".into(), agg);
        }
        (!b.is_empty() || self.rng.chance(30)).then_some(Value::Object(b))
    }

    fn uri_search(&mut self, index: &str) -> Parts {
        let with_q = self.rng.chance(35);
        let body = self.uri_body(with_q);
        let mut params = if with_q {
            self.uri_search_params(true)
        } else {
            Vec::new()
        };
        let mut effective = body.clone().unwrap_or(json!({}));
        self.search_uri_params(&mut effective, &mut params);
        let method = if body.is_some() || self.rng.chance(30) {
            "POST"
        } else {
            "GET"
        };
        (
            method,
            format!("/{index}/_search?{}", params.join("&")),
            body.map(Body::Json),
            Kind::Search(effective),
            "ep:_search",
        )
    }

    fn uri_count(&mut self, index: &str) -> Parts {
        let with_q = self.rng.chance(60);
        let mut params = if with_q {
            // osmem's `_count` ignores every companion of `q` (`df=user` counts as without it;
            // its `_search` honours them): drawn on noida only (attack20a).
            let vectors = self.vectors;
            self.uri_search_params(vectors)
        } else {
            Vec::new()
        };
        for _ in 0..self.rng.below(3) {
            let p = match self.rng.below(5) {
                0 => {
                    self.tag("u:terminate_after");
                    format!("terminate_after={}", 1 + self.rng.below(5))
                }
                1 => {
                    self.tag("u:routing_preference");
                    self.rng
                        .pick(&["routing=a", "preference=_local", "preference=xyz"])
                        .to_string()
                }
                2 => {
                    self.tag("u:refused");
                    self.rng
                        .pick(&["min_score=0.1", "stored_fields=user", "size=1"])
                        .to_string()
                }
                _ => self.indices_option(),
            };
            let name = p.split('=').next().unwrap_or("").to_string();
            if !params
                .iter()
                .any(|x| x.split('=').next() == Some(name.as_str()))
            {
                params.push(p);
            }
        }
        let body = if !with_q && self.rng.chance(60) {
            Some(Body::Json(json!({"query": self.clean_query()})))
        } else {
            None
        };
        let method = if body.is_some() { "POST" } else { "GET" };
        let sep = if params.is_empty() { "" } else { "?" };
        (
            method,
            format!("/{index}/_count{sep}{}", params.join("&")),
            body,
            Kind::Count,
            "ep:_count",
        )
    }

    fn uri_validate(&mut self, index: &str) -> Parts {
        let with_q = self.rng.chance(60);
        let mut params = if with_q {
            self.uri_search_params(true)
        } else {
            Vec::new()
        };
        if self.rng.chance(40) {
            self.tag("u:validate_false");
            params.push(
                self.rng
                    .pick(&[
                        "explain=false",
                        "rewrite=false",
                        "all_shards=false",
                        "explain=true",
                    ])
                    .to_string(),
            );
        }
        if self.rng.chance(30) {
            let p = self.indices_option();
            params.push(p);
        }
        let body = (!with_q).then(|| Body::Json(json!({"query": self.clean_query()})));
        let method = if body.is_some() { "POST" } else { "GET" };
        let sep = if params.is_empty() { "" } else { "?" };
        (
            method,
            format!("/{index}/_validate/query{sep}{}", params.join("&")),
            body,
            Kind::Validate,
            "ep:_validate/query",
        )
    }

    fn uri_explain(&mut self) -> Parts {
        // One index: the backend refuses `_explain` on an alias of two (see `Gen::case`).
        let one = self
            .rng
            .pick(&["logs-1", "logs-1", "logs-2", "logs-3", "secret-1"]);
        let id = self.rng.pick(IDS);
        let mut params = Vec::new();
        for _ in 0..1 + self.rng.below(2) {
            self.tag("u:explain_params");
            let p = self.rng.pick(&[
                "_source=true",
                "_source=false",
                "_source=user%2Cn",
                "_source_includes=user%2Ctags",
                "_source_excludes=message",
                "stored_fields=user",
                "stored_fields=_none_",
                "routing=a",
                "preference=_local",
                "q=user%3Aalice",
                "df=user",
                "lenient=true",
            ]);
            let name = p.split('=').next().unwrap_or("");
            if !params
                .iter()
                .any(|x: &String| x.split('=').next() == Some(name))
            {
                params.push(p.to_string());
            }
        }
        let body = Body::Json(json!({"query": self.clean_query()}));
        (
            "POST",
            format!("/{one}/_explain/{id}?{}", params.join("&")),
            Some(body),
            Kind::Explain,
            "ep:_explain",
        )
    }

    fn uri_field_caps(&mut self, index: &str) -> Parts {
        let mut params = vec![format!(
            "fields={}",
            encode(
                self.rng
                    .pick(&["*", "user,items.*", "n", "_id,user", "t*", "*.sku"])
            )
        )];
        for _ in 0..self.rng.below(3) {
            self.tag("u:field_caps_params");
            let p = match self.rng.below(4) {
                0 => self
                    .rng
                    .pick(&[
                        "include_unmapped=true",
                        "include_empty_fields=true",
                        "include_empty_fields=false",
                        "types=keyword%2Cinteger",
                    ])
                    .to_string(),
                1 => self
                    .rng
                    .pick(&[
                        "filters=-metadata",
                        "filters=%2Bmetadata",
                        "filters=-nested%2C-multifield",
                        "filters=-parent",
                    ])
                    .to_string(),
                _ => self.indices_option(),
            };
            let name = p.split('=').next().unwrap_or("").to_string();
            if !params
                .iter()
                .any(|x| x.split('=').next() == Some(name.as_str()))
            {
                params.push(p);
            }
        }
        if self.rng.chance(35) {
            self.tag("u:field_caps_body");
            // The fields in the body instead; now and then an `index_filter` (refused).
            params.remove(0);
            let mut b = json!({"fields": self.rng.pick(&[json!(["user", "n"]), json!("*")])});
            if self.rng.chance(30) {
                b["index_filter"] = json!({"range": {"@timestamp": {"lt": "2024-01-01"}}});
            }
            let sep = if params.is_empty() { "" } else { "?" };
            return (
                "POST",
                format!("/{index}/_field_caps{sep}{}", params.join("&")),
                Some(Body::Json(b)),
                Kind::FieldCaps,
                "ep:_field_caps",
            );
        }
        (
            "GET",
            format!("/{index}/_field_caps?{}", params.join("&")),
            None,
            Kind::FieldCaps,
            "ep:_field_caps",
        )
    }

    fn uri_cat(&mut self, index: &str) -> Parts {
        self.tag("u:cat_params");
        let mut params = vec!["format=json".to_string()];
        let sorted = self.rng.chance(60);
        if sorted {
            params.push(format!(
                "s={}",
                encode(self.rng.pick(&[
                    "index",
                    "index:desc",
                    "i:desc",
                    "status,index",
                    "health:asc,index:desc",
                    "docs.count:desc",
                ]))
            ));
        }
        if self.rng.chance(60) {
            params.push(format!(
                "h={}",
                encode(self.rng.pick(&[
                    "index,status,health",
                    "i,s,h,pri,rep",
                    "index,health,docs.count",
                    "idx,status",
                ]))
            ));
        }
        if self.rng.chance(30) {
            params.push(
                self.rng
                    .pick(&["bytes=b", "v=true", "local=true", "master_timeout=30s"])
                    .to_string(),
            );
        }
        (
            "GET",
            format!("/_cat/indices/{index}?{}", params.join("&")),
            None,
            if sorted { Kind::CatOrdered } else { Kind::Cat },
            "ep:_cat/indices",
        )
    }

    fn uri_metadata(&mut self, index: &str) -> Parts {
        self.tag("u:metadata_params");
        match self.rng.below(3) {
            0 => {
                let mut p = vec![self
                    .rng
                    .pick(&["local=true", "master_timeout=30s", "local=false"])
                    .to_string()];
                if self.rng.chance(50) {
                    p.push(self.indices_option());
                }
                (
                    "GET",
                    format!("/{index}/_mapping?{}", p.join("&")),
                    None,
                    Kind::Plain,
                    "ep:_mapping",
                )
            }
            1 => {
                // osmem resolves `_all` as a literal name (see `Gen::other_endpoint`).
                let index = if index == "_all" { "logs-*" } else { index };
                let p = self.indices_option();
                (
                    "GET",
                    format!("/_resolve/index/{index}?{p}"),
                    None,
                    Kind::Resolve,
                    "ep:_resolve/index",
                )
            }
            _ => {
                let p = self.rng.pick(&[
                    "timeout=0s&level=cluster",
                    "timeout=0s&wait_for_status=yellow",
                    "timeout=0s&wait_for_status=red",
                    "timeout=0s&level=indices",
                ]);
                (
                    "GET",
                    format!("/_cluster/health/{index}?{p}"),
                    None,
                    Kind::Health,
                    "ep:_cluster/health",
                )
            }
        }
    }

    fn uri_scroll(&mut self, index: &str) -> Parts {
        let with_q = self.rng.chance(30);
        let mut params = vec!["scroll=1m".to_string()];
        if with_q {
            params.extend(self.uri_search_params(true));
        }
        let size = 1 + self.rng.below(4);
        params.push(format!("size={size}"));
        let mut effective = json!({ "size": size });
        if self.rng.chance(50) {
            self.tag("u:sort");
            let s = self
                .rng
                .pick(&["n:asc", "user,n", "_doc", "@timestamp:desc"]);
            params.push(format!("sort={}", encode(s)));
        }
        if self.rng.chance(40) {
            self.tag("u:source");
            params.push(
                self.rng
                    .pick(&[
                        "_source=user",
                        "_source_excludes=message",
                        "track_total_hits=true",
                        "rest_total_hits_as_int=true",
                        "version=true",
                        "docvalue_fields=n",
                    ])
                    .to_string(),
            );
        }
        let body = if !with_q && self.rng.chance(60) {
            let b = json!({"query": self.clean_query()});
            effective["query"] = b["query"].clone();
            Some(Body::Json(b))
        } else {
            None
        };
        (
            if body.is_some() { "POST" } else { "GET" },
            format!("/{index}/_search?{}", params.join("&")),
            body,
            Kind::Scroll(effective),
            "ep:scroll",
        )
    }

    /// Read routes a `read` token is refused (documents by id, term vectors, shard and index
    /// statistics, vector tiles, rank evaluation, templates), and `_knn_search` with its
    /// `routing` on noida: compared whole should esgate ever forward one.
    fn uri_other_route(&mut self, index: &str) -> Parts {
        self.tag("u:other_route");
        if self.vectors && self.rng.chance(25) {
            let v = self.rng.pick(&super::QUERY_VECTORS);
            let b = json!({"knn": {"field": "v", "query_vector": v, "k": 3, "num_candidates": 10},
                "_source": ["user"]});
            return (
                "POST",
                format!("/{index}/_knn_search?routing=a"),
                Some(Body::Json(b.clone())),
                Kind::Search(b),
                "ep:_knn_search",
            );
        }
        let id = self.rng.pick(IDS);
        let (method, path, body) = match self.rng.below(14) {
            0 => (
                "GET",
                format!("/logs-1/_termvectors/{id}?fields=message"),
                None,
            ),
            1 => (
                "POST",
                "/logs-1/_mtermvectors".to_string(),
                Some(
                    json!({"ids": ["a2", "b2"], "parameters": {"fields": ["message"], "term_statistics": true}}),
                ),
            ),
            2 => ("GET", format!("/logs-1/_source/{id}"), None),
            3 => ("GET", format!("/{index}/_search_shards"), None),
            4 => ("POST", format!("/{index}/_mvt/loc/0/0/0"), Some(json!({}))),
            5 => (
                "POST",
                format!("/{index}/_rank_eval"),
                Some(
                    json!({"requests": [{"id": "q", "request": {"query": {"match": {"message": "secretword"}}},
                    "ratings": [{"_index": "logs-1", "_id": "b2", "rating": 1}]}],
                    "metric": {"precision": {"k": 5}}}),
                ),
            ),
            6 => ("GET", format!("/_cat/count/{index}?format=json"), None),
            7 => ("GET", format!("/{index}/_stats/docs"), None),
            8 => (
                "POST",
                format!("/{index}/_search/template"),
                Some(
                    json!({"source": {"query": {"term": {"user": "{{u}}"}}}, "params": {"u": "aaron"}}),
                ),
            ),
            9 => (
                "POST",
                "/_render/template".to_string(),
                Some(json!({"source": {"query": {"match_all": {}}}})),
            ),
            10 => ("GET", format!("/_cat/shards/{index}?format=json"), None),
            11 => ("GET", format!("/{index}/_segments"), None),
            12 => (
                "POST",
                format!("/{index}/_graph/explore"),
                Some(json!({"query": {"match_all": {}}, "vertices": [{"field": "user"}]})),
            ),
            _ => ("GET", format!("/{index}/_settings"), None),
        };
        (
            method,
            path,
            body.map(Body::Json),
            Kind::Plain,
            "ep:refused_route",
        )
    }

    /// A point in time opened with parameters (`routing`, `preference`, partial results, index
    /// options), searched with a clean body, closed (`Oracle::run_pit`).
    fn uri_pit(&mut self, index: &str) -> Parts {
        self.tag("u:pit_params");
        let mut params: Vec<String> = Vec::new();
        for _ in 0..1 + self.rng.below(2) {
            let p = self.rng.pick(&[
                "routing=a",
                "preference=_local",
                "preference=_only_nodes%3Ax",
                "allow_partial_search_results=false",
                "allow_partial_pit_creation=true",
                "ignore_unavailable=true",
                "expand_wildcards=open",
                "allow_no_indices=true",
            ]);
            let name = p.split('=').next().unwrap_or("");
            if !params.iter().any(|x| x.split('=').next() == Some(name)) {
                params.push(p.to_string());
            }
        }
        let mut b = json!({"query": self.clean_query()});
        if self.rng.chance(50) {
            b["sort"] = json!([{"n": "asc"}]);
            b["size"] = json!(1 + self.rng.below(5));
        }
        (
            "POST",
            format!("/{index}?{}", params.join("&")),
            Some(Body::Json(b.clone())),
            Kind::Pit(b),
            "ep:point_in_time",
        )
    }

    fn uri_msearch(&mut self, index: &str) -> Parts {
        let mut params: Vec<String> = Vec::new();
        for _ in 0..self.rng.below(3) {
            self.tag("u:msearch_params");
            let p = self.rng.pick(&[
                "typed_keys=true",
                "rest_total_hits_as_int=true",
                "max_concurrent_searches=1",
                "max_concurrent_shard_requests=2",
                "search_type=query_then_fetch",
                "pre_filter_shard_size=1",
                "ignore_unavailable=true",
                "allow_no_indices=true",
                "ccs_minimize_roundtrips=false",
            ]);
            let name = p.split('=').next().unwrap_or("");
            if !params.iter().any(|x| x.split('=').next() == Some(name)) {
                params.push(p.to_string());
            }
        }
        let mut lines = Vec::new();
        let mut bodies = Vec::new();
        for _ in 0..1 + self.rng.below(3) {
            let mut header = json!({});
            if self.rng.chance(60) {
                self.tag("u:msearch_header");
                let other = self.rng.pick(WIDE_INDICES);
                let (k, v) = self.rng.pick(&[
                    ("routing", json!("a")),
                    ("preference", json!("_local")),
                    ("preference", json!("_only_nodes:x")),
                    ("request_cache", json!(true)),
                    ("allow_partial_search_results", json!(false)),
                    ("ignore_unavailable", json!(true)),
                    ("expand_wildcards", json!("open")),
                    ("search_type", json!("query_then_fetch")),
                    ("index", json!(other)),
                ]);
                header[k] = v;
            }
            let mut b = json!({"query": self.clean_query()});
            if self.rng.chance(40) {
                b["sort"] = json!([{"n": "asc"}]);
                b["size"] = json!(self.rng.below(6));
            }
            lines.push(header);
            lines.push(b.clone());
            bodies.push(b);
        }
        let sep = if params.is_empty() { "" } else { "?" };
        (
            "POST",
            format!("/{index}/_msearch{sep}{}", params.join("&")),
            Some(Body::Ndjson(lines)),
            Kind::Msearch(bodies),
            "ep:_msearch",
        )
    }
}
