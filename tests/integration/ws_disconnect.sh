#!/bin/sh
# ws_disconnect: the server drops the connection (no close frame) every 700
# stream messages; the source redials and resumes with replay_from, and no
# stream position is missing from the sink_file output. Per entity, the
# first occurrences of positions are in increasing order (a replay may
# repeat a suffix, never reorder) and the entity's last line is its newest
# position.
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
pos = set(p for _, p in stream)
missing = [i for i in range(1, n + 1) if i not in pos]
if missing:
    fail("missing positions %r" % missing[:10])
firsts, seen, last = {}, set(), {}
for k, p in stream:
    if p not in seen:
        seen.add(p)
        if firsts.get(k, 0) > p:
            fail("entity %r: position %d after %d" % (k, p, firsts[k]))
        firsts[k] = p
    last[k] = p
for k, p in last.items():
    if p != firsts[k]:
        fail("entity %r ends at %d, newest is %d" % (k, p, firsts[k]))
print("ok: %d stream lines for %d positions, %d connections" %
      (len(stream), n, len(conns)))
PY
echo "PASS ws_disconnect"
