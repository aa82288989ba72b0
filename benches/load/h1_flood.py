#!/usr/bin/env python3
"""An HTTP/1.1 flood for memory measurements (rel21b; BENCHMARKS.md "Session 21: HTTP/1 memory").

Plain sockets, no library: N connections to esgate's data listener, each doing what MODE says,
then holding (stalled, reading nothing) for HOLD seconds while the caller samples esgate's
resident memory (`/proc/PID/status`). Exits after HOLD, closing every connection.

  body:     POST PATH with `content-length: ANNOUNCED` (and `authorization: Bearer SECRET`
            unless SECRET is "-"), then BYTES of the body in pieces of CHUNK bytes, GAP
            seconds apart on each connection (GAP 0: written at once, as far as the socket
            takes it without blocking); then nothing more.
  head:     a request head of BYTES bytes that never ends (one long header, sent in pieces of
            CHUNK bytes GAP seconds apart): what a client with no credential holds.
  pipeline: BYTES of small GET requests written back to back (CHUNK bytes each), their
            answers never read.
  download: GET PATH (a large answer), its answer never read.

python3 h1_flood.py MODE PORT SECRET N [BYTES] [CHUNK] [GAP] [ANNOUNCED] [PATH] [HOLD]
Prints the connections by what they got (a status, "open": nothing yet, "closed") when the
sends are done and at HOLD's end.
"""
import socket, sys, time

mode, port, secret, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
size = int(sys.argv[5]) if len(sys.argv) > 5 else 1 << 20
chunk = int(sys.argv[6]) if len(sys.argv) > 6 else 1 << 20
gap = float(sys.argv[7]) if len(sys.argv) > 7 else 0.0
announced = int(sys.argv[8]) if len(sys.argv) > 8 else 10_000_000
path = sys.argv[9] if len(sys.argv) > 9 else "/logs-a/_search"
hold = float(sys.argv[10]) if len(sys.argv) > 10 else 10.0
auth = "" if secret == "-" else "authorization: Bearer %s\r\n" % secret


def request_bytes():
    """What each connection sends, as a list of pieces (sent GAP apart)."""
    if mode == "body":
        head = (
            "POST %s HTTP/1.1\r\nhost: x\r\n%scontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            % (path, auth, announced)
        ).encode()
        body = b" " * min(size, announced - 1)
        if gap == 0:
            return [head + body]
        return [head] + [body[i : i + chunk] for i in range(0, len(body), chunk)]
    if mode == "head":
        head = ("GET %s HTTP/1.1\r\nhost: x\r\n%sx-long: " % (path, auth)).encode()
        head += b"a" * max(0, size - len(head))
        if gap == 0:
            return [head]
        return [head[i : i + chunk] for i in range(0, len(head), chunk)]
    if mode == "pipeline":
        one = ("GET %s HTTP/1.1\r\nhost: x\r\n%s" % (path, auth)).encode()
        one += b"x-pad: " + b"p" * max(0, chunk - len(one) - 11) + b"\r\n\r\n"
        return [one * max(1, size // len(one))]
    if mode == "download":
        return [("GET %s HTTP/1.1\r\nhost: x\r\n%s\r\n" % (path, auth)).encode()]
    sys.exit("MODE: body, head, pipeline or download")


pieces = request_bytes()
socks = []
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port))
    except OSError as e:
        print("connection %d: %s" % (i, e), flush=True)
        break
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    socks.append([s, 0, 0])  # socket, piece, offset in it


def send_round(deadline):
    """Writes what each connection may write now (its next piece, as far as the socket takes it)."""
    busy = False
    for entry in socks:
        s, piece, offset = entry
        if s is None or piece >= len(pieces):
            continue
        data = pieces[piece]
        try:
            while offset < len(data) and time.time() < deadline:
                offset += s.send(data[offset : offset + (1 << 20)])
        except BlockingIOError:
            pass
        except OSError:
            entry[0] = None
            continue
        if offset >= len(data):
            entry[1], entry[2] = piece + 1, 0
        else:
            entry[2] = offset
        busy = busy or entry[1] < len(pieces)
    return busy


start = time.time()
if gap == 0:
    # Everything at once: a few rounds until the sockets take no more.
    for _ in range(5):
        if not send_round(time.time() + 2):
            break
        time.sleep(0.2)
else:
    while send_round(time.time() + 5):
        time.sleep(gap)


def answers():
    """The connections by what they got: an answer's status, "open" (nothing yet) or "closed"."""
    seen = {}
    for entry in socks:
        s = entry[0]
        what = "closed"
        if s is not None:
            try:
                data = s.recv(12, socket.MSG_PEEK)
                if data.startswith(b"HTTP/1.1 "):
                    what = data[9:12].decode()
                elif data:
                    what = "bytes"
            except BlockingIOError:
                what = "open"
            except OSError:
                pass
        seen[what] = seen.get(what, 0) + 1
    return " ".join("%s %d" % kv for kv in sorted(seen.items()))


print("sent in %.1f s: %s" % (time.time() - start, answers()), flush=True)
time.sleep(hold)
print("after %.0f s: %s" % (hold, answers()), flush=True)
