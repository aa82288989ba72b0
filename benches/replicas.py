#!/usr/bin/env python3
"""Several replicas on one cluster store (issue #12): propagation delay, memory, poll cost.

Usage: python3 benches/replicas.py [path/to/esgate] [tokens]
(default target/debug/esgate, 100000 tokens). Needs osmem-server in the test cache
(~/.cache/esgate-tests, installed by scripts/install-test-backends.sh).

Measures, on one osmem backend:
- the change poll's cost when nothing changes: latency of what an idle replica sends per poll
  (one GET of the counter document), and of the poll search that runs when the counter moved,
  with an empty store and with `tokens` tokens;
- per-replica memory (VmRSS after start) with an empty store and with `tokens` tokens, and the
  start-up (full load) time;
- propagation: a token created through replica A, time until replica B authenticates it
  (poll_interval 500ms), p50 and max over 30 tokens.
Prints a Markdown table for BENCHMARKS.md.
"""

import glob
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ADMIN_KEY = "bench-admin-key-0123456789"
INDEX = ".esgate-bench"


def http(method, url, body=None, headers=None, ctype="application/json"):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start_osmem():
    [binary] = glob.glob(os.path.expanduser(
        "~/.cache/esgate-tests/osmem-server-*/lib/python*/site-packages/osmem_server/bin/osmem-server"))
    p = subprocess.Popen([binary, "--addr", "127.0.0.1:0", "--no-ja"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = json.loads(p.stdout.readline())["url"]
    return p, url


def config(dir, backend):
    path = os.path.join(dir, "esgate.toml")
    with open(path, "w") as f:
        f.write(f'[backend]\nurls = ["{backend}"]\n\n[store]\npath = "{dir}/data"\nkind = "elasticsearch"\n'
                f'index = "{INDEX}"\npoll_interval = "500ms"\n\n[admin]\nkey = "{ADMIN_KEY}"\n\n'
                f'[auth]\nmax_failures = 1000000\n\n[audit]\noutput = "off"\n\n[log]\nlevel = "info"\n')
    return path


def serve(esgate, cfg):
    started = time.monotonic()
    p = subprocess.Popen([esgate, "serve", "--config", cfg, "--listen", "127.0.0.1:0",
                          "--admin-listen", "127.0.0.1:0"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    seen = []
    for line in p.stderr:
        seen.append(line)
        m = re.search(r"esgate is serving data=(\S+) admin=(\S+)", line)
        if "Loaded the token store" in line:
            print("#", line.strip()[-160:], file=sys.stderr)
        if m:
            return p, f"http://{m.group(1)}", f"http://{m.group(2)}", time.monotonic() - started
    raise SystemExit("esgate did not start:\n" + "".join(seen))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def poll_cost(backend, n=200):
    """What an idle replica sends each poll: one GET of the counter document."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = http("GET", f"{backend}/{INDEX}/_doc/counter")
        times.append(time.perf_counter() - t)
        assert status == 200
    return statistics.median(times) * 1000


def search_cost(backend, n=200):
    """The poll search (new records above the highest seen: 0 hits), sent when the counter moved."""
    body = {"query": {"bool": {"filter": [{"range": {"seq": {"gt": 10**12}}}],
                               "must_not": [{"terms": {"kind": ["counter", "id_key"]}}]}},
            "sort": [{"seq": "asc"}, {"key": "asc"}], "size": 1000, "seq_no_primary_term": True,
            "track_total_hits": False}
    times = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = http("POST", f"{backend}/{INDEX}/_search", body)
        times.append(time.perf_counter() - t)
        assert status == 200
    return statistics.median(times) * 1000


def export_of(n):
    changes = []
    for i in range(n):
        changes.append({"op": "put_token", "token": {
            "id": f"tok_bench{i:08d}", "name": f"bench {i}", "secret_hash": secrets.token_hex(32),
            "filters": [{"inline": {"field": "tenant", "value": f"t{i % 1000}"}}],
            "indices": ["logs-*"], "permissions": ["read"], "created_at": 1_700_000_000,
            "expires_at": None, "ip_filter": None}})
    return json.dumps({"esgate_store_export": 1, "changes": changes})


def main():
    esgate = sys.argv[1] if len(sys.argv) > 1 else "target/debug/esgate"
    tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    osmem, backend = start_osmem()
    procs = []
    try:
        with tempfile.TemporaryDirectory() as dir:
            cfg = config(dir, backend)
            http("PUT", f"{backend}/logs-b/_doc/1?refresh=true", {"tenant": "t1"})
            a, a_data, a_admin, _ = serve(esgate, cfg)
            procs.append(a)
            time.sleep(1)
            empty_rss = rss_mib(a.pid)
            empty_poll = poll_cost(backend)
            empty_search = search_cost(backend)
            a.kill()
            a.wait()
            t = time.monotonic()
            r = subprocess.run([esgate, "store", "import", "--config", cfg], input=export_of(tokens),
                               text=True, capture_output=True)
            assert r.returncode == 0, r.stderr
            import_s = time.monotonic() - t
            full_poll = poll_cost(backend)
            full_search = search_cost(backend)
            a, a_data, a_admin, a_start = serve(esgate, cfg)
            b, b_data, b_admin, b_start = serve(esgate, cfg)
            procs += [a, b]
            time.sleep(1)
            full_rss = (rss_mib(a.pid) + rss_mib(b.pid)) / 2
            delays = []
            for i in range(30):
                status, body = http("POST", f"{a_admin}/tokens",
                                    {"name": f"p{i}", "indices": ["logs-*"],
                                     "filters": [{"field": "tenant", "value": "t1"}]},
                                    {"Authorization": f"Bearer {ADMIN_KEY}"})
                assert status == 201, body
                secret = json.loads(body)["secret"]
                t = time.perf_counter()
                while http("GET", f"{b_data}/logs-b/_search",
                           headers={"Authorization": f"Bearer {secret}"})[0] != 200:
                    time.sleep(0.005)
                delays.append((time.perf_counter() - t) * 1000)
                time.sleep(0.137 * (i % 4))
            delays.sort()
            print(f"| tokens in the store | {tokens} |")
            print(f"| propagation A -> B, p50 / max (30 tokens, poll 500ms) | {statistics.median(delays):.0f} ms / {max(delays):.0f} ms |")
            print(f"| replica RSS, empty store / {tokens} tokens | {empty_rss:.1f} MiB / {full_rss:.1f} MiB |")
            print(f"| replica start-up (full load) with {tokens} tokens | {max(a_start, b_start):.2f} s |")
            print(f"| `store import` of {tokens} tokens | {import_s:.1f} s |")
            print(f"| idle poll (GET of the counter document), median, empty / {tokens} tokens | {empty_poll:.2f} ms / {full_poll:.2f} ms |")
            print(f"| poll search with 0 new records, median, empty / {tokens} tokens | {empty_search:.2f} ms / {full_search:.2f} ms |")
    finally:
        for p in procs:
            p.kill()
        osmem.stdin.close()
        osmem.wait()


if __name__ == "__main__":
    main()
