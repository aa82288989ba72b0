"""The request bodies both load benchmarks send (`pinned.sh`, `instructions.sh`), written as
`post2k.json` and `post200k.json` into the directory given: shaped like the criterion bench's
(`benches/support/shapes.rs`), and compact, as Kibana (`JSON.stringify`), Grafana and the
official clients send them. `post2k-spaced.json` is the same search as Python's default
`json.dumps` spells it (a space after every `,` and `:`), for `instructions.sh`'s row of a body
that is not in the writer's form (esgate then writes every container item by item).

Usage: python3 benches/load/bodies.py DIR
"""
import json
import sys

work = sys.argv[1]
# A Kibana Discover-style search (~2 KB): time range, KQL as bool/should, sort, fields,
# highlight, a date histogram.
kibana = {
  "track_total_hits": True, "size": 500,
  "sort": [{"@timestamp": {"order": "desc", "format": "strict_date_optional_time", "unmapped_type": "boolean"}}],
  "fields": [{"field": "*", "include_unmapped": "true"}, {"field": "@timestamp", "format": "strict_date_optional_time"}],
  "version": True, "script_fields": {}, "stored_fields": ["*"], "runtime_mappings": {},
  "_source": False,
  "query": {"bool": {"must": [], "filter": [
      {"bool": {"should": [{"match_phrase": {"service.name": "checkout"}}], "minimum_should_match": 1}},
      {"bool": {"should": [{"match": {"log.level": "error"}}, {"match": {"log.level": "warn"}}], "minimum_should_match": 1}},
      {"range": {"@timestamp": {"format": "strict_date_optional_time", "gte": "2026-11-01T00:00:00.000Z", "lte": "2026-11-02T00:00:00.000Z"}}}],
    "should": [], "must_not": [{"match_phrase": {"http.request.method": "OPTIONS"}}]}},
  "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "30m", "time_zone": "UTC", "min_doc_count": 1}}},
  "highlight": {"pre_tags": ["@kibana-highlighted-field@"], "post_tags": ["@/kibana-highlighted-field@"], "fields": {"*": {}}, "fragment_size": 2147483647},
}
def compact(value):
    return json.dumps(value, separators=(",", ":"))

while len(compact(kibana)) < 2000:
    kibana["query"]["bool"]["filter"][0]["bool"]["should"].append({"match_phrase": {"service.name": "service-%d" % len(kibana["query"]["bool"]["filter"][0]["bool"]["should"])}})
open(work + "/post2k.json", "w").write(compact(kibana))
open(work + "/post2k-spaced.json", "w").write(json.dumps(kibana))
# ~200 KB: a long list of exact values (a dashboard filter pasted from a spreadsheet).
big = {"size": 10, "query": {"bool": {"filter": [{"terms": {"user.id": ["user-%06d" % i for i in range(14000)]}},
       {"range": {"@timestamp": {"gte": "now-1d"}}}]}}}
open(work + "/post200k.json", "w").write(compact(big))
