#!/usr/bin/env bash
# What the kernel does per request (issue 10, session 24): system calls by kind, the reads that
# found nothing (EAGAIN), context switches and CPU migrations, for esgate and for nginx +
# auth_basic, in `pinned.sh`'s layout (the proxy alone on CPU 0, wrk and the canned nginx
# backend on CPU 1), at 1 connection and at 50. `perf stat` counts the syscall tracepoints of
# every thread of the proxy (`--per-thread`) over one wrk run, divided by the requests wrk
# completed: counters, not a tracer, so the proxy runs at full speed and what it finds (a read
# with nothing to read, an `epoll_wait` that returns at once) is what it finds under load.
# Scenarios: small GET search and 2 KB POST search (esgate: filtered `read` token, audit to a
# file, as `pinned.sh`), small GET with an `all` token (relay, audit off).
#
# Counts are of a rate, not of a load: at full speed more requests share an `epoll_wait` and a
# wake-up; the tables say the req/s each run made.
#
# Needs: perf (with the syscalls tracepoints), wrk, nginx-light, 2 cores. Loopback only.
# The set-up shared with `pinned.sh` (work dir, backend, nginx + auth_basic, esgate's config,
# proxies, tokens) is in `common.sh`; ports 19620-19623.
# Usage: benches/load/kernel.sh [SECONDS=3]
#   ESGATE_BIN=PATH measures that binary (default: this tree's release build).
#   ONLY=esgate|nginx measures one proxy; CONNS="1 50" the connection counts.
#   THREADS=1 also prints each thread's calls per request.
#   PACE=MS: each connection waits MS milliseconds between an answer and its next request (wrk's
#   `delay`), so that every request finds the proxy idle, as at a low rate; the latency
#   columns are then of requests made one at a time (with CONNS=1).
#   TIMELINE=1 (with PACE): instead of counting, records the proxy's system calls with their
#   times (`perf record -e raw_syscalls:*`) and prints where a request's time goes between
#   them (`timeline.py`: reading to the write upstream, the backend, the answer to its write).
set -euo pipefail
SECS=${1:-3}
CONNS=${CONNS:-1 50}
ONLY=${ONLY:-}
PACE=${PACE:-}
# shellcheck source=benches/load/common.sh
. "$(dirname "$0")/common.sh"
# Ports 19620 (backend), 19621 (nginx), 19622-19623 (esgate).
load_init 19620
python3 "$ROOT/benches/load/bodies.py" "$WORK"
start_backend logs-a
write_auth_conf ""

# The system calls counted one by one (the rest: "other", from the total); the reads that
# found nothing are the exits with -EAGAIN.
CALLS="read recvfrom readv recvmsg write writev sendto sendmsg sendfile64 epoll_wait epoll_pwait epoll_pwait2 epoll_ctl futex sched_yield accept4 close setsockopt getsockopt ioctl openat newfstatat statx pread64 pwrite64 lseek fsync fdatasync getrandom mmap munmap madvise mprotect brk mremap clock_nanosleep nanosleep timerfd_settime rt_sigprocmask clock_gettime"
EVENTS="-e raw_syscalls:sys_enter -e context-switches -e cpu-migrations"
for c in $CALLS; do EVENTS="$EVENTS -e syscalls:sys_enter_$c"; done
for c in read recvfrom readv recvmsg; do EVENTS="$EVENTS -e syscalls:sys_exit_$c --filter ret==-11"; done

# Voluntary and involuntary context switches of every thread of the processes given, by name.
switches() { # pids(comma-separated) file
  local p t
  for p in ${1//,/ }; do
    for t in /proc/"$p"/task/*; do
      awk -v name="$(cat "$t/comm" 2>/dev/null)" '/^voluntary_ctxt_switches/ {v=$2} /^nonvoluntary_ctxt_switches/ {n=$2} END {print name "\t" v "\t" n}' "$t/status" 2>/dev/null || true
    done
  done > "$2"
}

# One wrk run under `perf stat`; prints a table row and (THREADS=1) the threads' rows.
measure() { # label url method body auth conns
  lua_for "$3" "$4" "$5"
  [ -z "$PACE" ] || echo "function delay() return $PACE end" >> "$WORK/req.lua"
  local pids
  # shellcheck disable=SC2046 # the children: one pid a word
  pids=$(echo "$PROXY_PID" $(pgrep -P "$PROXY_PID" || true) | tr ' ' ,)
  local perf
  if [ -n "${TIMELINE:-}" ]; then
    perf record -q -e raw_syscalls:sys_enter -e raw_syscalls:sys_exit -p "$pids" -o "$WORK/trace.data" &
    perf=$!
    sleep 0.5
    taskset -c 1 wrk -t1 -c"$6" -d"${SECS}s" --latency -s "$WORK/req.lua" "$2" > "$WORK/wrk.out" 2>&1
    kill -INT "$perf"
    wait "$perf" || true
    echo "$1, $6 connection(s), paced ${PACE}ms: wrk p50 / p99 $(awk '/^ +50%/ {print $2}' "$WORK/wrk.out") / $(awk '/^ +99%/ {print $2}' "$WORK/wrk.out")"
    perf script -i "$WORK/trace.data" -F tid,time,event,trace 2>/dev/null | python3 "$ROOT/benches/load/timeline.py" "$PACE"
    return
  fi
  # A thread that ends as perf attaches (tokio's blocking pool lets an idle one go) fails it:
  # try again.
  for _ in 1 2 3; do
    # shellcheck disable=SC2086
    perf stat -x, --per-thread -p "$pids" $EVENTS -o "$WORK/perf.csv" 2>/dev/null &
    perf=$!
    sleep 0.5
    kill -0 "$perf" 2>/dev/null && break
  done
  switches "$pids" "$WORK/before.tsv"
  taskset -c 1 wrk -t1 -c"$6" -d"${SECS}s" --latency -s "$WORK/req.lua" "$2" > "$WORK/wrk.out" 2>&1
  switches "$pids" "$WORK/after.tsv"
  kill -INT "$perf"
  wait "$perf" || true
  if grep -q "Non-2xx" "$WORK/wrk.out"; then echo "non-2xx answers from $2: $(cat "$WORK/wrk.out")" >&2; exit 1; fi
  python3 - "$1" "$6" "$WORK/wrk.out" "$WORK/perf.csv" "${THREADS:-}" "$WORK/before.tsv" "$WORK/after.tsv" <<'PY'
import collections, re, sys
label, conns, wrk, perf, threads, before, after = sys.argv[1:]
out = open(wrk).read()
def us(text):
    m = re.match(r"([0-9.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
p50 = us(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = us(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
def snapshot(path):
    c = collections.defaultdict(lambda: [0, 0])
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) == 3 and f[1] and f[2]:
            c[f[0]][0] += int(f[1])
            c[f[0]][1] += int(f[2])
    return c
b, a = snapshot(before), snapshot(after)
vol = {n: (a[n][0] - b[n][0], a[n][1] - b[n][1]) for n in a}
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
total = collections.Counter()
per_thread = collections.defaultdict(collections.Counter)
for line in open(perf):
    f = line.strip().split(",")
    if len(f) < 4 or not f[1].replace(".", "").isdigit():
        continue
    thread, count, event = f[0], float(f[1]), f[3]
    # "esgate-worker-1-1234" -> "esgate-worker-1"
    name = re.sub(r"-\d+$", "", thread)
    key = event.split(":")[-1].replace("sys_enter_", "").replace("sys_exit_", "EAGAIN ")
    total[key] += count
    per_thread[name][key] += count
def per(c, k):
    return c[k] / reqs
calls = {k: v for k, v in total.items() if k not in ("sys_enter", "context-switches", "cpu-migrations") and not k.startswith("EAGAIN")}
other = total["sys_enter"] - sum(calls.values())
kinds = sorted(((k, v) for k, v in calls.items() if v / reqs >= 0.005), key=lambda kv: -kv[1])
text = ", ".join("%s %.2f" % (k, v / reqs) for k, v in kinds)
if other / reqs >= 0.005:
    text += ", other %.2f" % (other / reqs)
eagain = sum(v for k, v in total.items() if k.startswith("EAGAIN")) / reqs
busy = [n for n, c in per_thread.items() if c["sys_enter"] / reqs >= 0.01]
vt = sum(v for v, _ in vol.values()) / reqs
nt = sum(n for _, n in vol.values()) / reqs
print("| %s | %s | %.0f | %.0f / %.0f | %.2f | %s | %.2f | %.2f (%.2f / %.2f) | %.3f | %s |" % (
    label, conns, rps, p50, p99, total["sys_enter"] / reqs, text, eagain,
    per(total, "context-switches"), vt, nt, per(total, "cpu-migrations"), ", ".join(sorted(busy))))
if threads:
    for name, c in sorted(per_thread.items()):
        if c["sys_enter"] == 0 and c["context-switches"] == 0:
            continue
        kinds = sorted(((k, v) for k, v in c.items() if k not in ("sys_enter", "context-switches", "cpu-migrations") and v / reqs >= 0.001), key=lambda kv: -kv[1])
        v, n = vol.get(name[:15], (0, 0))
        print("|   %s | | | | %.3f | %s | | %.3f (%.3f / %.3f) | | |" % (name, c["sys_enter"] / reqs, ", ".join("%s %.3f" % (k, v / reqs) for k, v in kinds), c["context-switches"] / reqs, v / reqs, n / reqs))
PY
}

echo "| proxy, scenario | connections | req/s | p50 / p99 us | system calls per request | by kind, per request | reads with nothing (EAGAIN) | context switches (voluntary / involuntary) | CPU migrations | threads making calls |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
if [ "$ONLY" != esgate ]; then
  start_proxy nginx
  for c in $CONNS; do
    measure "nginx, small GET" "http://127.0.0.1:$NGINX_PORT/logs-a/_search" GET "" "$BASIC" "$c"
    measure "nginx, 2 KB POST" "http://127.0.0.1:$NGINX_PORT/logs-a/_search" POST "$WORK/post2k.json" "$BASIC" "$c"
  done
  stop_proxy
fi
if [ "$ONLY" != nginx ]; then
  start_proxy esgate file
  SECRET=$(token '"indices":["logs-*"],"filters":[{"field":"tenant","value":"a"}]')
  taskset -c 1 wrk -t1 -c50 -d1s -H "authorization: Bearer $SECRET" "http://127.0.0.1:$DATA_PORT/logs-a/_search" >/dev/null
  for c in $CONNS; do
    measure "esgate, small GET" "http://127.0.0.1:$DATA_PORT/logs-a/_search" GET "" "Bearer $SECRET" "$c"
    measure "esgate, 2 KB POST" "http://127.0.0.1:$DATA_PORT/logs-a/_search" POST "$WORK/post2k.json" "Bearer $SECRET" "$c"
  done
  stop_proxy
  start_proxy esgate off
  ALL=$(token '"permissions":["all"]')
  taskset -c 1 wrk -t1 -c50 -d1s -H "authorization: Bearer $ALL" "http://127.0.0.1:$DATA_PORT/logs-a/_search" >/dev/null
  for c in $CONNS; do
    measure "esgate, all relay (audit off)" "http://127.0.0.1:$DATA_PORT/logs-a/_search" GET "" "Bearer $ALL" "$c"
  done
  stop_proxy
fi
