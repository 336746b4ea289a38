#!/bin/sh
# ws_handshake: the websocket source against the bundled test server:
# handshake headers, the subscription order, the initial load (LOAD_BEGIN,
# every company and user, LOAD_END, then the stream) and how every stream
# message kind maps to a ferry message (sink_file output).
. tests/lib.sh
. tests/integration/ws_lib.inc

N=400
ws_plugins
ts_start --seed 11 --companies 20 --users 10 --flags 4 --messages $N \
    --mix 40:40:20
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
workers = 2
EOF
ferry_start "$T/f.ini"
WAIT_S=20 wait_for ws_jsonl_positions "$T/out.jsonl" $N ||
    fail "not every stream position arrived; log: $(tail -n 20 "$FERRY_LOG")"
ws_alive
ferry_stop

ws_log_has "connected to ws://127.0.0.1:$TS_PORT/datastream and subscribed" ||
    fail "no 'connected ... subscribed' line"
ws_log_has "initial load complete: [0-9]* companies, [0-9]* users" ||
    fail "no initial-load line"
ws_log_has "test-key" && fail "the API key appears in the log"

python3 - "$T/ts.log" "$T/out.jsonl" "$N" "$WS_BASE" "$FERRY_LOG" <<'EOF' || exit 1
import json, re, sys
ts_log, out, n, base = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
flog = open(sys.argv[5]).read()
# The REST counts reflect the server's state when they were asked (the
# stream runs meanwhile): take them from the log.
counts = {m.group(2): int(m.group(1)) for m in
          re.finditer(r"initial load: (\d+) (companies|users) to load", flog)}
ev = [json.loads(l) for l in open(ts_log)]
def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)

# Headers of the (only) connection.
conns = [e for e in ev if e["event"] == "connect"]
if len(conns) != 1:
    fail("expected one connection, got %d" % len(conns))
h = conns[0]["headers"]
want = {"x-schematic-api-key": "valid",
        "x-schematic-datastream-mode": "replicator",
        "x-schematic-client": "ferry"}
for k, v in want.items():
    if h.get(k) != v:
        fail("header %s = %r, want %r (all: %r)" % (k, h.get(k), v, h))
if not h.get("x-schematic-client-version"):
    fail("no X-Schematic-Client-Version")

# Subscriptions: Companies, Users, Flags, action start, no replay_from (no
# cursor on a first start).
reqs = [e["data"] for e in ev if e["event"] == "request"]
types = [r.get("entity_type") for r in reqs]
if types != ["rulesengine.Companies", "rulesengine.Users", "rulesengine.Flags"]:
    fail("subscription order %r" % types)
for r in reqs:
    if r.get("action") != "start" or "replay_from" in r:
        fail("request %r" % r)

# The REST load: both counts, then every page.
rest = [e["path"] for e in ev if e["event"] == "rest"]
for p in ["/companies/count", "/users/count",
          "/companies?limit=100&offset=0", "/users?limit=100&offset=0"]:
    if p not in rest:
        fail("no REST request %s (got %r)" % (p, rest))

lines = [json.loads(l) for l in open(out)]
ops = [l["op"] for l in lines]
if ops.count("load_begin") != 1 or ops.count("load_end") != 1:
    fail("load_begin/load_end count: %r" % ops[:5])
b, e = ops.index("load_begin"), ops.index("load_end")
if b != 0:
    fail("load_begin is not first")
loaded = lines[b + 1:e]
if len(loaded) != counts["companies"] + counts["users"]:
    fail("%d loaded entities, want %r" % (len(loaded), counts))
for l in loaded:
    if l["op"] != "full" or l["stream_id"] is not None:
        fail("loaded entity %r" % l)
    if l["entity_type"] not in ("company", "user"):
        fail("loaded entity type %r" % l)
    if l["data"]["id"] != l["entity_id"] or l["keys"] != l["data"]["keys"]:
        fail("loaded entity id/keys %r" % l)
# Everything after LOAD_END: the flags snapshot and the stream, in order.
rest_lines = lines[e + 1:]
snaps = [l for l in rest_lines if l["op"] == "snapshot"]
if len(snaps) != 1 or snaps[0]["entity_type"] != "flags" or \
        not isinstance(snaps[0]["data"], list) or len(snaps[0]["data"]) != 4:
    fail("flags snapshot %r" % snaps)
stream = [l for l in rest_lines if l["stream_id"]]
pos = [int(l["stream_id"].split("-")[0]) - base for l in stream]
if sorted(set(pos)) != list(range(1, n + 1)):
    fail("stream positions incomplete")
kinds = set()
last = {}
for l, p in zip(stream, pos):
    et, op = l["entity_type"], l["op"]
    kinds.add((et, op))
    if et in ("company", "user"):
        if op not in ("full", "partial", "delete"):
            fail("op %r for %r" % (op, et))
        if not l["entity_id"]:
            fail("no entity_id %r" % l)
        if op in ("full", "delete") and l["data"].get("id") != l["entity_id"]:
            fail("entity_id %r != data.id" % l["entity_id"])
        if op == "full" and l["keys"] != l["data"].get("keys", {}):
            fail("keys %r != data.keys" % l["keys"])
    elif et == "flags":
        if op not in ("full", "delete"):
            fail("flag op %r" % op)
        key = l["data"].get("key") or l["data"].get("id")
        if l["entity_id"] != key.lower():
            fail("flag entity_id %r, key %r" % (l["entity_id"], key))
    else:
        fail("entity type %r" % et)
    k = (et, l["entity_id"])
    if last.get(k, 0) > p:
        fail("entity %r out of order" % (k,))
    last[k] = p
for want in [("company", "full"), ("company", "partial"), ("company", "delete"),
             ("user", "full"), ("user", "partial")]:
    if want not in kinds:
        fail("no %r in the stream (kinds %r)" % (want, sorted(kinds)))
print("ok: %d lines, kinds %s" % (len(lines), sorted(kinds)))
EOF
echo "PASS ws_handshake"
