"""Shared by the client scripts in this directory (run by tests/it/clients.rs through
tests/it/support/python.rs): reads the environment, runs named operations, prints one JSON line per
operation, and turns the exit status into "did anything unexpected happen".

Environment: ESGATE_URL, TOKEN_ID, TOKEN_SECRET, AUTH (basic | apikey), COMPRESS (1 | 0),
INDEX (the pattern the token may read, e.g. logs-*), DENIED_INDEX and DENIED_ID (a document the
token must not read, for the refusal case), INDEX_LIST (comma-separated concrete indices the
token may read), FOREIGN_INDEX (an index outside the token's patterns, for refused_sql),
REFUSED_ID and REFUSED_SECRET (a revoked or expired token, for refused_token),
OPS (optional: comma-separated operations to run;
all of them when unset).

Every line is a JSON object with "op". An operation that raises prints
{"op": ..., "unexpected": <exception class>, "status": ..., "detail": ...} and makes the script
exit 1 after the remaining operations have run, so one failure does not hide the others.
"""

import json
import os
import sys
import traceback


def env(name):
    value = os.environ.get(name)
    if not value:
        print(f"missing environment variable {name}", file=sys.stderr)
        sys.exit(2)
    return value


def emit(obj):
    print(json.dumps(obj, sort_keys=True, default=str), flush=True)


def body_of(resp):
    """The plain JSON body of a client response (ObjectApiResponse in elasticsearch-py 8/9,
    a dict in opensearch-py)."""
    return resp.body if hasattr(resp, "body") else resp


def status_of(exc):
    for attr in ("status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    meta = getattr(exc, "meta", None)
    return getattr(meta, "status", None)


def error_info(exc):
    """(error type, reason) from an ApiError / TransportError, whatever the client calls them."""
    info = getattr(exc, "body", None)
    if info is None:
        info = getattr(exc, "info", None)
    if isinstance(info, dict):
        err = info.get("error")
        if isinstance(err, dict):
            return err.get("type"), err.get("reason")
        return None, err
    return None, str(info) if info is not None else None


def hits_summary(body):
    hits = body.get("hits", {})
    total = hits.get("total")
    if isinstance(total, dict):
        total = total.get("value")
    docs = hits.get("hits", [])
    return {
        "total": total,
        "ids": sorted(h.get("_id") for h in docs),
        "indices": sorted({h.get("_index") for h in docs}),
        "tenants": sorted({(h.get("_source") or {}).get("tenant") for h in docs}),
        "raw": json.dumps(body, default=str),
    }


def docs_summary(hits):
    """hits_summary for a list of hits gathered over several pages (scan, point in time)."""
    return {
        "total": len(hits),
        "ids": sorted(h.get("_id") for h in hits),
        "indices": sorted({h.get("_index") for h in hits}),
        "tenants": sorted({(h.get("_source") or {}).get("tenant") for h in hits}),
        "raw": json.dumps(hits, default=str),
    }


def page_through(search, first_body, size=3, max_pages=20):
    """Pages a point in time with search_after, sorted by n: search(body) -> response.
    Returns (hits in order, pages with hits, the last pit id the backend returned)."""
    hits, pages, after, pit_id = [], 0, None, first_body["pit"]["id"]
    while pages < max_pages:
        body = dict(first_body, size=size, sort=[{"n": "asc"}])
        body["pit"] = dict(first_body["pit"], id=pit_id)
        if after is not None:
            body["search_after"] = after
        resp = search(body)
        page = resp.get("hits", {}).get("hits", [])
        pit_id = resp.get("pit_id", pit_id)
        if not page:
            break
        pages += 1
        hits.extend(page)
        after = page[-1].get("sort")
    return hits, pages, pit_id


def agg_summary(body):
    aggs = body.get("aggregations", {})
    hits = hits_summary(body)
    return {
        "total": hits["total"],
        "hit_count": len(hits["ids"]),
        "users": [
            [b.get("key"), b.get("doc_count")] for b in aggs.get("users", {}).get("buckets", [])
        ],
        "sum_n": aggs.get("sum_n", {}).get("value"),
        "raw": json.dumps(body, default=str),
    }


def ordered_hits(body):
    """Hits in the order returned, with the source keys each carried."""
    hits = body.get("hits", {})
    total = hits.get("total")
    if isinstance(total, dict):
        total = total.get("value")
    docs = hits.get("hits", [])
    return {
        "total": total,
        "ids": [h.get("_id") for h in docs],
        "source_keys": sorted({k for h in docs for k in (h.get("_source") or {})}),
        "raw": json.dumps(body, default=str),
    }


def resolved_summary(body):
    """Names from a _resolve/index answer, by kind."""
    return {
        kind: sorted(item.get("name") for item in body.get(kind, []))
        for kind in ("indices", "aliases", "data_streams")
    } | {"raw": json.dumps(body, default=str)}


# The operations every client script defines, each a function of that name returning its
# summary, in the order they run (`Runner.run_operations`).
OPERATIONS = (
    "info",
    "count",
    "count_query",
    "search",
    "search_other_tenant",
    "msearch",
    "field_caps",
    "aggs",
    "search_params",
    "search_common_params",
    "ping",
    "count_no_index",
    "search_no_index",
    "search_index_list",
    "search_lenient",
    "search_q",
    "opaque_id",
    "get_mapping",
    "resolve_index",
    "cluster_health",
    "scan",
    "pit",
)


class Runner:
    def __init__(self):
        self.failed = False
        ops = os.environ.get("OPS", "")
        self.only = {op for op in ops.split(",") if op} or None

    def wanted(self, name):
        return self.only is None or name in self.only

    def maybe_run(self, name, fn):
        if self.wanted(name):
            self.run(name, fn)

    def run_operations(self, scope):
        """`maybe_run` of each of OPERATIONS: the function of that name in `scope` (a client
        script's `globals()`)."""
        for name in OPERATIONS:
            self.maybe_run(name, scope[name])

    def maybe_refusal(self, name, fn):
        if self.wanted(name):
            self.refusal(name, fn)

    def run(self, name, fn):
        try:
            result = fn()
            result["op"] = name
            emit(result)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then exit 1
            self.failed = True
            etype, reason = error_info(exc)
            emit(
                {
                    "op": name,
                    "unexpected": type(exc).__name__,
                    "status": status_of(exc),
                    "error_type": etype,
                    "reason": reason,
                    "detail": str(exc)[:2000],
                }
            )
            traceback.print_exc(file=sys.stderr)

    def refusal(self, name, fn):
        """Runs an operation that must be refused; prints what the user sees. Success is the
        unexpected outcome here."""
        try:
            resp = fn()
            self.failed = True
            emit({"op": name, "unexpected": "no exception", "body": body_of(resp)})
        except Exception as exc:  # noqa: BLE001 - the refusal is the point
            etype, reason = error_info(exc)
            emit(
                {
                    "op": name,
                    "exception": type(exc).__name__,
                    "status": status_of(exc),
                    "error_type": etype,
                    "reason": reason,
                    "message": str(exc)[:2000],
                }
            )

    def finish(self):
        sys.exit(1 if self.failed else 0)
