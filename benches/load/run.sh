#!/usr/bin/env bash
# End-to-end load comparison on loopback (not run in CI; needs wrk and nginx:
# `apt-get install wrk nginx-light`). Three ways to reach the same fake backend (nginx serving
# canned Elasticsearch answers, so the backend is never the bottleneck):
#   direct   wrk -> backend
#   nginx    wrk -> nginx with auth_basic (the yardstick: "as fast as nginx doing basic auth")
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
printf 'user:%s\n' "$(openssl passwd -apr1 secret)" > "$WORK/htpasswd"
chmod 644 "$WORK/htpasswd"
cat > "$WORK/auth.conf" <<NGINX
worker_processes 1;
error_log $WORK/auth.err;
pid $WORK/auth.pid;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:19500; keepalive 64; }
  server {
    listen 127.0.0.1:19501;
    location / {
      auth_basic "es";
      auth_basic_user_file $WORK/htpasswd;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_pass http://backend;
    }
  }
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
"$BIN" serve --config "$WORK/esgate.toml" &
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
  printf '%-8s ' "$1"
  wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$WORK/$1.lua" "$2" \
    | awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
           END {printf "%10s req/s   p50 %8s   p99 %8s   non-2xx %s\n", rps, p50, p99, (bad==""?0:bad)}'
}
for u in "19500 " "19501 Basic $(printf user:secret | base64)" "19502 Bearer $SECRET"; do set -- $u; curl -s -o /dev/null -w "check $1: %{http_code}\n" -X POST -H "content-type: application/json" ${2:+-H "authorization: $2 $3"} -d "$BODY" "http://127.0.0.1:$1/logs-*/_search"; done
echo "loopback, ${SECS}s, ${CONNS} connections, 1 wrk thread; search body of ${#BODY} bytes"
run direct "http://127.0.0.1:19500/logs-*/_search" ""
run nginx  "http://127.0.0.1:19501/logs-*/_search" "Basic $(printf 'user:secret' | base64)"
run esgate "http://127.0.0.1:19502/logs-*/_search" "Bearer $SECRET"
