#!/usr/bin/env bash
# The pinned load benchmark (issue 10): the proxy under test alone on CPU 0; wrk and a canned
# nginx backend on CPU 1, so the proxy's own CPU cost per request shows (a layout sharing both
# cores between them hides it). Compares, on the same canned backend:
#   direct   wrk -> backend
#   nginx    wrk -> nginx (auth_basic with a {PLAIN} password, its cheapest) -> backend
#   esgate   wrk -> esgate (authenticate, check, rewrite with the token's filter, forward)
# Scenarios: small GET search, 2 KB Kibana-style POST search, 200 KB POST search, latency at
# one connection (GET and POST), a 10 MB and a 1 GB streamed answer (MB/s and peak RSS above
# idle: the memory must stay flat as the answer grows), TLS in front, an `all` token relay,
# audit to a file vs off, and (information, beside the rows the goals are read from) nginx +
# auth_basic's small GET with its access log to a file as its default configuration keeps it
# (`combined`, unbuffered: esgate's rows run with its audit to a file). Reports req/s and p50/p99 (wrk), CPU microseconds per request (the
# proxy's utime+stime from /proc over the run) and the ratios. Medians of RUNS runs. The audit
# pair runs in an ABBA order, each run in a fresh process: every round is off, file, file, off
# (so a drift over the run falls on both sides alike), a round's figure for each side is the
# mean of its two runs, and the rows are the medians of the RUNS rounds (4 x RUNS runs).
# Loopback only; every process it starts is stopped on exit. The set-up shared with
# `kernel.sh` (work dir, backend, nginx + auth_basic, esgate's config, proxies, tokens) is in
# `common.sh`; ports 19600-19603 and 19611.
#
# Needs: wrk, nginx-light, openssl (`apt-get install wrk nginx-light openssl`; installed when
# missing and running as root), 2 cores.
# Usage: benches/load/pinned.sh [SECONDS=5] [RUNS=3] [CONNECTIONS=50]
#   ESGATE_BENCH_WRITE=1 also rewrites the table in BENCHMARKS.md.
#   ESGATE_PERF=FILE records a CPU profile of esgate in the 2 KB POST scenario.
#   ONLY=stream runs only the streamed answers (10 MB, then 1 GB) and prints their rows.
# Peak RSS above idle: the highest RSS sampled during a run less the RSS just before it.
#   GB_REQUESTS=N: 1 GB answers per connection (default 1; 4 connections), sent with curl.
#   ESGATE_BIN=PATH measures that esgate binary instead of building this tree's (A/B runs).
set -euo pipefail
SECS=${1:-5}
RUNS=${2:-3}
CONNS=${3:-50}
ONLY=${ONLY:-}
GB_REQUESTS=${GB_REQUESTS:-1}
case "$ONLY" in "" | stream) ;; *) echo "ONLY must be empty or stream" >&2; exit 1 ;; esac
if [ -n "$ONLY" ] && [ -n "${ESGATE_BENCH_WRITE:-}" ]; then
  echo "ESGATE_BENCH_WRITE needs the whole run (no ONLY)" >&2
  exit 1
fi
# shellcheck source=benches/load/common.sh
. "$(dirname "$0")/common.sh"

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "needs wrk and nginx-light" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light openssl >/dev/null
fi
[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores" >&2; exit 1; }

# Ports 19600 (backend), 19601 (nginx), 19602-19603 (esgate), 19611 (nginx over TLS).
load_init 19600
NGINX_TLS_PORT=$((BACKEND_PORT + 11))
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || COMMIT="$COMMIT+changes"

# --- bodies and canned answers --------------------------------------------------------------
python3 "$ROOT/benches/load/bodies.py" "$WORK"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
# A 10 MB answer: many hits.
hit = {"_index": "big", "_id": "x", "_score": 1.0, "_source": {"tenant": "a", "message": "m" * 900}}
hits = [dict(hit, _id=str(i)) for i in range(10 * 1024 * 1024 // 1000)]
open(work + "/answer10m.json", "w").write(json.dumps({"took": 1, "timed_out": False, "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits}}))
PY
printf '%s' "$SMALL_ANSWER" > "$WORK/answer.json"
# A 1 GB answer: a sparse file (no disk blocks; nginx reads zeros), gone with $WORK on exit.
# Its content is never parsed: a search answer is streamed through.
GB=$((1024 * 1024 * 1024))
truncate -s "$GB" "$WORK/answer1g.json"

# --- TLS material (self-signed, loopback) ---------------------------------------------------
make_cert

# --- the canned backend, on CPU 1: the 10 MB and 1 GB answers besides the small one ---------
start_backend "logs-a logs-b big huge" "    # A static file answers GET only; esgate forwards a search with its rewritten body.
    # (error_page turns the POST into a GET of the file).
    location /big/ { root $WORK; rewrite ^ /answer10m.json break; error_page 405 =200 /answer10m.json; }
    location = /answer10m.json { root $WORK; }
    location /huge/ { root $WORK; rewrite ^ /answer1g.json break; error_page 405 =200 /answer1g.json; }
    location = /answer1g.json { root $WORK; }"

# --- nginx with auth_basic ({PLAIN}), started on CPU 0 when measured; TLS too ----------------
write_auth_conf "    listen 127.0.0.1:$NGINX_TLS_PORT ssl backlog=4096;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;"

# CPU ticks (utime + stime) of a process and its children threads/workers.
cpu_ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
rss_kib() { # VmRSS of a process and its children
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)

# One wrk run on CPU 1; prints "rps p50_us p99_us cpu_us_per_req peak_rss_kib" (cpu of PID when
# given; peak RSS only with RSS=rss, the rows the table reports it for). The RSS sampler forks
# a few processes 20 times a second, on any CPU: in every run it took CPU time from the proxy
# and the clients and made the multi-millisecond p99s (session 29: with it nowhere but in the
# streamed rows, nginx's small GET 41-48k -> 71k req/s, its p99 at one connection +2.7-3.1 ms
# -> +0.5 ms; esgate's 30-32k -> 42k), so it runs only where RSS is the figure (the streamed
# answers, as before; pinned to CPU 1 there it cost the 1 GB row a quarter, so it is not).
one_run() { # url method bodyfile auth conns pid [RSS]
  lua_for "$2" "$3" "$4"
  local before after idle peak=0 out reqs sampler=""
  [ -n "$6" ] && before=$(cpu_ticks "$6") && idle=$(rss_kib "$6")
  : > "$WORK/rss.log"
  if [ -n "$6" ] && [ "${7:-}" = rss ]; then
    ( while :; do r=$(rss_kib "$6") && echo "$r"; sleep 0.05; done ) > "$WORK/rss.log" &
    sampler=$!
  fi
  out=$(taskset -c 1 wrk -t1 -c"$5" -d"${SECS}s" --latency -s "$WORK/req.lua" "$1" 2>&1)
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true; fi
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers from $1: $out" >&2; exit 1; fi
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '/^ +50%/ {print $2}' <<<"$out")
  p99=$(awk '/^ +99%/ {print $2}' <<<"$out")
  local cpu=0
  if [ -n "$6" ]; then
    after=$(cpu_ticks "$6")
    cpu=$(python3 -c "print(round(($after - $before) / $HZ * 1e6 / max($reqs, 1), 1))")
    if [ -s "$WORK/rss.log" ]; then
      peak=$(sort -n "$WORK/rss.log" | tail -1)
      peak=$(( ${peak:-0} - idle ))
    fi
  fi
  echo "$rps $(to_us "$p50") $(to_us "$p99") $cpu $peak"
}
to_us() { # wrk latency (e.g. 1.23ms, 850.00us, 1.2s) -> microseconds
  python3 -c "
import re,sys
m=re.match(r'([0-9.]+)(us|ms|s)', '$1')
print(round(float(m.group(1))*{'us':1,'ms':1e3,'s':1e6}[m.group(2)]) if m else 0)"
}
median_run() { # same args as one_run; prints the run with the median req/s
  local i
  for i in $(seq "$RUNS"); do one_run "$@"; done | sort -n -k1,1 | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'
}

# One run of 1 GB answers: CONNS curl clients on CPU 1 at once, each fetching GB_REQUESTS
# answers over one keep-alive connection (a bounded amount: the run stops by itself). wrk
# counts only the answers done when its time is up, too coarse for a few huge ones. Prints
# "answers_per_s 0 0 cpu_us_per_answer peak_rss_kib" like one_run (rate over the wall time
# from the first request to the last byte).
one_stream() { # url auth conns pid
  local idle before after peak=0 i t0 t1 n
  [ -n "$4" ] && before=$(cpu_ticks "$4") && idle=$(rss_kib "$4")
  ( while :; do [ -n "$4" ] && r=$(rss_kib "$4") && echo "$r"; sleep 0.05; done ) > "$WORK/rss.log" &
  local sampler=$!
  local args=(-sS -H "authorization: $2")
  [ -n "$2" ] || args=(-sS)
  for i in $(seq "$GB_REQUESTS"); do args+=(-o /dev/null -w '%{http_code} %{size_download}\n' "$1"); done
  t0=$(date +%s%N)
  local clients=()
  for i in $(seq "$3"); do
    taskset -c 1 curl "${args[@]}" > "$WORK/curl.$i" 2>&1 &
    clients+=($!)
  done
  wait "${clients[@]}" 2>/dev/null || true
  t1=$(date +%s%N)
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  n=$(cat "$WORK"/curl.* | grep -cx "200 $GB" || true)
  if [ "$n" != $(($3 * GB_REQUESTS)) ]; then echo "incomplete 1 GB answers from $1: $(cat "$WORK"/curl.*)" >&2; exit 1; fi
  rm -f "$WORK"/curl.*
  local cpu=0
  if [ -n "$4" ]; then
    after=$(cpu_ticks "$4")
    cpu=$(python3 -c "print(round(($after - $before) / $HZ * 1e6 / $n, 1))")
    peak=$(sort -n "$WORK/rss.log" | tail -1)
    peak=$(( ${peak:-0} - idle ))
  fi
  echo "$(python3 -c "print(round($n / (($t1 - $t0) / 1e9), 3))") 0 0 $cpu $peak"
}

declare -A R
measure() { # key url method body auth conns pid [RSS]
  R[$1]=$(median_run "$2" "$3" "$4" "$5" "$6" "$7" "${8:-}")
  printf '%-28s %s\n' "$1" "${R[$1]}" >&2
}
scenarios() { # prefix base-url auth pid
  measure "$1.get" "$2/logs-a/_search" GET "" "$3" "$CONNS" "$4"
  measure "$1.post2k" "$2/logs-a/_search" POST "$WORK/post2k.json" "$3" "$CONNS" "$4"
  measure "$1.post200k" "$2/logs-a/_search" POST "$WORK/post200k.json" "$3" "$CONNS" "$4"
  measure "$1.lat.get" "$2/logs-a/_search" GET "" "$3" 1 "$4"
  measure "$1.lat.post" "$2/logs-a/_search" POST "$WORK/post2k.json" "$3" 1 "$4"
  measure "$1.big" "$2/big/_search" GET "" "$3" 4 "$4" rss
  measure_gb "$1.huge" "$2/huge/_search" "$3" 4 "$4"
}
measure_gb() { # key url auth conns pid
  R[$1]=$(for _ in $(seq "$RUNS"); do one_stream "$2" "$3" "$4" "$5"; done | sort -n -k1,1 | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}')
  printf '%-28s %s\n' "$1" "${R[$1]}" >&2
}
streams() { # prefix base-url auth pid: the streamed answers only (ONLY=stream)
  # A proxy measured in a whole run has served the other scenarios first: warm it up the same
  # way, so its idle RSS before the streamed answers is comparable.
  [ -z "$4" ] || taskset -c 1 wrk -t1 -c"$CONNS" -d2s -H "authorization: $3" "$2/logs-a/_search" >/dev/null
  measure "$1.big" "$2/big/_search" GET "" "$3" 4 "$4" rss
  measure_gb "$1.huge" "$2/huge/_search" "$3" 4 "$4"
}

echo "pinned layout: proxy on CPU 0; wrk (1 thread) and the canned backend on CPU 1;" \
  "${SECS}s per run, median of $RUNS, $CONNS connections (latency: 1; 10 MB and 1 GB: 4);" \
  "commit $COMMIT" >&2
RUN=scenarios
[ -z "$ONLY" ] || RUN=streams

[ -n "${SKIP_BASE:-}" ] || $RUN direct "http://127.0.0.1:$BACKEND_PORT" "" ""

start_proxy nginx
$RUN nginx "http://127.0.0.1:$NGINX_PORT" "$BASIC" "$PROXY_PID"
[ -n "$ONLY" ] || measure nginx.tls "https://127.0.0.1:$NGINX_TLS_PORT/logs-a/_search" GET "" "$BASIC" "$CONNS" "$PROXY_PID"
stop_proxy
if [ -z "$ONLY" ]; then
  # nginx with the access log its default configuration writes (information: the rows above,
  # which the goals are read against, keep `access_log off`).
  start_proxy nginx log
  measure nginx.log.get "http://127.0.0.1:$NGINX_PORT/logs-a/_search" GET "" "$BASIC" "$CONNS" "$PROXY_PID"
  stop_proxy
  [ -s "$WORK/nginx-access.log" ] || { echo "nginx wrote no access log" >&2; exit 1; }
fi

start_proxy esgate file no
SECRET=$(token '"indices":["logs-*","big","huge"],"filters":[{"field":"tenant","value":"a"}]')
ALL=$(token '"permissions":["all"]')
if [ -n "${ESGATE_PERF:-}" ] && [ -z "$ONLY" ]; then
  perf record -q -F 1999 -g -p "$PROXY_PID" -o "$ESGATE_PERF" -- sleep "$SECS" &
  PERF=$!
  one_run "http://127.0.0.1:$DATA_PORT/logs-a/_search" POST "$WORK/post2k.json" "Bearer $SECRET" "$CONNS" "$PROXY_PID" >/dev/null
  wait "$PERF" || true
fi
$RUN esgate "http://127.0.0.1:$DATA_PORT" "Bearer $SECRET" "$PROXY_PID"
stop_proxy
if [ -z "$ONLY" ]; then
  # The audit's cost: audit off and to a file, each run in a fresh process, in an ABBA order in
  # every round (off, file, file, off), so that a drift over the round (the machine's load, the
  # page cache) lands on both sides alike rather than on the one that always runs second. A
  # round's figure for each side is the mean of its two runs; the rows are the medians of the
  # RUNS rounds' figures.
  for round in $(seq "$RUNS"); do
    for audit in off file file off; do
      start_proxy esgate "$audit" no
      taskset -c 1 wrk -t1 -c"$CONNS" -d1s -H "authorization: Bearer $SECRET" "http://127.0.0.1:$DATA_PORT/logs-a/_search" >/dev/null
      one_run "http://127.0.0.1:$DATA_PORT/logs-a/_search" GET "" "Bearer $SECRET" "$CONNS" "$PROXY_PID" >> "$WORK/audit.$audit.$round"
      stop_proxy
    done
    for audit in off file; do
      awk '{for (i = 1; i <= NF; i++) s[i] += $i}
        END {printf "%.2f %.0f %.0f %.1f %.0f\n", s[1] / NR, s[2] / NR, s[3] / NR, s[4] / NR, s[5] / NR}' \
        "$WORK/audit.$audit.$round" >> "$WORK/audit.$audit"
    done
  done
  for audit in off file; do
    R[esgate.audit.$audit]=$(sort -n -k1,1 "$WORK/audit.$audit" | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}')
    printf '%-28s %s\n' "esgate.audit.$audit" "${R[esgate.audit.$audit]}" >&2
  done
  start_proxy esgate off no
  measure esgate.all.get "http://127.0.0.1:$DATA_PORT/logs-a/_search" GET "" "Bearer $ALL" "$CONNS" "$PROXY_PID"
  stop_proxy
  start_proxy esgate file yes
  measure esgate.tls "https://127.0.0.1:$DATA_PORT/logs-a/_search" GET "" "Bearer $SECRET" "$CONNS" "$PROXY_PID"
  stop_proxy
fi

# --- the table ------------------------------------------------------------------------------
python3 - "$COMMIT" "$SECS" "$RUNS" "$CONNS" "$ONLY" > "$WORK/table.md" <<PY
import sys
commit, secs, runs, conns, only = sys.argv[1:]
R = {}
for line in """$(for k in "${!R[@]}"; do echo "$k ${R[$k]}"; done)""".strip().splitlines():
    k, *v = line.split()
    R[k] = [float(x) for x in v]
def rps(k): return R[k][0]
def cpu(k): return R[k][3]
def ratio(a, b): return "%.2f" % (rps(a) / rps(b)) if rps(b) else "-"
rows = [
  ("small GET search, req/s", "get"),
  ("2 KB Kibana-style POST search, req/s", "post2k"),
  ("200 KB POST search, req/s", "post200k"),
]
def streamed():
    mb = 10 * 1024 * 1024 / 1e6
    print("| 10 MB streamed answer, MB/s (4 connections) | %.0f | %.0f | %.0f | **%s** |" % (rps("direct.big")*mb, rps("nginx.big")*mb, rps("esgate.big")*mb, ratio("esgate.big", "nginx.big")))
    print("| 10 MB, peak RSS above idle, MiB | - | %.1f | %.1f | |" % (R["nginx.big"][4]/1024, R["esgate.big"][4]/1024))
    gb = 1024 * 1024 * 1024 / 1e6
    print("| 1 GB streamed answer, MB/s (4 connections, curl) | %.0f | %.0f | %.0f | **%s** |" % (rps("direct.huge")*gb, rps("nginx.huge")*gb, rps("esgate.huge")*gb, ratio("esgate.huge", "nginx.huge")))
    print("| 1 GB, peak RSS above idle, MiB | - | %.1f | %.1f | |" % (R["nginx.huge"][4]/1024, R["esgate.huge"][4]/1024))
print("Measured on commit %s: %s s per run, median of %s runs, %s connections; proxy alone on CPU 0, wrk and the canned backend on CPU 1 (\`benches/load/pinned.sh\`)." % (commit, secs, runs, conns))
print()
print("| scenario | direct | nginx + auth_basic | esgate | esgate / nginx |")
print("| --- | --- | --- | --- | --- |")
if only:
    streamed()
    sys.exit(0)
for name, k in rows:
    print("| %s | %.0f | %.0f | %.0f | **%s** |" % (name, rps("direct."+k), rps("nginx."+k), rps("esgate."+k), ratio("esgate."+k, "nginx."+k)))
for name, k in rows:
    print("| %s, proxy CPU us per request | - | %.1f | %.1f | %.2fx |" % (name.replace(", req/s", ""), cpu("nginx."+k), cpu("esgate."+k), cpu("esgate."+k) / max(cpu("nginx."+k), 0.1)))
for name, k in [("GET", "lat.get"), ("2 KB POST", "lat.post")]:
    d, n, e = R["direct."+k], R["nginx."+k], R["esgate."+k]
    print("| latency added at 1 connection, %s, p50 / p99 us | %d / %d (base) | +%d / +%d | +%d / +%d | |" % (name, d[1], d[2], n[1]-d[1], n[2]-d[2], e[1]-d[1], e[2]-d[2]))
streamed()
print("| TLS in front, small GET, req/s | - | %.0f | %.0f | **%s** |" % (rps("nginx.tls"), rps("esgate.tls"), ratio("esgate.tls", "nginx.tls")))
print("| \`all\` token relay (audit off), small GET, req/s | - | %.0f | %.0f | **%s** |" % (rps("nginx.get"), rps("esgate.all.get"), ratio("esgate.all.get", "nginx.get")))
print("| audit to a file vs off (ABBA runs), small GET, req/s | - | - | %.0f / %.0f | %.2f |" % (rps("esgate.audit.file"), rps("esgate.audit.off"), rps("esgate.audit.file") / rps("esgate.audit.off")))
print("| audit to a file vs off (ABBA runs), small GET, proxy CPU us per request | - | - | %.1f / %.1f | %.2fx |" % (cpu("esgate.audit.file"), cpu("esgate.audit.off"), cpu("esgate.audit.file") / max(cpu("esgate.audit.off"), 0.1)))
print("| small GET search, nginx + auth_basic with its access log to a file (information; \`combined\`, unbuffered), req/s | - | %.0f | %.0f | %s |" % (rps("nginx.log.get"), rps("esgate.get"), ratio("esgate.get", "nginx.log.get")))
print("| small GET search, nginx + auth_basic with its access log to a file, proxy CPU us per request | - | %.1f | %.1f | %.2fx |" % (cpu("nginx.log.get"), cpu("esgate.get"), cpu("esgate.get") / max(cpu("nginx.log.get"), 0.1)))
PY
cat "$WORK/table.md"
if [ -n "${ESGATE_BENCH_WRITE:-}" ]; then
  python3 - "$ROOT/BENCHMARKS.md" "$WORK/table.md" <<'PY'
import sys
path, table = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- pinned:begin -->", "<!-- pinned:end -->"
text = open(path).read()
a, b = text.index(begin) + len(begin), text.index(end)
open(path, "w").write(text[:a] + "\n" + table + text[b:])
PY
fi
