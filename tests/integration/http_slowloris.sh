#!/bin/sh
# http_slowloris: 200 idle or slow connections to the operations HTTP
# server (half of them silent after connecting, half sending a request
# one header byte a second and never finishing it) do not stop /ready
# answering another client within 100 ms, for 12 s, past the server's
# header deadline; the held connections are then closed by the server.
. tests/lib.sh

PORT=$(free_port)
# 3,000 messages at 100 a second keep the source running for the test.
python3 - "$T/in.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for n in range(3000):
        f.write(json.dumps({"entity_type": "rulesengine.Company",
                            "entity_id": "c%d" % n, "message_type": "full",
                            "data": {"id": "c%d" % n}}) + "\n")
PY
cat >"$T/ferry.ini" <<EOF
[ferry]
plugin_dir = $(plugin_dir)
http_listen = 127.0.0.1:$PORT
metrics_interval = 0

[source.in]
plugin = file
path = $T/in.jsonl
rate = 100

[sink.out]
plugin = file
path = $T/out.jsonl

[route.all]
from = in
to = out
EOF
"$FERRY" run -c "$T/ferry.ini" 2>"$T/log" &
F=$!
CLEANUP_PIDS="$CLEANUP_PIDS $F"
wait_for curl -s -o /dev/null "http://127.0.0.1:$PORT/health" ||
    { cat "$T/log"; fail "no HTTP server"; }

python3 - "$PORT" <<'PY' || { tail "$T/log"; fail "slowloris"; }
import socket, sys, time

port = int(sys.argv[1])
held = []
for i in range(200):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if i % 2:
        s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n")
    held.append(s)

def ready_ms():
    t0 = time.monotonic()
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.close()
    ms = (time.monotonic() - t0) * 1000
    status = data.split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 503") or \
        status.startswith(b"HTTP/1.1 200"), data[:200]
    return ms

worst = 0.0
n = 0
t_end = time.monotonic() + 12
tick = 0
while time.monotonic() < t_end:
    # The slow half sends one more header byte a second.
    if tick % 10 == 0:
        for s in held[1::2]:
            try:
                s.sendall(b"X")
            except OSError:
                pass
    ms = ready_ms()
    worst = max(worst, ms)
    n += 1
    if ms > 100:
        print("FAIL: /ready took %.1f ms (probe %d)" % (ms, n))
        sys.exit(1)
    tick += 1
    time.sleep(0.1)

# The server closed the held connections at its deadlines.
closed = 0
for s in held:
    s.settimeout(0.05)
    try:
        if s.recv(1) == b"":
            closed += 1
    except socket.timeout:
        pass
    except OSError:
        closed += 1
if closed < 190:
    print("FAIL: only %d of 200 held connections were closed" % closed)
    sys.exit(1)
print("ok: %d probes, worst %.1f ms, %d held connections closed" %
      (n, worst, closed))
PY
kill -TERM "$F"
wait "$F" || fail "ferry exited $?"
