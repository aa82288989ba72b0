"""elasticsearch-py (8 or 9, whichever the venv has) through esgate: info, count, search,
msearch, field_caps, and one request esgate must refuse. See common.py for the environment and
the output; AUTH=basic uses basic_auth=(secret, "token"), AUTH=apikey uses api_key=(id, secret).
"""

import json

import elasticsearch
from elasticsearch import Elasticsearch, helpers

from common import (
    Runner,
    agg_summary,
    body_of,
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
    "request_timeout": 30,
    # A refusal must surface at once, not after retries.
    "max_retries": 0,
}
if auth == "basic":
    options["basic_auth"] = (env("TOKEN_SECRET"), "token")
elif auth == "apikey":
    options["api_key"] = (env("TOKEN_ID"), env("TOKEN_SECRET"))
else:
    raise SystemExit(f"unknown AUTH {auth!r}")

client = Elasticsearch(url, **options)
emit({"op": "client", "version": elasticsearch.__versionstr__})
r = Runner()


def info():
    body = body_of(client.info())
    return {"tagline": body.get("tagline"), "number": body.get("version", {}).get("number")}


def count():
    return {"count": body_of(client.count(index=index))["count"]}


def count_query():
    body = body_of(client.count(index=index, query={"match": {"message": "hello"}}))
    return {"count": body["count"]}


def search():
    return hits_summary(body_of(client.search(index=index, size=50, query={"match_all": {}})))


def search_other_tenant():
    body = body_of(client.search(index=index, size=50, query={"term": {"tenant": "b"}}))
    return hits_summary(body)


def msearch():
    body = body_of(
        client.msearch(
            searches=[
                {"index": index},
                {"query": {"match_all": {}}, "size": 50},
                {},
                {"query": {"match": {"message": "hello"}}, "size": 0},
            ],
            index=index,
        )
    )
    items = []
    for item in body.get("responses", []):
        summary = hits_summary(item) if "hits" in item else {}
        summary["status"] = item.get("status")
        summary["error"] = item.get("error")
        items.append(summary)
    return {"items": items}


def field_caps():
    body = body_of(client.field_caps(index=index, fields="*"))
    fields = body.get("fields", {})
    return {
        "indices": sorted(body.get("indices", [])),
        "fields": sorted(f for f in fields if not f.startswith("_")),
        "tenant_types": sorted(fields.get("tenant", {}).keys()),
    }


def aggs():
    body = body_of(
        client.search(
            index=index,
            size=0,
            aggs={"users": {"terms": {"field": "user"}}, "sum_n": {"sum": {"field": "n"}}},
        )
    )
    return agg_summary(body)


def search_params():
    body = body_of(
        client.search(
            index=index,
            size=3,
            from_=2,
            sort=[{"n": "asc"}],
            source_includes=["n", "tenant"],
            track_total_hits=True,
        )
    )
    return ordered_hits(body)


def ping():
    return {"ping": client.ping()}


def count_no_index():
    return {"count": body_of(client.count())["count"]}


def search_no_index():
    return hits_summary(body_of(client.search(size=50)))


def search_index_list():
    names = env("INDEX_LIST").split(",")
    return hits_summary(body_of(client.search(index=names, size=50)))


def search_lenient():
    body = client.search(
        index=index,
        size=50,
        ignore_unavailable=True,
        allow_no_indices=True,
        expand_wildcards="open",
    )
    return hits_summary(body_of(body))


def search_q():
    return hits_summary(body_of(client.search(index=index, q="message:hello", size=50)))


def opaque_id():
    return {"count": body_of(client.options(opaque_id="esgate-test-1").count(index=index))["count"]}


def get_mapping():
    body = body_of(client.indices.get_mapping(index=index))
    return {"indices": sorted(body), "raw": json.dumps(body)}


def resolve_index():
    body = body_of(client.indices.resolve_index(name=index))
    return resolved_summary(body)


def cluster_health():
    body = body_of(client.cluster.health())
    return {"status": body.get("status"), "raw": json.dumps(body)}


def search_common_params():
    body = client.search(
        index=index,
        size=50,
        request_cache=True,
        timeout="10s",
        track_scores=True,
        rest_total_hits_as_int=False,
        human=True,
        preference="_local",
    )
    return hits_summary(body_of(body))


def scan():
    """helpers.scan: a scroll of 3 hits a page, then clear_scroll."""
    hits = list(
        helpers.scan(client, index=index, query={"query": {"match_all": {}}}, size=3, scroll="1m")
    )
    return docs_summary(hits)


def pit():
    """open_point_in_time, search(pit=...) paged with search_after, close_point_in_time."""
    pit_id = body_of(client.open_point_in_time(index=index, keep_alive="1m"))["id"]

    def search(body):
        return body_of(client.search(**body))

    first = {"pit": {"id": pit_id, "keep_alive": "1m"}, "query": {"match_all": {}}}
    hits, pages, last_id = page_through(search, first)
    closed = body_of(client.close_point_in_time(id=last_id))
    return docs_summary(hits) | {
        "ordered_ids": [h.get("_id") for h in hits],
        "pages": pages,
        "closed": closed.get("succeeded"),
    }


r.run_operations(globals())
r.maybe_refusal("refused_get", lambda: client.get(index=env("DENIED_INDEX"), id=env("DENIED_ID")))
r.maybe_refusal(
    "refused_write",
    lambda: client.index(index=env("DENIED_INDEX"), id="new", document={"tenant": "a"}),
)
r.maybe_refusal(
    "refused_delete", lambda: client.delete(index=env("DENIED_INDEX"), id=env("DENIED_ID"))
)
r.maybe_refusal(
    "refused_sql",
    lambda: client.sql.query(query=f'SELECT * FROM "{env("FOREIGN_INDEX")}"'),
)
r.maybe_refusal(
    "refused_token",
    lambda: Elasticsearch(
        url, api_key=(env("REFUSED_ID"), env("REFUSED_SECRET")), max_retries=0
    ).count(index=index),
)
r.maybe_refusal(
    "refused_auth",
    lambda: Elasticsearch(url, basic_auth=("esg_not_a_real_token", "token"), max_retries=0).count(
        index=index
    ),
)
r.finish()
