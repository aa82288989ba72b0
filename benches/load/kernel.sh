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
#   STRACE=N (with CONNS=1): instead of counting, `strace -f -ttt -T` of the proxy while a client
#   sends N requests one at a time (PACE ms apart, default 20), and prints the last two
#   requests' calls in order, each with the thread that made it (session 26).
# Besides the calls (session 26): the `epoll_wait` calls that returned nothing, the wake-ups the
# proxy's threads made (`sched_waking`, in the waker), page faults, the proxy's CPU time a
# request (utime + stime of all its threads, from /proc) and how often each CPU went idle
# (`cpuidle` entries; the machine's other processes count there too).
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
EVENTS="-e raw_syscalls:sys_enter -e context-switches -e cpu-migrations -e page-faults"
for c in $CALLS; do EVENTS="$EVENTS -e syscalls:sys_enter_$c"; done
for c in read recvfrom readv recvmsg; do EVENTS="$EVENTS -e syscalls:sys_exit_$c --filter ret==-11"; done
# The epoll_wait calls that returned nothing (a timer's timeout, or a look with timeout 0), and
# the wake-ups the proxy's threads made (`sched_waking` fires in the waker: a socket write that
# wakes wrk or the backend, a futex wake of another thread of its own).
EVENTS="$EVENTS -e syscalls:sys_exit_epoll_wait --filter ret==0 -e sched:sched_waking"

# Voluntary and involuntary context switches of every thread of the processes given, by name.
switches() { # pids(comma-separated) file
  local p t
  for p in ${1//,/ }; do
    for t in /proc/"$p"/task/*; do
      awk -v name="$(cat "$t/comm" 2>/dev/null)" '/^voluntary_ctxt_switches/ {v=$2} /^nonvoluntary_ctxt_switches/ {n=$2} END {print name "\t" v "\t" n}' "$t/status" 2>/dev/null || true
    done
  done > "$2"
}

# Utime + stime ticks of the processes given (every thread), and the idle entries of CPUs 0 and 1
# (`cpuidle`: each is a CPU that had nothing to run and halted; in a VM, waking one again is an
# interrupt from the other CPU and an exit to the host).
cpu_ticks() { # pids(comma-separated)
  local total=0 p
  for p in ${1//,/ }; do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$total"
}
idle_entries() { # cpu
  local n=0 s
  for s in /sys/devices/system/cpu/cpu"$1"/cpuidle/state*/usage; do [ -r "$s" ] && n=$((n + $(cat "$s"))); done
  echo "$n"
}

# STRACE=N: `strace -f -ttt -T` of the proxy's threads while a client on CPU 1 sends N requests
# one at a time on one keep-alive connection, PACE ms apart (default 20); prints the calls of
# the last two requests, each thread named, in the order they were made.
strace_requests() { # label url method body auth pids
  local args=() p
  for p in ${6//,/ }; do args+=(-p "$p"); done
  strace -f -ttt -T -qq -s 0 "${args[@]}" -o "$WORK/strace.txt" &
  local tracer=$!
  sleep 1
  taskset -c 1 python3 - "$2" "$3" "$4" "$5" "$STRACE" "${PACE:-20}" <<'PY'
import http.client, socket, sys, time, urllib.parse
url, method, body, auth, n, pace = sys.argv[1:]
u = urllib.parse.urlsplit(url)
data = open(body, "rb").read() if body else None
conn = http.client.HTTPConnection(u.hostname, u.port)
conn.connect()
conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
headers = {"authorization": auth} if auth else {}
if data:
    headers["content-type"] = "application/json"
for _ in range(int(n)):
    conn.request(method, u.path, body=data, headers=headers)
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("status %d" % r.status)
    time.sleep(int(pace) / 1000)
PY
  sleep 0.2
  kill -INT "$tracer"
  wait "$tracer" 2>/dev/null || true
  echo "### $1: the last two of $STRACE requests, ${PACE:-20} ms apart"
  python3 - "$WORK/strace.txt" "$6" <<'PY'
import os, re, sys
path, pids = sys.argv[1:]
names = {}
for pid in pids.split(","):
    for tid in os.listdir("/proc/%s/task" % pid):
        try:
            names[tid] = open("/proc/%s/task/%s/comm" % (pid, tid)).read().strip()
        except OSError:
            pass
lines = [l.rstrip("\n") for l in open(path)]
# A request begins where a thread's epoll_wait that slept over the pace returns; the last
# such return is the client closing its connection.
starts = [i for i, l in enumerate(lines) if re.search(r"epoll_wait.* = [1-9][0-9]* <[0-9.]+>$", l) and float(re.search(r"<([0-9.]+)>", l).group(1)) > 0.005]
first, last = (starts[-3], starts[-1]) if len(starts) >= 3 else (0, len(lines))
t0 = None
for l in lines[first:last]:
    m = re.match(r"(\d+)\s+([0-9.]+)\s+(.*)", l)
    if not m:
        continue
    t = float(m.group(2))
    t0 = t0 or t
    print("%-16s %+9.1f us  %s" % (names.get(m.group(1), m.group(1)), (t - t0) * 1e6, m.group(3)[:150]))
PY
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
  if [ -n "${STRACE:-}" ]; then
    strace_requests "$1" "$2" "$3" "$4" "$5" "$pids"
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
  local ticks idle0 idle1
  ticks=$(cpu_ticks "$pids") idle0=$(idle_entries 0) idle1=$(idle_entries 1)
  taskset -c 1 wrk -t1 -c"$6" -d"${SECS}s" --latency -s "$WORK/req.lua" "$2" > "$WORK/wrk.out" 2>&1
  echo "$(($(cpu_ticks "$pids") - ticks)) $(getconf CLK_TCK) $(($(idle_entries 0) - idle0)) $(($(idle_entries 1) - idle1))" > "$WORK/cpu.txt"
  switches "$pids" "$WORK/after.tsv"
  kill -INT "$perf"
  wait "$perf" || true
  if grep -q "Non-2xx" "$WORK/wrk.out"; then echo "non-2xx answers from $2: $(cat "$WORK/wrk.out")" >&2; exit 1; fi
  python3 - "$1" "$6" "$WORK/wrk.out" "$WORK/perf.csv" "${THREADS:-}" "$WORK/before.tsv" "$WORK/after.tsv" "$WORK/cpu.txt" <<'PY'
import collections, re, sys
label, conns, wrk, perf, threads, before, after, cpu = sys.argv[1:]
ticks, hz, idle0, idle1 = (int(x) for x in open(cpu).read().split())
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
    key = event.split(":")[-1]
    if key == "sys_exit_epoll_wait":
        key = "EMPTY epoll_wait"
    key = key.replace("sys_enter_", "").replace("sys_exit_", "EAGAIN ")
    total[key] += count
    per_thread[name][key] += count
def per(c, k):
    return c[k] / reqs
NOT_CALLS = ("sys_enter", "context-switches", "cpu-migrations", "page-faults", "sched_waking", "EMPTY epoll_wait")
calls = {k: v for k, v in total.items() if k not in NOT_CALLS and not k.startswith("EAGAIN")}
other = total["sys_enter"] - sum(calls.values())
kinds = sorted(((k, v) for k, v in calls.items() if v / reqs >= 0.005), key=lambda kv: -kv[1])
text = ", ".join("%s %.2f" % (k, v / reqs) for k, v in kinds)
if other / reqs >= 0.005:
    text += ", other %.2f" % (other / reqs)
eagain = sum(v for k, v in total.items() if k.startswith("EAGAIN")) / reqs
busy = [n for n, c in per_thread.items() if c["sys_enter"] / reqs >= 0.01]
vt = sum(v for v, _ in vol.values()) / reqs
nt = sum(n for _, n in vol.values()) / reqs
print("| %s | %s | %.0f | %.0f / %.0f | %.2f | %s | %.2f | %.2f | %.2f (%.2f / %.2f) | %.2f | %.2f | %.3f | %.1f | %.2f / %.2f | %s |" % (
    label, conns, rps, p50, p99, total["sys_enter"] / reqs, text, eagain,
    per(total, "EMPTY epoll_wait"), per(total, "context-switches"), vt, nt,
    per(total, "sched_waking"), per(total, "page-faults"), per(total, "cpu-migrations"),
    ticks / int(hz) * 1e6 / reqs, idle0 / reqs, idle1 / reqs, ", ".join(sorted(busy))))
if threads:
    for name, c in sorted(per_thread.items()):
        if c["sys_enter"] == 0 and c["context-switches"] == 0:
            continue
        kinds = sorted(((k, v) for k, v in c.items() if k not in NOT_CALLS and v / reqs >= 0.001), key=lambda kv: -kv[1])
        v, n = vol.get(name[:15], (0, 0))
        print("|   %s | | | | %.3f | %s | | %.3f | %.3f (%.3f / %.3f) | %.3f | %.3f | | | | |" % (name, c["sys_enter"] / reqs, ", ".join("%s %.3f" % (k, v / reqs) for k, v in kinds), c["EMPTY epoll_wait"] / reqs, c["context-switches"] / reqs, v / reqs, n / reqs, c["sched_waking"] / reqs, c["page-faults"] / reqs))
PY
}

echo "| proxy, scenario | connections | req/s | p50 / p99 us | system calls per request | by kind, per request | reads with nothing (EAGAIN) | epoll_wait returning nothing | context switches (voluntary / involuntary) | wake-ups made | page faults | CPU migrations | proxy CPU us | idle entries CPU 0 / CPU 1 | threads making calls |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
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
