#!/usr/bin/env bash
# Instructions per request of the esgate binary (issue 10), counted by callgrind: repeatable on
# a busy machine, where the wall-clock load tests (`pinned.sh`) are not. esgate runs under
# `valgrind --tool=callgrind` in front of a canned nginx backend; a client sends exactly N
# requests per scenario over one keep-alive connection; the counters are zeroed before and
# dumped after each scenario (`callgrind_control`), so start-up and warm-up are not counted.
# Scenarios: small GET search, 2 KB Kibana-style POST (compact, and spaced as Python's
# `json.dumps` writes it), 200 KB POST (filtered `read` token),
# small GET with an `all` token (relay). Audit to a file (AUDIT=off for none).
#
# Needs: valgrind, nginx-light, python3. Loopback only; stops what it starts.
# Usage: benches/load/instructions.sh [N=300]   (N/10 for the 200 KB POST)
#   KEEP=DIR keeps the callgrind dumps in DIR (for callgrind_annotate).
set -euo pipefail
N=${1:-300}
AUDIT=${AUDIT:-file}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin esgate
BIN="$ROOT/target/release/esgate"
BPORT=${BPORT:-19700}
DPORT=$((BPORT + 2))
APORT=$((BPORT + 3))

SMALL_ANSWER='{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"total":{"value":1,"relation":"eq"},"max_score":1.0,"hits":[{"_index":"logs-a","_id":"a1","_score":1.0,"_source":{"tenant":"a","message":"hello"}}]}}'
cat > "$WORK/backend.conf" <<NGINX
worker_processes 1;
error_log $WORK/backend.err;
pid $WORK/backend.pid;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  client_max_body_size 10m;
  server {
    listen 127.0.0.1:$BPORT;
    add_header X-Elastic-Product Elasticsearch always;
    location /_resolve/index/ {
      return 200 '{"indices":[{"name":"logs-a","attributes":["open"]},{"name":"logs-b","attributes":["open"]}],"aliases":[],"data_streams":[]}';
    }
    location / { return 200 '$SMALL_ANSWER'; }
  }
}
NGINX
nginx -c "$WORK/backend.conf" -g 'daemon off;' &
PIDS+=($!)

ADMIN_KEY=instructions-admin-key-0123456789
audit='output = "off"'
[ "$AUDIT" = file ] && audit="output = \"file\""$'\n'"path = \"$WORK/audit.jsonl\""
cat > "$WORK/esgate.toml" <<TOML
[listen]
data = "127.0.0.1:$DPORT"
admin = "127.0.0.1:$APORT"
[backend]
urls = ["http://127.0.0.1:$BPORT"]
[store]
path = "$WORK/store"
[admin]
key = "$ADMIN_KEY"
[audit]
$audit
[log]
level = "error"
TOML
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" --dump-instr=no --compress-strings=no --compress-pos=no \
  "$BIN" serve --config "$WORK/esgate.toml" 2>"$WORK/valgrind.log" &
VG=$!
PIDS+=($VG)
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$APORT/health" >/dev/null && break; sleep 0.1; done

python3 "$ROOT/benches/load/bodies.py" "$WORK"
python3 - "$WORK" "$DPORT" "$APORT" "$ADMIN_KEY" "$N" "$VG" <<'PY'
import http.client, json, subprocess, sys, time, glob, os
work, dport, aport, admin, n, vg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]

def token(fields):
    c = http.client.HTTPConnection("127.0.0.1", aport)
    c.request("POST", "/tokens", json.dumps(dict(name="i%d" % time.time_ns(), **fields)),
              {"authorization": "Bearer " + admin, "content-type": "application/json"})
    return json.loads(c.getresponse().read())["secret"]

read = token({"indices": ["logs-*"], "filters": [{"field": "tenant", "value": "a"}]})
everything = token({"permissions": ["all"]})

post2k = open(work + "/post2k.json", "rb").read()
post200k = open(work + "/post200k.json", "rb").read()
post2k_spaced = open(work + "/post2k-spaced.json", "rb").read()

def run(secret, method, body, count):
    c = http.client.HTTPConnection("127.0.0.1", dport)
    headers = {"authorization": "Bearer " + secret}
    if body is not None:
        headers["content-type"] = "application/json"
    for _ in range(count):
        c.request(method, "/logs-a/_search", body, headers)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit("answer %d for %s" % (r.status, method))
    c.close()

def control(flag):
    subprocess.run(["callgrind_control", flag, vg], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def dumped_instructions(name):
    files = sorted(f for f in glob.glob(work + "/cg.*") if not f.endswith(".log"))
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

scenarios = [
    ("small GET, read token", read, "GET", None, n),
    ("2 KB POST, read token", read, "POST", post2k, n),
    ("2 KB POST spaced (not compact), read token", read, "POST", post2k_spaced, n),
    ("200 KB POST, read token", read, "POST", post200k, max(n // 10, 1)),
    ("small GET, all token (relay)", everything, "GET", None, n),
]
for _, secret, method, body, count in scenarios:
    run(secret, method, body, 20)  # warm-up: pools, caches, resolutions
print("| scenario | requests | instructions per request |")
print("| --- | --- | --- |")
for name, secret, method, body, count in scenarios:
    time.sleep(0.2)
    control("-z")
    run(secret, method, body, count)
    control("-d")
    time.sleep(0.5)
    total = dumped_instructions(name)
    print("| %s | %d | %d |" % (name, count, total // count))
# idle: what the background threads cost per second (audit writer, timers)
control("-z")
time.sleep(2)
control("-d")
time.sleep(0.5)
print("| (idle, per second) | - | %d |" % (dumped_instructions("idle") // 2))
PY
