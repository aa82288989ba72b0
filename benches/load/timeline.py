"""Where a request's time goes inside a proxy at one connection, from its system calls
(`kernel.sh` with TIMELINE=1): `perf record -e raw_syscalls:sys_enter,raw_syscalls:sys_exit`
of the proxy while wrk sends one request at a time with a pause between them (PACE), read
back with `perf script -F tid,time,event,trace` on stdin.

Each request is a cycle of the thread that serves it: an `epoll_wait` that slept through the
pause returns (the client's request is readable), then the first write (`writev`/`write`/
`sendto`) sends the request upstream, the next `epoll_wait` return is the backend's answer
arriving, and the next write sends the answer to the client; the thread then works on until its
next `epoll_wait`. Prints the medians (and 90th percentiles) of
  request   epoll_wait returns -> the request's write upstream begins (reading, checks)
  backend   that write begins -> the epoll_wait that sees the answer returns
  answer    that return -> the answer's write to the client begins (reading, relaying, audit)
  after     that write begins -> the thread's next epoll_wait (work after the answer)
and the system calls made in each phase, per request, with the mean time inside them (a call
that spans a phase's end, as the write upstream does, counts in the phase it began in).

Usage: perf script ... | python3 timeline.py PACE_MS
"""
import collections
import re
import sys

EPOLL = {232, 281, 441}  # epoll_wait, epoll_pwait, epoll_pwait2
WRITES = {1, 20, 44, 46}  # write, writev, sendto, sendmsg
NAMES = {0: "read", 1: "write", 3: "close", 17: "pread64", 20: "writev", 44: "sendto",
         45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 55: "getsockopt", 16: "ioctl",
         202: "futex", 232: "epoll_wait", 233: "epoll_ctl", 257: "openat", 281: "epoll_pwait",
         332: "statx", 28: "madvise", 18: "pwrite64", 19: "readv"}

pace_s = float(sys.argv[1]) / 1000
line_re = re.compile(r"^\s*(\d+)\s+([0-9.]+):\s+raw_syscalls:sys_(enter|exit):\s+NR (\d+)")
threads = collections.defaultdict(list)
for line in sys.stdin:
    m = line_re.match(line)
    if m:
        threads[int(m.group(1))].append((float(m.group(2)), m.group(3), int(m.group(4))))

phases = collections.defaultdict(list)
calls = collections.defaultdict(collections.Counter)
# Time inside each kind of call, per phase (enter to exit).
inside = collections.defaultdict(collections.Counter)
cycles = 0
for tid, events in threads.items():
    # The epoll_wait calls that slept through a pause: each starts a request's cycle.
    i = 0
    n = len(events)
    while i < n:
        t, kind, nr = events[i]
        if not (kind == "exit" and nr in EPOLL and i > 0 and events[i - 1][1] == "enter"
                and events[i - 1][2] in EPOLL and t - events[i - 1][0] > pace_s / 2):
            i += 1
            continue
        start = t
        j = i + 1
        marks = {}
        seen = collections.Counter()
        spent = collections.Counter()
        phase = "request"
        ok = False
        while j < n:
            tj, kj, nj = events[j]
            if kj == "enter":
                if nj in EPOLL and phase == "after":
                    marks["end"] = tj
                    ok = True
                    break
                seen[(phase, NAMES.get(nj, str(nj)))] += 1
                if j + 1 < n and events[j + 1][1] == "exit" and events[j + 1][2] == nj:
                    spent[(phase, NAMES.get(nj, str(nj)))] += events[j + 1][0] - tj
                if nj in WRITES and phase == "request":
                    marks["sent"] = tj
                    phase = "backend"
                elif nj in WRITES and phase == "answer":
                    marks["answered"] = tj
                    phase = "after"
            elif nj in EPOLL and phase == "backend" and events[j - 1][1] == "enter":
                marks["arrived"] = tj
                phase = "answer"
            j += 1
        if ok:
            cycles += 1
            phases["request"].append(marks["sent"] - start)
            phases["backend"].append(marks["arrived"] - marks["sent"])
            phases["answer"].append(marks["answered"] - marks["arrived"])
            phases["after"].append(marks["end"] - marks["answered"])
            for (p, name), c in seen.items():
                calls[p][name] += c
            for (p, name), d in spent.items():
                inside[p][name] += d
        i = j

def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1e6 if values else 0.0

print("requests: %d" % cycles)
for p in ("request", "backend", "answer", "after"):
    per = ", ".join("%s %.2f (%.1f us)" % (k, v / max(cycles, 1), inside[p][k] * 1e6 / max(cycles, 1))
                    for k, v in calls[p].most_common())
    print("%-8s p50 %7.1f us  p90 %7.1f us  calls: %s" % (p, pct(phases[p], 0.5), pct(phases[p], 0.9), per))
