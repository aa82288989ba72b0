#!/usr/bin/env bash
# Instructions per request of the esgate binary (issue 10), counted by callgrind: repeatable on
# a busy machine, where the wall-clock load tests (`pinned.sh`) are not. esgate runs under
# `valgrind --tool=callgrind` in front of a canned nginx backend; a client sends exactly N
# requests per scenario over one keep-alive connection; the counters are zeroed before and
# dumped after each scenario (`callgrind_control`), so start-up and warm-up are not counted.
# Scenarios: small GET search, 2 KB Kibana-style POST (compact, and spaced as Python's
# `json.dumps` writes it), 200 KB POST (filtered `read` token), a small `_msearch` (one search;
# its answer read whole for a `read` token, review 16), a Grafana-shaped `_msearch` (three
# date histograms, as Grafana's data source sends a panel's queries; a 2.7 KB answer),
# the small GET and the Grafana-shaped `_msearch` asking for gzip (`Accept-Encoding: gzip`, as
# Grafana's Go client sends it; the backend compresses its answer when asked, as an
# Elasticsearch over plain HTTP does by default: `http.compression`), small GET with an `all`
# token (relay), a GET whose answer is 64 KB (200 hits) with and without gzip, and small GET
# over TLS (`read` token; a second esgate
# with `[listen.tls]`, a self-signed RSA 2048 certificate as `pinned.sh` makes; the client's
# TLS 1.3 suite is OpenSSL's first choice, TLS13_AES_256_GCM_SHA384, as wrk's is). Audit to a
# file (AUDIT=off for none).
#
# Needs: valgrind, nginx-light, python3, openssl (and strace for MODE=syscalls). Loopback
# only; stops what it starts.
# Usage: benches/load/instructions.sh [N=300]   (N/10 for the 200 KB POST)
#   KEEP=DIR keeps the callgrind dumps in DIR (for callgrind_annotate).
#   ONLY=WORD[,WORD...] runs only the scenarios whose name holds one of the words (e.g.
#   ONLY=GET,_msearch).
#   ESGATE_BIN=PATH measures that binary (default: target/release/esgate; with NO_BUILD, e.g. a
#   build in another CARGO_TARGET_DIR). LISTEN_EXTRA adds lines to both esgates' [listen]
#   (e.g. LISTEN_EXTRA='max_header_bytes = 262144').
#   MODE=syscalls counts system calls per request instead (esgate runs natively; `strace -c -f`
#   is attached to it, all threads, for each scenario's N requests only), with the most
#   frequent calls per request. Under strace a call that would find nothing to do
#   (EAGAIN) may be counted more or less often than at full speed; compare runs of this mode.
set -euo pipefail
N=${1:-300}
AUDIT=${AUDIT:-file}
MODE=${MODE:-callgrind}
case "$MODE" in callgrind | syscalls) ;; *) echo "MODE must be callgrind or syscalls" >&2; exit 1 ;; esac
# The work dir, its clean-up, the certificate and the small answer: as `pinned.sh`'s (this
# script's own esgate_config, two esgates by name, replaces common.sh's).
# shellcheck source=benches/load/common.sh
. "$(dirname "$0")/common.sh"
load_workdir

[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin esgate
BIN=${ESGATE_BIN:-$ROOT/target/release/esgate}
BPORT=${BPORT:-19700}
DPORT=$((BPORT + 2))
APORT=$((BPORT + 3))
TDPORT=$((BPORT + 4))
TAPORT=$((BPORT + 5))

make_cert

# Grafana's answer (the Grafana-shaped `_msearch`, told by its `max_concurrent_shard_requests`):
# three searches of `size` 0, each a date histogram of ten buckets.
GRAFANA_ANSWER=$(python3 -c '
import json
buckets = [{"key_as_string": str(1704067200000 + i * 86400000), "key": 1704067200000 + i * 86400000, "doc_count": i * 3 % 7} for i in range(10)]
item = {"took": 2, "timed_out": False, "_shards": {"total": 2, "successful": 2, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 27, "relation": "eq"}, "max_score": None, "hits": []},
        "aggregations": {"2": {"buckets": buckets}}, "status": 200}
print(json.dumps({"took": 3, "responses": [item] * 3}, separators=(",", ":")))')
# A larger search answer (about 64 KB: 200 hits), served for `/logs-b/`: what a search's
# gzip answer costs to judge when its first frames are more than its header.
python3 -c '
import json
hits = [{"_index": "logs-b", "_id": "b%d" % i, "_score": 1.0, "_source": {"tenant": "a", "@timestamp": 1704067200000 + i,
         "message": "request %d served in %d ms by worker %d of the front pool" % (i, i * 7 % 300, i % 16), "level": "info"}} for i in range(200)]
print(json.dumps({"took": 4, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                  "hits": {"total": {"value": 200, "relation": "eq"}, "max_score": 1.0, "hits": hits}}, separators=(",", ":")))' > "$WORK/large.json"
cat > "$WORK/backend.conf" <<NGINX
worker_processes 1;
error_log $WORK/backend.err;
pid $WORK/backend.pid;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  client_max_body_size 10m;
  # Answers gzip-compressed when the request asks (as Elasticsearch's http.compression does).
  gzip on;
  gzip_types application/json;
  gzip_min_length 0;
  server {
    listen 127.0.0.1:$BPORT;
    add_header X-Elastic-Product Elasticsearch always;
    location /_resolve/index/ {
      return 200 '{"indices":[{"name":"logs-a","attributes":["open"]},{"name":"logs-b","attributes":["open"]}],"aliases":[],"data_streams":[]}';
    }
    # esgate's field type lookup for a histogram without hard bounds (the 2 KB search's
    # date histogram on @timestamp; upstream::field_types): a real-shaped answer.
    location ~ /_field_caps\$ {
      return 200 '{"indices":["logs-a","logs-b"],"fields":{"@timestamp":{"date":{"type":"date","metadata_field":false,"searchable":true,"aggregatable":true}}}}';
    }
    location ~ _msearch\$ {
      if (\$arg_max_concurrent_shard_requests) { return 200 '$GRAFANA_ANSWER'; }
      return 200 '{"took":1,"responses":[$SMALL_ANSWER]}';
    }
    # The large answer: a file, served for any method (a read token's search is a POST).
    location /logs-b/ { error_page 405 =200 /large.json; return 405; }
    location = /large.json { root $WORK; }
    location / { return 200 '$SMALL_ANSWER'; }
  }
}
NGINX
nginx -c "$WORK/backend.conf" -g 'daemon off;' &
PIDS+=($!)

ADMIN_KEY=instructions-admin-key-0123456789
esgate_config() { # NAME DATA_PORT ADMIN_PORT TLS(yes|no)
  local audit='output = "off"'
  [ "$AUDIT" = file ] && audit="output = \"file\""$'\n'"path = \"$WORK/audit.$1.jsonl\""
  local tls=""
  [ "$4" = yes ] && tls=$'[listen.tls]\ncert_file = "'"$WORK/cert.pem"$'"\nkey_file = "'"$WORK/key.pem"'"'
  cat <<TOML
[listen]
data = "127.0.0.1:$2"
admin = "127.0.0.1:$3"
${LISTEN_EXTRA:-}
$tls
[backend]
urls = ["http://127.0.0.1:$BPORT"]
[store]
path = "$WORK/store.$1"
[admin]
key = "$ADMIN_KEY"
[audit]
$audit
[log]
level = "error"
TOML
}
start_esgate() { # NAME DATA_PORT ADMIN_PORT TLS; sets ESGATE_PID
  esgate_config "$@" > "$WORK/esgate.$1.toml"
  if [ "$MODE" = callgrind ]; then
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$1.%p" --dump-instr=no --compress-strings=no --compress-pos=no \
      "$BIN" serve --config "$WORK/esgate.$1.toml" 2>"$WORK/valgrind.$1.log" &
  else
    "$BIN" serve --config "$WORK/esgate.$1.toml" &
  fi
  ESGATE_PID=$!
  PIDS+=("$ESGATE_PID")
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$3/health" >/dev/null && break; sleep 0.1; done
}
start_esgate plain "$DPORT" "$APORT" no
VG=$ESGATE_PID
start_esgate tls "$TDPORT" "$TAPORT" yes
TVG=$ESGATE_PID

python3 "$ROOT/benches/load/bodies.py" "$WORK"
python3 - "$WORK" "$DPORT" "$APORT" "$ADMIN_KEY" "$N" "$VG" "$TDPORT" "$TAPORT" "$TVG" "$MODE" <<'PY'
import http.client, json, ssl, subprocess, sys, time, glob, os
work, dport, aport, admin, n, vg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
tdport, taport, tvg, mode = int(sys.argv[7]), int(sys.argv[8]), sys.argv[9], sys.argv[10]
tls_context = ssl.create_default_context(cafile=work + "/cert.pem")

def token(fields, port=aport):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("POST", "/tokens", json.dumps(dict(name="i%d" % time.time_ns(), **fields)),
              {"authorization": "Bearer " + admin, "content-type": "application/json"})
    return json.loads(c.getresponse().read())["secret"]

read = token({"indices": ["logs-*"], "filters": [{"field": "tenant", "value": "a"}]})
everything = token({"permissions": ["all"]})
tls_read = token({"indices": ["logs-*"], "filters": [{"field": "tenant", "value": "a"}]}, taport)

post2k = open(work + "/post2k.json", "rb").read()
post200k = open(work + "/post200k.json", "rb").read()
post2k_spaced = open(work + "/post2k-spaced.json", "rb").read()

def connect(tls):
    if tls:
        return http.client.HTTPSConnection("127.0.0.1", tdport, context=tls_context)
    return http.client.HTTPConnection("127.0.0.1", dport)

MSEARCH = b'{}\n{"query":{"match_all":{}}}\n'
# A Grafana panel's refresh as its Elasticsearch data source sends it (tests/data/grafana:
# metric_count_date_histogram, logs_volume): three searches of a date histogram each, the
# header as Go's encoding/json writes it, `max_concurrent_shard_requests=5`, JSON content type.
GRAFANA_HEADER = b'{"ignore_unavailable":true,"index":"logs-*","search_type":"query_then_fetch"}\n'
GRAFANA = b"".join(GRAFANA_HEADER + json.dumps(
    {"aggs": {"2": {"date_histogram": {"extended_bounds": {"max": 1704931199999, "min": 1704067200000},
     "field": "@timestamp", "fixed_interval": interval, "format": "epoch_millis", "min_doc_count": 0}}},
     "query": {"bool": {"filter": [{"range": {"@timestamp": {"format": "epoch_millis", "gte": 1704067200000, "lte": 1704931199999}}}]
                        + ([{"query_string": {"analyze_wildcard": True, "query": q}}] if q else [])}},
     "size": 0}, separators=(",", ":")).encode() + b"\n"
    for interval, q in [("86400000ms", ""), ("3600000ms", "hello AND NOT n:1"), ("3600000ms", "level:error")])

LARGE = object()  # a GET whose answer is the 64 KB one

def run(secret, method, body, count, c, gzip=False):
    headers = {"authorization": "Bearer " + secret}
    if gzip:
        headers["accept-encoding"] = "gzip"
    path = "/logs-a/_search"
    if body is LARGE:
        body = None
        path = "/logs-b/_search"
    if body is MSEARCH:
        headers["content-type"] = "application/x-ndjson"
        path = "/logs-a/_msearch"
    elif body is GRAFANA:
        headers["content-type"] = "application/json"
        path = "/_msearch?max_concurrent_shard_requests=5"
    elif body is not None:
        headers["content-type"] = "application/json"
    for _ in range(count):
        c.request(method, path, body, headers)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit("answer %d for %s" % (r.status, method))
    # How the last answer came (the client asking for gzip gets it or not).
    return r.getheader("content-encoding") or "identity"

def control(flag, pid):
    subprocess.run(["callgrind_control", flag, pid], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def dumped_instructions(name, pid):
    files = sorted(glob.glob(work + "/cg.*.%s" % pid) + glob.glob(work + "/cg.*.%s.*" % pid))
    total = 0
    keep = os.environ.get("KEEP")
    for i, f in enumerate(files):
        for line in open(f):
            if line.startswith("summary:") or line.startswith("totals:"):
                total += int(line.split()[1])
                break
        if keep:
            os.replace(f, os.path.join(keep, "%s.%d.callgrind" % ("".join(ch if ch.isalnum() else "_" for ch in name), i)))
        else:
            os.remove(f)
    return total

class Callgrind:
    header = "| scenario | requests | instructions per request |\n| --- | --- | --- |"
    def start(self, pid):
        control("-z", pid)
    def stop(self, name, pid, count):
        control("-d", pid)
        time.sleep(0.5)
        return "%d" % (dumped_instructions(name, pid) // count)

class Syscalls:
    """`strace -c -f` attached to every thread of esgate for one scenario."""
    header = "| scenario | requests | system calls per request | most frequent, per request |\n| --- | --- | --- | --- |"
    def start(self, pid):
        self.out = work + "/strace.txt"
        self.proc = subprocess.Popen(["strace", "-qq", "-c", "-f", "-o", self.out, "-p", pid])
        # attached to all threads once it traces their calls
        time.sleep(1.0)
    def stop(self, name, pid, count):
        time.sleep(0.2)
        self.proc.send_signal(2)
        self.proc.wait()
        calls = {}
        for line in open(self.out):
            f = line.split()
            if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                calls[f[-1]] = int(f[3])
        os.remove(self.out)
        total = sum(calls.values())
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
        return "%.2f | %s" % (total / count, ", ".join("%s %.2f" % (k, v / count) for k, v in top))

meter = Callgrind() if mode == "callgrind" else Syscalls()

# The last field: the client asks for gzip.
scenarios = [
    ("small GET, read token", read, "GET", None, n, False),
    ("small GET, gzip asked, read token", read, "GET", None, n, False, True),
    ("2 KB POST, read token", read, "POST", post2k, n, False),
    ("2 KB POST spaced (not compact), read token", read, "POST", post2k_spaced, n, False),
    ("200 KB POST, read token", read, "POST", post200k, max(n // 10, 1), False),
    ("small _msearch (one search), read token", read, "POST", MSEARCH, n, False),
    ("Grafana _msearch (three date histograms), read token", read, "POST", GRAFANA, n, False),
    ("Grafana _msearch, gzip asked, read token", read, "POST", GRAFANA, n, False, True),
    ("GET, 64 KB answer, read token", read, "GET", LARGE, n, False),
    ("GET, 64 KB answer, gzip asked, read token", read, "GET", LARGE, n, False, True),
    ("small GET, all token (relay)", everything, "GET", None, n, False),
    ("small GET over TLS, read token", tls_read, "GET", None, n, True),
]
# ONLY=WORD[,WORD...]: the scenarios whose name holds one of the words (e.g. ONLY=GET,_msearch).
only = [w for w in os.environ.get("ONLY", "").split(",") if w]
if only:
    scenarios = [s for s in scenarios if any(w in s[0] for w in only)]
scenarios = [s if len(s) == 7 else s + (False,) for s in scenarios]
for _, secret, method, body, count, tls, gzip in scenarios:
    c = connect(tls)
    run(secret, method, body, 20, c, gzip)  # warm-up: pools, caches, resolutions
    c.close()
print(meter.header)
for name, secret, method, body, count, tls, gzip in scenarios:
    pid = tvg if tls else vg
    c = connect(tls)
    if tls:
        # The handshake (an RSA signature) is made before counting: it is paid once per
        # connection, and the load tests keep their connections.
        run(secret, method, body, 1, c, gzip)
    time.sleep(0.2)
    meter.start(pid)
    came = run(secret, method, body, count, c, gzip)
    c.close()
    if gzip:
        name += " (answered %s)" % came
    print("| %s | %d | %s |" % (name, count, meter.stop(name, pid, count)))
# idle: what the background threads cost per second (audit writer, timers)
meter.start(vg)
time.sleep(2)
print("| (idle, per second) | - | %s |" % meter.stop("idle", vg, 2))
PY
