#!/usr/bin/env bash
# What HTTP/1.1 floods make esgate hold (rel21b; BENCHMARKS.md "Session 21: HTTP/1 memory"):
# for each row, a fresh esgate (ESGATE_BIN, default target/release/esgate) in front of a canned
# nginx backend, a `read` token with a filter, then `h1_flood.py` with the row's arguments; the
# peak resident memory (`VmHWM`) is read when the flood's sends are done and its HOLD is over,
# and printed above the idle esgate's resident memory (after the token was made).
#
# Usage: benches/load/h1_memory.sh 'NAME|MODE|SECRET|N|BYTES|CHUNK|GAP|ANNOUNCED|PATH|HOLD' ...
#   SECRET: `read` (the token's secret) or `-` (no credential). LISTEN_EXTRA adds lines to
#   [listen] (e.g. 'max_buffered_bytes = 67108864'). Needs nginx, python3, curl; raises the
#   open-files limit to its hard limit (10,000 connections need 11,280 in esgate).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${ESGATE_BIN:-$ROOT/target/release/esgate}
BPORT=${BPORT:-21700}
DPORT=$((BPORT + 2))
APORT=$((BPORT + 3))
WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
pid=
cleanup() {
  for p in "${PIDS[@]}" $pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

SMALL='{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"total":{"value":1,"relation":"eq"},"max_score":1.0,"hits":[]}}'
python3 - "$WORK/big.json" <<'PY'
import sys
hit = '{"_index":"logs-a","_id":"a%d","_score":1.0,"_source":{"tenant":"a","message":"%s"}}'
hits = ",".join(hit % (i, "m" * 300) for i in range(12000))
open(sys.argv[1], "w").write('{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"total":{"value":12000,"relation":"eq"},"max_score":1.0,"hits":[%s]}}' % hits)
PY
cat > "$WORK/backend.conf" <<NGINX
worker_processes 1;
error_log $WORK/backend.err;
pid $WORK/backend.pid;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  client_max_body_size 100m;
  server {
    listen 127.0.0.1:$BPORT;
    add_header X-Elastic-Product Elasticsearch always;
    location /_resolve/index/ {
      return 200 '{"indices":[{"name":"logs-a","attributes":["open"]},{"name":"logs-big","attributes":["open"]}],"aliases":[],"data_streams":[]}';
    }
    # POST too (a filtered token's search goes with a body): static files answer 405 to it.
    location = /logs-big/_search { error_page 405 =200 /big.json; alias $WORK/big.json; }
    location = /big.json { root $WORK; }
    location / { return 200 '$SMALL'; }
  }
}
NGINX
nginx -c "$WORK/backend.conf" -g 'daemon off;' &
PIDS+=($!)

ADMIN_KEY=h1-memory-admin-key-0123456789
n=0
for row in "$@"; do
  n=$((n + 1))
  IFS='|' read -r name mode secret conns bytes chunk gap announced path hold <<<"$row"
  cat > "$WORK/esgate.toml" <<TOML
[listen]
data = "127.0.0.1:$DPORT"
admin = "127.0.0.1:$APORT"
${LISTEN_EXTRA:-}
[backend]
urls = ["http://127.0.0.1:$BPORT"]
[store]
path = "$WORK/store.$n"
[admin]
key = "$ADMIN_KEY"
[audit]
output = "off"
[log]
level = "error"
TOML
  "$BIN" serve --config "$WORK/esgate.toml" 2>"$WORK/esgate.err" &
  pid=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$APORT/health" >/dev/null && break; sleep 0.1; done
  read_secret=$(curl -sf -X POST "http://127.0.0.1:$APORT/tokens" -H "authorization: Bearer $ADMIN_KEY" \
    -H 'content-type: application/json' \
    -d '{"name":"flood","indices":["logs-*"],"filters":[{"field":"tenant","value":"a"}]}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
  # One request of each kind first, so the idle figure counts the first-request allocations.
  curl -s -o /dev/null -H "authorization: Bearer $read_secret" "http://127.0.0.1:$DPORT/logs-a/_search"
  sleep 0.5
  idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  [ "$secret" = read ] && secret=$read_secret
  out=$(python3 "$ROOT/benches/load/h1_flood.py" "$mode" "$DPORT" "$secret" "$conns" "$bytes" "$chunk" "$gap" "$announced" "$path" "$hold" | tr '\n' ';')
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  printf '| %s | %d MiB | %d MiB | %s |\n' "$name" $(((peak - idle) / 1024)) $((idle / 1024)) "$out"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
  : "$rss"
done
