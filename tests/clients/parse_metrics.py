"""Parses esgate's /metrics with the Prometheus project's own text-format parser and prints
every sample as one JSON line: {"op": "sample", "family", "type", "name", "labels", "value"}.
The exposition is fetched from METRICS_URL. Used by tests/it/metrics.rs."""

import json
import os
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

with urllib.request.urlopen(os.environ["METRICS_URL"], timeout=30) as r:
    content_type = r.headers.get("content-type", "")
    text = r.read().decode("utf-8")

print(json.dumps({"op": "content_type", "value": content_type}))
for family in text_string_to_metric_families(text):
    for s in family.samples:
        print(json.dumps({
            "op": "sample",
            "family": family.name,
            "type": family.type,
            "name": s.name,
            "labels": s.labels,
            "value": s.value,
        }))
print(json.dumps({"op": "done"}))
