//! Request bodies shaped like Kibana's and Grafana's (issue 10 goal 6), shared by the criterion
//! bench (`request_path.rs`) and the instruction-count loop (`examples/request_path_loop.rs`, under callgrind).

use std::sync::{Arc, OnceLock};

use std::collections::BTreeMap;

use esgate::es::dsl::histogram_fields::FieldTypes;
use esgate::es::ids::continuation::{Binding, IdKey};
use esgate::es::indices::resolution::{NameKind, ResolvedName};
use esgate::es::{FilterSet, Prepared, Resolution, Scope};
use serde_json::json;

/// Every index expression `prepared` names resolved to `logs-a` and `logs-b`, and every field
/// its histograms need typed (`es::dsl::histogram_fields`) a `date` in both: what the proxy's
/// resolver and field type cache give on a hit (the types shared, built once, as the cache
/// shares its entries).
pub fn resolution_for(prepared: &Prepared) -> Resolution {
    let mut names = BTreeMap::new();
    for e in prepared.to_resolve() {
        names.insert(
            e.clone(),
            ["logs-a", "logs-b"]
                .iter()
                .map(|n| ResolvedName {
                    name: n.to_string(),
                    kind: NameKind::Index,
                    indices: vec![n.to_string()],
                })
                .collect(),
        );
    }
    let mut field_types = BTreeMap::new();
    for (expr, fields) in prepared.field_types_needed() {
        let types = fields.names().map(date_in_both).collect();
        field_types.insert(expr.to_string(), types);
    }
    Resolution {
        names,
        dialect: None,
        field_types,
    }
}

/// `field` a `date` in `logs-a` and `logs-b`; `@timestamp`'s built once.
fn date_in_both(field: &str) -> Arc<FieldTypes> {
    static TIMESTAMP: OnceLock<Arc<FieldTypes>> = OnceLock::new();
    let build = |field: &str| {
        let pairs = ["logs-a", "logs-b"]
            .iter()
            .map(|i| (i.to_string(), Some("date".to_string())))
            .collect();
        Arc::new(FieldTypes::new(field, pairs))
    };
    if field == "@timestamp" {
        Arc::clone(TIMESTAMP.get_or_init(|| build(field)))
    } else {
        build(field)
    }
}

/// A `read` token filtered to `tenant: a` on `logs-*`, no limits.
pub fn scope() -> Scope {
    Scope {
        filters: FilterSet::new([("tenant".to_string(), "a".to_string())]).into(),
        indices: vec!["logs-*".to_string()].into(),
        ids: Binding {
            token_id: "tok_bench".into(),
            key: Arc::new(IdKey::new([3; 32])),
        },
        guard: Default::default(),
    }
}

/// A Kibana Discover search of about 2 KB (the shape `benches/load/pinned.sh` sends): time
/// range, KQL as `bool`/`should`, sort, fields, highlight, a date histogram.
pub fn kibana_2k() -> Vec<u8> {
    let mut should = vec![json!({"match_phrase": {"service.name": "checkout"}})];
    loop {
        let body = json!({
            "track_total_hits": true, "size": 500,
            "sort": [{"@timestamp": {"order": "desc", "format": "strict_date_optional_time", "unmapped_type": "boolean"}}],
            "fields": [{"field": "*", "include_unmapped": "true"}, {"field": "@timestamp", "format": "strict_date_optional_time"}],
            "version": true, "script_fields": {}, "stored_fields": ["*"], "runtime_mappings": {},
            "_source": false,
            "query": {"bool": {"must": [], "filter": [
                {"bool": {"should": should.clone(), "minimum_should_match": 1}},
                {"bool": {"should": [{"match": {"log.level": "error"}}, {"match": {"log.level": "warn"}}], "minimum_should_match": 1}},
                {"range": {"@timestamp": {"format": "strict_date_optional_time", "gte": "2026-11-01T00:00:00.000Z", "lte": "2026-11-02T00:00:00.000Z"}}}],
              "should": [], "must_not": [{"match_phrase": {"http.request.method": "OPTIONS"}}]}},
            "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "30m", "time_zone": "UTC", "min_doc_count": 1}}},
            "highlight": {"pre_tags": ["@kibana-highlighted-field@"], "post_tags": ["@/kibana-highlighted-field@"], "fields": {"*": {}}, "fragment_size": 2147483647},
        });
        let bytes = serde_json::to_vec(&body).expect("serialises");
        if bytes.len() >= 2000 {
            return bytes;
        }
        let n = should.len();
        should.push(json!({"match_phrase": {"service.name": format!("service-{n}")}}));
    }
}

/// [`kibana_2k`] as Python's default `json.dumps` spells it (what `requests.post(json=...)`
/// and many scripts send, `benches/load/bodies.py`'s `post2k-spaced.json`): a space after
/// every `,` and `:` between tokens (session 29: a body esgate forwards as the client spaced
/// it, not rewritten item by item).
pub fn kibana_2k_spaced() -> Vec<u8> {
    let compact = kibana_2k();
    let mut out = Vec::with_capacity(compact.len() + compact.len() / 8);
    // Inside a string, and after a backslash in it (the body has none, but a respelling must
    // not put a space inside a string).
    let (mut inside, mut escaped) = (false, false);
    for b in compact {
        out.push(b);
        if inside {
            match (escaped, b) {
                (false, b'\\') => escaped = true,
                (false, b'"') => inside = false,
                _ => escaped = false,
            }
        } else if b == b'"' {
            inside = true;
        } else if b == b',' || b == b':' {
            out.push(b' ');
        }
    }
    out
}

/// About 200 KB: a `terms` query with 14000 values (a filter pasted from a spreadsheet).
pub fn terms_200k() -> Vec<u8> {
    let ids: Vec<String> = (0..14000).map(|i| format!("user-{i:06}")).collect();
    serde_json::to_vec(&json!({"size": 10, "query": {"bool": {"filter": [
        {"terms": {"user.id": ids}}, {"range": {"@timestamp": {"gte": "now-1d"}}}]}}}))
    .expect("serialises")
}

/// A Grafana dashboard refresh: 20 searches in one `_msearch`.
pub fn msearch_20() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..20 {
        out.extend_from_slice(b"{\"index\":\"logs-*\",\"ignore_unavailable\":true}\n");
        let body = json!({"size": 0, "query": {"bool": {"filter": [
            {"range": {"@timestamp": {"gte": 1700000000000u64, "lte": 1700003600000u64, "format": "epoch_millis"}}},
            {"query_string": {"query": format!("service:s{i} AND level:error"), "analyze_wildcard": true}}]}},
            "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "30s", "min_doc_count": 0,
                "extended_bounds": {"min": 1700000000000u64, "max": 1700003600000u64}, "format": "epoch_millis"},
                "aggs": {"3": {"terms": {"field": "host.name", "size": 10, "order": {"_count": "desc"}}}}}}});
        out.extend_from_slice(&serde_json::to_vec(&body).expect("serialises"));
        out.push(b'\n');
    }
    out
}
