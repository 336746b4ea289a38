#!/bin/sh
# ws_disconnect: the server drops the connection (no close frame) every 700
# stream messages; the source redials and resumes with replay_from = the
# newest position it received, so the sink_file output holds every stream
# position exactly once, and per entity in increasing order.
. tests/lib.sh
. tests/integration/ws_lib.inc

N=5000
ws_plugins
ts_start --seed 3 --companies 50 --users 50 --flags 3 --messages $N \
    --disconnect-every 700
cat >"$T/f.ini" <<EOF
$(ws_ini_head)

[source.ds]
plugin = websocket
api_url = http://127.0.0.1:$TS_PORT
api_key = test-key
bulk_rate = 0
reconnect_min = 50ms

[sink.out]
plugin = file
path = $T/out.jsonl

[route.main]
from = ds
to = out
workers = 4
batch_size = 50
EOF
ferry_start "$T/f.ini"
WAIT_S=40 wait_for ws_jsonl_positions "$T/out.jsonl" $N ||
    fail "stream positions missing; log: $(tail -n 20 "$FERRY_LOG")"
ws_alive
ferry_stop
ws_log_has "(connection lost)" || fail "no disconnect logged"

python3 - "$T/ts.log" "$T/out.jsonl" "$N" "$WS_BASE" <<'PY' || exit 1
import json, sys
ts_log, out, n, base = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)
ev = [json.loads(l) for l in open(ts_log)]
conns = [e for e in ev if e["event"] == "connect"]
drops = [e for e in ev if e["event"] == "drop"]
if len(conns) < n // 700 + 1 or len(drops) < n // 700:
    fail("%d connections, %d drops" % (len(conns), len(drops)))
# Every connection subscribes Companies, Users, Flags with one replay_from;
# every connection after the first carries one.
byconn = {}
for e in ev:
    if e["event"] == "request":
        byconn.setdefault(e["conn"], []).append(e["data"])
first = min(byconn)
for c, rs in sorted(byconn.items()):
    types = [r["entity_type"] for r in rs]
    if types != ["rulesengine.Companies", "rulesengine.Users",
                 "rulesengine.Flags"]:
        fail("conn %d subscription order %r" % (c, types))
    rf = set(r.get("replay_from") for r in rs)
    if len(rf) != 1:
        fail("conn %d: different replay_from %r" % (c, rf))
    if c != first and None in rf:
        fail("conn %d resubscribed without replay_from" % c)
stream = []
for l in open(out):
    o = json.loads(l)
    if o["stream_id"]:
        stream.append(((o["entity_type"], o["entity_id"]),
                       int(o["stream_id"].split("-")[0]) - base))
pos = [p for _, p in stream]
if sorted(pos) != list(range(1, n + 1)):
    dup = len(pos) - len(set(pos))
    missing = [i for i in range(1, n + 1) if i not in set(pos)]
    fail("%d duplicates, missing %r" % (dup, missing[:10]))
last = {}
for k, p in stream:
    if last.get(k, 0) > p:
        fail("entity %r: position %d after %d" % (k, p, last[k]))
    last[k] = p
print("ok: %d stream lines for %d positions, %d connections" %
      (len(stream), n, len(conns)))
PY
echo "PASS ws_disconnect"
