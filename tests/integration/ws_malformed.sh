#!/bin/sh
# ws_malformed: the server inserts a malformed frame after every 40
# messages, cycling through every kind (invalid JSON, invalid UTF-8, binary,
# nesting too deep, partial without entity_id, entity_type of the wrong
# type, a 16 MB + 64 B frame). Each is counted under its reason in
# ferry_source_invalid_messages_total and in the closing summary line,
# none reaches the sink, and every valid message after them is applied.
. tests/lib.sh
. tests/integration/ws_lib.inc

N=1000
ws_plugins
ts_start --companies 5 --users 5 --flags 2 --messages $N \
    --malformed-every 40 --malformed-huge
HP=$(free_port)
WS_HTTP=127.0.0.1:$HP
cat >"$T/f.ini" <<EOF
$(ws_ini_head)

[source.ds]
plugin = websocket
api_url = http://127.0.0.1:$TS_PORT
api_key = test-key
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
curl -s "http://$WS_HTTP/metrics" >"$T/metrics.txt" || fail "no /metrics"
ferry_stop

python3 - "$T/ts.log" "$T/metrics.txt" "$FERRY_LOG" "$T/out.jsonl" <<'PY' || exit 1
import json, re, sys
def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)
ev = [json.loads(l) for l in open(sys.argv[1])]
# Server kind -> the source's reason label.
reason = {"invalid_json": "invalid_json", "invalid_utf8": "invalid_utf8",
          "binary": "binary", "too_deep": "too_deep",
          "missing_entity_id": "missing_entity_id",
          "wrong_type": "wrong_type", "huge": "too_large"}
want = {}
for e in ev:
    if e["event"] == "malformed":
        r = reason[e["kind"]]
        want[r] = want.get(r, 0) + 1
if set(want) != set(reason.values()):
    fail("the server did not send every kind: %r" % want)
got = {}
for line in open(sys.argv[2]):
    m = re.match(r'ferry_source_invalid_messages_total\{(.*)\} (\S+)', line)
    if m and 'source="ds"' in m.group(1):
        r = re.search(r'reason="([^"]*)"', m.group(1)).group(1)
        got[r] = int(float(m.group(2)))
got = {k: v for k, v in got.items() if v}
if got != want:
    fail("metrics %r, server sent %r" % (got, want))
flog = open(sys.argv[3]).read()
m = re.search(r"stopped: \d+ messages, (\d+) invalid \(([^)]*)\)", flog)
if not m or int(m.group(1)) != sum(want.values()):
    fail("summary line: %r" % (m.group(0) if m else None))
summ = dict(kv.split("=") for kv in m.group(2).split())
if {k: int(v) for k, v in summ.items()} != want:
    fail("summary %r, want %r" % (summ, want))
if "invalid message skipped (" not in flog:
    fail("no invalid-message log line")
for line in open(sys.argv[4]):
    if "malformed" in line:
        fail("a malformed frame reached the sink: %s" % line[:200])
print("ok: %r" % want)
PY
echo "PASS ws_malformed"
