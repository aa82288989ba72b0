#!/usr/bin/env python3
"""An HTTP/2 flood for memory measurements (rel20b; BENCHMARKS.md "Session 20: HTTP/2 memory").

Raw frames over plain sockets, no library: N connections to esgate's data listener, each
opening STREAMS streams, then holding them open (stalled) for HOLD seconds while the caller
reads esgate's resident memory.

  upload:   POST PATH with `content-length: ANNOUNCED`, then as much of the body as the server's
            windows let in at once (at most BYTES a stream), and nothing more: the read path.
  download: GET PATH, announcing windows of 2^31-1 (stream and connection), reading nothing:
            the write path (what esgate queues of the answers).
  upload1:  the same upload over HTTP/1.1 (one request a connection, STREAMS ignored): BYTES of
            the body written as far as the sockets take them without blocking.

python3 h2_flood.py MODE PORT SECRET N STREAMS [BYTES] [ANNOUNCED] [PATH] [HOLD]
Prints the windows the server announced and, every second of HOLD, nothing: the caller
samples /proc/PID/status. Exits (closing every connection) after HOLD.
"""
import socket, struct, sys, time

mode, port, secret, n, streams = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
per_stream = int(sys.argv[6]) if len(sys.argv) > 6 else 1 << 20
announced = int(sys.argv[7]) if len(sys.argv) > 7 else 10_000_000
path = sys.argv[8] if len(sys.argv) > 8 else "/logs-a/_search"
hold = float(sys.argv[9]) if len(sys.argv) > 9 else 20.0
MAX = (1 << 31) - 1


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hstr(s):
    b = s.encode()
    n = len(b)
    if n < 127:
        return bytes([n]) + b
    out = bytearray([127])
    n -= 127
    while n >= 128:
        out.append((n % 128) | 0x80)
        n //= 128
    out.append(n)
    return bytes(out) + b


def header(name, value):
    return b"\x00" + hstr(name) + hstr(value)


def read_frames(buf):
    frames = []
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + length:
            break
        frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & MAX, bytes(buf[9 : 9 + length])))
        del buf[: 9 + length]
    return frames


def block(method):
    b = header(":method", method) + header(":scheme", "http") + header(":path", path) + header(":authority", "x")
    b += header("authorization", "Bearer " + secret)
    if method == "POST":
        b += header("content-type", "application/json") + header("content-length", str(announced))
    return b


socks = []
windows = None
filler = b" " * 16384
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if mode == "upload1":
        head = "POST %s HTTP/1.1\r\nhost: x\r\nauthorization: Bearer %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (path, secret, announced)
        data = head.encode() + b" " * min(per_stream, announced - 1)
        s.setblocking(False)
        sent = 0
        deadline = time.time() + 1
        while sent < len(data) and time.time() < deadline:
            try:
                sent += s.send(data[sent:])
            except BlockingIOError:
                time.sleep(0.01)
        socks.append(s)
        continue
    settings = b""
    if mode == "download":
        settings = struct.pack(">HI", 4, MAX)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, settings))
    if mode == "download":
        s.sendall(frame(8, 0, 0, struct.pack(">I", MAX - 65535)))
    # The server's SETTINGS and its connection WINDOW_UPDATE.
    buf = bytearray()
    stream_window, conn_window, max_frame, got, raised = 65535, 65535, 16384, False, False
    deadline = time.time() + 5
    s.settimeout(0.2)
    while time.time() < deadline:
        try:
            data = s.recv(65536)
        except socket.timeout:
            if got:
                break
            continue
        if not data:
            sys.exit("connection %d closed during the handshake" % i)
        buf += data
        for kind, flags, sid, payload in read_frames(buf):
            if kind == 4 and not flags & 1:
                got = True
                for j in range(0, len(payload), 6):
                    ident, value = struct.unpack(">HI", payload[j : j + 6])
                    if ident == 4:
                        stream_window = value
                    elif ident == 5:
                        max_frame = value
            elif kind == 8 and sid == 0:
                conn_window += int.from_bytes(payload, "big") & MAX
                raised = True
        # hyper sends its SETTINGS and the connection's WINDOW_UPDATE at once: no wait for
        # more (every connection must be in within `listen.header_timeout`).
        if got and raised:
            break
    if windows is None:
        windows = (stream_window, conn_window, max_frame)
        print("server windows: stream %d, connection %d, max frame %d" % windows, flush=True)
    out = [frame(4, 1, 0)]
    left = conn_window
    for k in range(streams):
        sid = 2 * k + 1
        if mode == "download":
            out.append(frame(1, 0x5, sid, block("GET")))
            continue
        out.append(frame(1, 0x4, sid, block("POST")))
        room = min(per_stream, stream_window, left, announced - 1)
        left -= room
        while room > 0:
            m = min(room, max_frame, len(filler))
            out.append(frame(0, 0, sid, filler[:m]))
            room -= m
    s.settimeout(None)
    s.sendall(b"".join(out))
    s.setblocking(False)
    socks.append(s)
    if i % 200 == 199:
        print("%d connections" % (i + 1), flush=True)

print("all %d connections sent; holding %.0f s" % (n, hold), flush=True)
end = time.time() + hold
while time.time() < end:
    if mode.startswith("upload"):
        # Drain what the server writes (answers, PINGs): only the download flood reads nothing.
        for s in socks:
            try:
                while s.recv(65536):
                    pass
            except (BlockingIOError, ConnectionError):
                pass
    time.sleep(0.5)
print("done", flush=True)
