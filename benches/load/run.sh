#!/usr/bin/env bash
# End-to-end load comparison on loopback (not run in CI; needs wrk and nginx:
# `apt-get install wrk nginx-light`). Three ways to reach the same fake backend (nginx serving
# canned Elasticsearch answers, so the backend is never the bottleneck):
#   direct   wrk -> backend
#   nginx    wrk -> nginx with auth_basic (the yardstick: "as fast as nginx doing basic auth"),
#            with an htpasswd's default apr1 hash and with a {PLAIN} password (nginx's cheapest)
#   esgate   wrk -> esgate (authenticate a Bearer token, classify, rewrite the search body with
#            the token's filter, resolve indices (cached), forward) -> backend
# Usage: benches/load/run.sh [seconds] [connections]
set -euo pipefail
SECS=${1:-10}
CONNS=${2:-32}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
chmod 755 "$WORK" # nginx workers (www-data) read the htpasswd file
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/esgate"

# The fake backend: canned answers for what esgate asks.
cat > "$WORK/backend.conf" <<NGINX
worker_processes 1;
error_log $WORK/backend.err;
pid $WORK/backend.pid;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  server {
    listen 127.0.0.1:19500;
    add_header X-Elastic-Product Elasticsearch always;
    location /_resolve/index/ {
      return 200 '{"indices":[{"name":"logs-a","attributes":["open"]},{"name":"logs-b","attributes":["open"]}],"aliases":[],"data_streams":[]}';
    }
    location / {
      return 200 '{"took":1,"timed_out":false,"_shards":{"total":2,"successful":2,"skipped":0,"failed":0},"hits":{"total":{"value":1,"relation":"eq"},"max_score":1.0,"hits":[{"_index":"logs-a","_id":"a1","_score":1.0,"_source":{"tenant":"a","message":"hello"}}]}}';
    }
  }
}
NGINX

# nginx with basic auth in front of the same backend.
printf 'user:%s\n' "$(openssl passwd -apr1 secret)" > "$WORK/htpasswd"       # htpasswd's default
printf 'user:{PLAIN}secret\n' > "$WORK/htpasswd-plain"                           # nginx's cheapest
chmod 644 "$WORK/htpasswd" "$WORK/htpasswd-plain"
auth_server() { # port htpasswd-file
  cat <<NGINX
  server {
    listen 127.0.0.1:$1;
    location / {
      auth_basic "es";
      auth_basic_user_file $2;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_pass http://backend;
    }
  }
NGINX
}
cat > "$WORK/auth.conf" <<NGINX
worker_processes 1;
error_log $WORK/auth.err;
pid $WORK/auth.pid;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:19500; keepalive 64; }
$(auth_server 19501 "$WORK/htpasswd")
$(auth_server 19504 "$WORK/htpasswd-plain")
}
NGINX
nginx -c "$WORK/backend.conf" -g 'daemon off;' &
nginx -c "$WORK/auth.conf" -g 'daemon off;' &

export ESGATE_ADMIN_KEY=load-test-admin-key-0123456789
cat > "$WORK/esgate.toml" <<TOML
[listen]
data = "127.0.0.1:19502"
admin = "127.0.0.1:19503"
[backend]
urls = ["http://127.0.0.1:19500"]
[store]
path = "$WORK/store"
[audit]
output = "off"
[log]
level = "warn"
TOML
# ESGATE_PERF=FILE records a CPU profile of esgate while the load runs (perf report -i FILE).
if [ -n "${ESGATE_PERF:-}" ]; then
  perf record -q -F 1999 -e cpu-clock -o "$ESGATE_PERF" -- "$BIN" serve --config "$WORK/esgate.toml" &
else
  "$BIN" serve --config "$WORK/esgate.toml" &
fi
for _ in $(seq 50); do curl -sf http://127.0.0.1:19503/health >/dev/null && break; sleep 0.1; done
SECRET=$(curl -sf -X POST http://127.0.0.1:19503/tokens \
  -H "authorization: Bearer $ESGATE_ADMIN_KEY" -H 'content-type: application/json' \
  -d '{"name":"load","indices":["logs-*"],"filters":[{"field":"tenant","value":"a"}]}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')

BODY='{"query":{"bool":{"filter":[{"range":{"@timestamp":{"gte":"now-1d"}}}],"must":[{"match":{"message":"hello"}}]}},"size":10,"sort":[{"@timestamp":"desc"}],"aggs":{"users":{"terms":{"field":"user"}}}}'
lua() { # $1 = authorization header value or empty
  cat <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["content-type"] = "application/json"
$( [ -n "$1" ] && echo "wrk.headers[\"authorization\"] = \"$1\"" )
LUA
}
run() { # name url auth
  lua "$3" > "$WORK/$1.lua"
  printf '%-12s ' "$1"
  wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$WORK/$1.lua" "$2" \
    | awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
           END {printf "%10s req/s   p50 %8s   p99 %8s   non-2xx %s\n", rps, p50, p99, (bad==""?0:bad)}'
}
BASIC="Basic $(printf user:secret | base64)"
for port in 19501 19504; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -H "authorization: $BASIC" -d "$BODY" "http://127.0.0.1:$port/logs-*/_search")
  [ "$code" = 200 ] || { echo "nginx on $port answers $code" >&2; exit 1; }
done
echo "loopback, ${SECS}s, ${CONNS} connections, 1 wrk thread; search body of ${#BODY} bytes"
run direct "http://127.0.0.1:19500/logs-*/_search" ""
run nginx-apr1  "http://127.0.0.1:19501/logs-*/_search" "$BASIC"
run nginx-plain "http://127.0.0.1:19504/logs-*/_search" "$BASIC"
run esgate "http://127.0.0.1:19502/logs-*/_search" "Bearer $SECRET"
