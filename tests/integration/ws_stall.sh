#!/bin/sh
# ws_stall: the server stops reading and writing after 100 messages on
# each connection (no pongs). With ping_interval = 1s and pong_wait = 2s the
# source declares the connection dead within pong_wait + 1 s of the stall,
# reconnects with replay_from, and in the end every position arrived.
. tests/lib.sh
. tests/integration/ws_lib.inc

N=300
ws_plugins
ts_start --companies 5 --users 5 --flags 2 --messages $N --stall-after 100
cat >"$T/f.ini" <<EOF
$(ws_ini_head)

[source.ds]
plugin = websocket
api_url = http://127.0.0.1:$TS_PORT
api_key = test-key
ping_interval = 1s
pong_wait = 2s
reconnect_min = 100ms
bulk_rate = 0

[sink.out]
plugin = file
path = $T/out.jsonl

[route.main]
from = ds
to = out
EOF
ferry_start "$T/f.ini"
WAIT_S=30 wait_for ws_jsonl_positions "$T/out.jsonl" $N ||
    fail "positions missing; log: $(tail -n 20 "$FERRY_LOG")"
ws_alive
ferry_stop

python3 - "$T/ts.log" "$FERRY_LOG" <<'PY' || exit 1
import calendar, json, re, sys, time
ev = [json.loads(l) for l in open(sys.argv[1])]
stalls = [e["t_ms"] for e in ev if e["event"] == "stall"]
dead = []
for line in open(sys.argv[2]):
    if "no pong within 2s: connection dead" in line:
        ts = line.split()[0]  # 2026-11-28T10:00:00.123Z
        sec = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
        dead.append(sec * 1000 + int(ts[20:23]))
if len(stalls) < 2:
    print("FAIL: %d stalls" % len(stalls)); sys.exit(1)
for s in stalls[:-1]:
    # The last stall may be after the final message: not waited for.
    later = [d - s for d in dead if d >= s]
    if not later or later[0] > 3000:
        print("FAIL: stall at %d detected after %r ms" % (s, later[:1]))
        sys.exit(1)
    print("stall detected after %d ms" % later[0])
PY
grep -q "disconnected from .*(keepalive timeout)" "$FERRY_LOG" ||
    fail "no keepalive-timeout disconnect line"
echo "PASS ws_stall"
