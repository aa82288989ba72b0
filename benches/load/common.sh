# shellcheck shell=bash
# The set-up that the pinned-layout load scripts (`pinned.sh`, `kernel.sh`) share, sourced by
# them: not run on its own. Each script keeps its own scenarios, backend locations and extras.
# (`instructions.sh` takes only the work dir, the certificate and the small answer.)
#
#   load_workdir          the work dir ($WORK), removed on exit with every process in $PIDS
#   load_init BASE_PORT   load_workdir, the ports (below) and the esgate binary ($BIN:
#                         ESGATE_BIN, or this tree's release build)
#   make_cert             a self-signed certificate for 127.0.0.1: $WORK/cert.pem, key.pem
#   start_backend INDICES [LOCATIONS]
#                         the canned nginx backend on CPU 1 at BACKEND_PORT: `_resolve/index`
#                         names INDICES (space-separated), `_field_caps` describes
#                         `@timestamp` as a date in them, LOCATIONS are the script's own
#                         nginx lines; any other path answers $SMALL_ANSWER
#   write_auth_conf [SERVER_LINES]
#                         nginx + auth_basic ({PLAIN}, user:secret = $BASIC) at NGINX_PORT in
#                         front of the backend; SERVER_LINES added to its server block. Two
#                         configurations: `access_log off` (auth.conf), and its access log to a
#                         file as nginx's default configuration writes it (auth-log.conf:
#                         $WORK/nginx-access.log, the `combined` format, no `buffer=`: a write
#                         a request)
#   esgate_config AUDIT(off|file) [TLS(yes|no)]     esgate's configuration, on stdout
#   start_proxy nginx [log] | esgate AUDIT [TLS]; stop_proxy
#                         the proxy under test on CPU 0 ($PROXY_PID); `nginx log`: with its
#                         access log to a file (auth-log.conf)
#   token FIELDS-JSON     a new token's secret (esgate running)
#   lua_for METHOD BODYFILE AUTHORIZATION                 wrk's request script, $WORK/req.lua
#
# Ports from BASE: BACKEND_PORT = BASE (the canned backend), NGINX_PORT = BASE + 1 (nginx +
# auth_basic), DATA_PORT = BASE + 2 and ADMIN_PORT = BASE + 3 (esgate). Loopback only.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SMALL_ANSWER='{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"total":{"value":1,"relation":"eq"},"max_score":1.0,"hits":[{"_index":"logs-a","_id":"a1","_score":1.0,"_source":{"tenant":"a","message":"hello"}}]}}'
ADMIN_KEY=load-test-admin-key-0123456789
# shellcheck disable=SC2034 # used by the scripts that source this file
BASIC="Basic $(printf user:secret | base64)"
PIDS=()
PROXY_PID=""

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

load_workdir() {
  WORK=$(mktemp -d)
  chmod 755 "$WORK"
  trap cleanup EXIT
}

load_init() { # BASE_PORT
  BACKEND_PORT=$1
  NGINX_PORT=$(($1 + 1))
  DATA_PORT=$(($1 + 2))
  ADMIN_PORT=$(($1 + 3))
  load_workdir
  if [ -n "${ESGATE_BIN:-}" ]; then
    BIN=$ESGATE_BIN
  else
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin esgate
    BIN="$ROOT/target/release/esgate"
  fi
}

make_cert() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
}

start_backend() { # INDICES [LOCATIONS]
  local indices="" names="" name
  for name in $1; do
    indices="$indices${indices:+,}{\"name\":\"$name\",\"attributes\":[\"open\"]}"
    names="$names${names:+,}\"$name\""
  done
  cat > "$WORK/backend.conf" <<NGINX
worker_processes 1;
error_log $WORK/backend.err;
pid $WORK/backend.pid;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  client_max_body_size 10m;
  server {
    listen 127.0.0.1:$BACKEND_PORT backlog=4096;
    add_header X-Elastic-Product Elasticsearch always;
    location /_resolve/index/ {
      return 200 '{"indices":[$indices],"aliases":[],"data_streams":[]}';
    }
    # esgate's field type lookup for a histogram without hard bounds (the 2 KB search's date
    # histogram on @timestamp; upstream::field_types): a real-shaped answer.
    location ~ /_field_caps\$ {
      return 200 '{"indices":[$names],"fields":{"@timestamp":{"date":{"type":"date","metadata_field":false,"searchable":true,"aggregatable":true}}}}';
    }
${2:-}
    # nginx answers 405 to POST on a static file: the small answer is a static return.
    location / { return 200 '$SMALL_ANSWER'; }
  }
}
NGINX
  taskset -c 1 nginx -c "$WORK/backend.conf" -g 'daemon off;' &
  PIDS+=($!)
}

write_auth_conf() { # [SERVER_LINES]
  printf 'user:{PLAIN}secret\n' > "$WORK/htpasswd"
  chmod 644 "$WORK/htpasswd"
  cat > "$WORK/auth.conf" <<NGINX
worker_processes 1;
error_log $WORK/auth.err;
pid $WORK/auth.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_max_body_size 10m;
  client_body_buffer_size 1m;
  upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
${1:-}
    location / {
      auth_basic "es";
      auth_basic_user_file $WORK/htpasswd;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_buffering off;
      proxy_pass http://backend;
    }
  }
}
NGINX
  # The same with the access log nginx's default configuration keeps (`access_log
  # logs/access.log;`: the `combined` format, unbuffered), in the work dir.
  sed "s|^  access_log off;\$|  access_log $WORK/nginx-access.log;|" "$WORK/auth.conf" > "$WORK/auth-log.conf"
  grep -q "access_log $WORK/nginx-access.log;" "$WORK/auth-log.conf"
}

esgate_config() { # AUDIT(off|file) [TLS(yes|no)]
  local tls=""
  [ "${2:-no}" = yes ] && tls=$'[listen.tls]\ncert_file = "'"$WORK/cert.pem"$'"\nkey_file = "'"$WORK/key.pem"'"'
  local audit='output = "off"'
  [ "$1" = file ] && audit="output = \"file\""$'\n'"path = \"$WORK/audit.jsonl\""
  cat <<TOML
[listen]
data = "127.0.0.1:$DATA_PORT"
admin = "127.0.0.1:$ADMIN_PORT"
max_connections = 4096
$tls
[backend]
urls = ["http://127.0.0.1:$BACKEND_PORT"]
[store]
path = "$WORK/store"
[admin]
key = "$ADMIN_KEY"
[audit]
$audit
[log]
level = "error"
TOML
}

start_proxy() { # nginx [log] | esgate AUDIT [TLS]
  if [ "$1" = nginx ]; then
    local conf=auth.conf
    [ "${2:-}" = log ] && conf=auth-log.conf
    taskset -c 0 nginx -c "$WORK/$conf" -g 'daemon off;' &
    PROXY_PID=$!
    PIDS+=($!)
    for _ in $(seq 50); do [ -s "$WORK/auth.pid" ] && curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; sleep 0.1; done
    return
  fi
  esgate_config "$2" "${3:-no}" > "$WORK/esgate.toml"
  taskset -c 0 "$BIN" serve --config "$WORK/esgate.toml" &
  PROXY_PID=$!
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN_PORT/health" >/dev/null && break; sleep 0.1; done
}
stop_proxy() {
  kill "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  rm -f "$WORK/auth.pid"
  PROXY_PID=""
}

token() { # FIELDS-JSON -> secret (esgate must be running)
  curl -sS -X POST "http://127.0.0.1:$ADMIN_PORT/tokens" -H "authorization: Bearer $ADMIN_KEY" \
    -H 'content-type: application/json' -d "{\"name\":\"load-$RANDOM\",$1}" \
    | python3 -c 'import json,sys
t = sys.stdin.read()
try:
    print(json.loads(t)["secret"])
except Exception:
    sys.exit("cannot create a token: " + t)'
}

lua_for() { # METHOD BODYFILE AUTHORIZATION (an empty one: none sent)
  {
    echo "wrk.method = \"$1\""
    if [ -n "$2" ]; then
      printf 'local f = io.open("%s", "rb")\nwrk.body = f:read("*a")\nf:close()\nwrk.headers["content-type"] = "application/json"\n' "$2"
    fi
    if [ -n "$3" ]; then echo "wrk.headers[\"authorization\"] = \"$3\""; fi
  } > "$WORK/req.lua"
}
