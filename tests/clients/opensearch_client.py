"""opensearch-py 3 through esgate: info, count, search, msearch, field_caps, and one request
esgate must refuse. See common.py for the environment and the output. AUTH=basic uses
http_auth=(secret, "token"); opensearch-py has no api_key option, so AUTH=apikey sends the
Elasticsearch-style `Authorization: ApiKey base64(id:secret)` header as its users would.
"""

import base64
import json

import opensearchpy
from opensearchpy import OpenSearch, helpers

from common import (
    Runner,
    agg_summary,
    docs_summary,
    emit,
    env,
    hits_summary,
    ordered_hits,
    page_through,
    resolved_summary,
)

url = env("ESGATE_URL")
auth = env("AUTH")
index = env("INDEX")
options = {
    "http_compress": env("COMPRESS") == "1",
    "timeout": 30,
    "max_retries": 0,
}
if auth == "basic":
    options["http_auth"] = (env("TOKEN_SECRET"), "token")
elif auth == "apikey":
    key = base64.b64encode(f"{env('TOKEN_ID')}:{env('TOKEN_SECRET')}".encode()).decode()
    options["headers"] = {"authorization": f"ApiKey {key}"}
else:
    raise SystemExit(f"unknown AUTH {auth!r}")

client = OpenSearch(hosts=[url], **options)
emit({"op": "client", "version": opensearchpy.__versionstr__})
r = Runner()


def info():
    body = client.info()
    return {"tagline": body.get("tagline"), "number": body.get("version", {}).get("number")}


def count():
    return {"count": client.count(index=index)["count"]}


def count_query():
    body = client.count(index=index, body={"query": {"match": {"message": "hello"}}})
    return {"count": body["count"]}


def search():
    return hits_summary(client.search(index=index, body={"query": {"match_all": {}}, "size": 50}))


def search_other_tenant():
    body = client.search(index=index, body={"query": {"term": {"tenant": "b"}}, "size": 50})
    return hits_summary(body)


def msearch():
    body = client.msearch(
        index=index,
        body=[
            {"index": index},
            {"query": {"match_all": {}}, "size": 50},
            {},
            {"query": {"match": {"message": "hello"}}, "size": 0},
        ],
    )
    items = []
    for item in body.get("responses", []):
        summary = hits_summary(item) if "hits" in item else {}
        summary["status"] = item.get("status")
        summary["error"] = item.get("error")
        items.append(summary)
    return {"items": items}


def field_caps():
    body = client.field_caps(index=index, fields="*")
    fields = body.get("fields", {})
    return {
        "indices": sorted(body.get("indices", [])),
        "fields": sorted(f for f in fields if not f.startswith("_")),
        "tenant_types": sorted(fields.get("tenant", {}).keys()),
    }


def aggs():
    body = client.search(
        index=index,
        body={
            "size": 0,
            "aggs": {"users": {"terms": {"field": "user"}}, "sum_n": {"sum": {"field": "n"}}},
        },
    )
    return agg_summary(body)


def search_params():
    body = client.search(
        index=index,
        body={"size": 3, "from": 2, "sort": [{"n": "asc"}], "track_total_hits": True},
        params={"_source_includes": "n,tenant"},
    )
    return ordered_hits(body)


def ping():
    return {"ping": client.ping()}


def count_no_index():
    return {"count": client.count()["count"]}


def search_no_index():
    return hits_summary(client.search(body={"size": 50}))


def search_index_list():
    return hits_summary(client.search(index=env("INDEX_LIST").split(","), body={"size": 50}))


def search_lenient():
    body = client.search(
        index=index,
        body={"size": 50},
        ignore_unavailable=True,
        allow_no_indices=True,
        expand_wildcards="open",
    )
    return hits_summary(body)


def search_common_params():
    body = client.search(
        index=index,
        body={"size": 50},
        # No `timeout`: opensearch-py takes it (keyword or params) as its own socket timeout.
        request_cache=True,
        track_scores=True,
        rest_total_hits_as_int=False,
        human=True,
        preference="_local",
    )
    return hits_summary(body)


def search_q():
    return hits_summary(client.search(index=index, q="message:hello", size=50))


def opaque_id():
    return {"count": client.count(index=index, opaque_id="esgate-test-1")["count"]}


def get_mapping():
    body = client.indices.get_mapping(index=index)
    return {"indices": sorted(body), "raw": json.dumps(body)}


def resolve_index():
    return resolved_summary(client.indices.resolve_index(name=index))


def cluster_health():
    body = client.cluster.health()
    return {"status": body.get("status"), "raw": json.dumps(body)}


def scan():
    """helpers.scan: a scroll of 3 hits a page, then clear_scroll."""
    hits = list(
        helpers.scan(client, index=index, query={"query": {"match_all": {}}}, size=3, scroll="1m")
    )
    return docs_summary(hits)


def pit():
    """create_pit, search with pit paged by search_after, delete_pit (OpenSearch's
    _search/point_in_time routes)."""
    pit_id = client.create_pit(index=index, keep_alive="1m")["pit_id"]

    def search(body):
        return client.search(body=body)

    first = {"pit": {"id": pit_id, "keep_alive": "1m"}, "query": {"match_all": {}}}
    hits, pages, last_id = page_through(search, first)
    deleted = client.delete_pit(body={"pit_id": [last_id]})
    return docs_summary(hits) | {
        "ordered_ids": [h.get("_id") for h in hits],
        "pages": pages,
        "closed": all(p.get("successful") for p in deleted.get("pits", [{}])),
    }


r.run_operations(globals())
r.maybe_refusal("refused_get", lambda: client.get(index=env("DENIED_INDEX"), id=env("DENIED_ID")))
r.maybe_refusal(
    "refused_write",
    lambda: client.index(index=env("DENIED_INDEX"), id="new", body={"tenant": "a"}),
)
r.maybe_refusal(
    "refused_delete", lambda: client.delete(index=env("DENIED_INDEX"), id=env("DENIED_ID"))
)
r.maybe_refusal(
    "refused_sql",
    lambda: client.plugins.sql.query(body={"query": f"SELECT * FROM {env('FOREIGN_INDEX')}"}),
)
r.maybe_refusal(
    "refused_token",
    lambda: OpenSearch(
        hosts=[url], http_auth=(env("REFUSED_SECRET"), "token"), max_retries=0
    ).count(index=index),
)
r.maybe_refusal(
    "refused_auth",
    lambda: OpenSearch(
        hosts=[url], http_auth=("esg_not_a_real_token", "token"), max_retries=0
    ).count(index=index),
)
r.finish()
