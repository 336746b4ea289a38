#!/bin/sh
# http_promcheck: a running ferry (file source paced to stay up, file sink)
# serves /health, /ready, /debug and a /metrics page that the strict
# checker tests/support/promcheck.py accepts, with the metric names of
# interface.md that this pipeline produces. ferry refuses to start, with
# the reason, when http_listen's port is taken.
. tests/lib.sh

PC="python3 tests/support/promcheck.py"
PORT=$(free_port)

# 2,000 frames for 50 companies and 50 users, one invalid line; at 200
# frames a second ferry runs for about ten seconds unless stopped.
python3 - "$T/in.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for n in range(1, 2001):
        kind = ["rulesengine.Company", "rulesengine.User"][n % 2]
        eid = "e_%d" % (n % 100)
        f.write(json.dumps({"data": {"id": eid, "keys": {"id": eid}, "n": n},
                            "entity_id": eid, "entity_type": kind,
                            "message_type": "full",
                            "stream_id": "%d-0" % n}) + "\n")
        if n == 3:
            f.write("not json\n")
PY

config() {
    cat >"$T/ferry.ini" <<EOF
[ferry]
plugin_dir = $PWD/$BUILD/plugins
http_listen = 127.0.0.1:$1
metrics_interval = 0

[source.replay]
plugin = file
path = $T/in.jsonl
rate = 200

[sink.out]
plugin = file
path = $T/out.jsonl

[route.all]
from = replay
to = out
workers = 2
EOF
}

get() {
    curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' \
        "http://127.0.0.1:$PORT$1"
}

header() {
    tr -d '\r' <"$T/headers" | awk -v h="$1" \
        'tolower($0) ~ "^" h ":" { sub(/^[^:]*: */, ""); print }'
}

config "$PORT"
"$FERRY" run -c "$T/ferry.ini" 2>"$T/log" &
FERRY_PID=$!
CLEANUP_PIDS="$CLEANUP_PIDS $FERRY_PID"

wait_for curl -sf "http://127.0.0.1:$PORT/health" ||
    { cat "$T/log"; fail "/health never answered 200"; }
# Wait until messages were applied, so the histogram has observations.
applied() {
    curl -s "http://127.0.0.1:$PORT/metrics" |
        grep -q '^ferry_apply_latency_seconds_count{route="all"} [1-9]'
}
wait_for applied || fail "no message applied"

# ---- /metrics --------------------------------------------------------------
code=$(get /metrics)
[ "$code" = 200 ] || fail "/metrics answered $code"
ct=$(header content-type)
[ "$ct" = "text/plain; version=0.0.4; charset=utf-8" ] ||
    fail "/metrics content type '$ct'"
cp "$T/body" "$T/metrics.txt"
$PC "$T/metrics.txt" \
    --require ferry_source_messages_total \
    ferry_source_invalid_messages_total ferry_channel_depth \
    ferry_channel_capacity ferry_messages_dropped_total \
    ferry_messages_coalesced_total ferry_sink_batches_total \
    ferry_sink_operations_total ferry_apply_latency_seconds \
    ferry_replication_lag_seconds \
    --require-samples ferry_source_messages_total \
    ferry_source_invalid_messages_total ferry_sink_batches_total \
    ferry_apply_latency_seconds ferry_channel_capacity ||
    fail "/metrics is not valid exposition text (saved in $T/metrics.txt)"
grep -q '^ferry_source_invalid_messages_total{source="replay",[^}]*} 1$' \
    "$T/metrics.txt" || fail "the invalid frame was not counted"

# ---- /health, /ready, /debug -----------------------------------------------
code=$(get /health)
[ "$code" = 200 ] || fail "/health answered $code"
[ "$(header content-type)" = "application/json" ] || fail "/health type"
python3 - "$T/body" <<'PY' || fail "/health body"
import json, re, sys
b = json.load(open(sys.argv[1]))
assert list(b) == ["status", "ready", "connected", "components",
                   "cache_version", "timestamp"], b
assert b["status"] == "healthy" and b["connected"] is True, b
assert isinstance(b["cache_version"], str), b
assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$",
                b["timestamp"]), b
PY

# A file sink never reports readiness, so the process is not ready; the
# 503 body still carries ready and cache_version.
code=$(get /ready)
[ "$code" = 503 ] || fail "/ready answered $code"
python3 - "$T/body" <<'PY' || fail "/ready body"
import json, sys
b = json.load(open(sys.argv[1]))
assert b["ready"] is False and "cache_version" in b, b
PY

code=$(get /debug)
[ "$code" = 200 ] || fail "/debug answered $code"
python3 - "$T/body" <<'PY' || fail "/debug body"
import json, sys
b = json.load(open(sys.argv[1]))
for k in ("replay", "channels", "breakers", "writer_lock", "info",
          "timestamp", "ready", "cache_version"):
    assert k in b, (k, b)
assert "all" in json.dumps(b["channels"]), b
# The Go replicator's fields; the file sink records replay positions.
assert b["replay"]["enabled"] is True, b["replay"]
assert b["replay"]["sources"]["replay"]["cursor"] == b["replay"]["cursor"]
for k in ("processed", "applied", "dropped"):
    assert isinstance(b["messages"][k], int), b["messages"]
assert b["messages"]["processed"] > 0, b["messages"]
assert b["breakers"] == {} and b["role"] == "active", b
PY

code=$(get /nope)
[ "$code" = 404 ] || fail "/nope answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
    "http://127.0.0.1:$PORT/health")
[ "$code" = 405 ] || fail "POST /health answered $code"

# ---- shutdown --------------------------------------------------------------
kill -TERM "$FERRY_PID"
wait "$FERRY_PID"
rc=$?
[ "$rc" = 0 ] || { cat "$T/log"; fail "ferry exited $rc after SIGTERM"; }
curl -s -o /dev/null "http://127.0.0.1:$PORT/health" &&
    fail "still answering after exit"

# ---- port in use -----------------------------------------------------------
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
open(sys.argv[2], "w").close()
time.sleep(60)' "$PORT" "$T/held" &
CLEANUP_PIDS="$CLEANUP_PIDS $!"
wait_for test -f "$T/held" || fail "could not hold the port"
"$FERRY" run -c "$T/ferry.ini" 2>"$T/log2"
rc=$?
[ "$rc" = 1 ] || { cat "$T/log2"; fail "port in use: exit $rc, want 1"; }
grep -q "http_listen: cannot bind 127.0.0.1:$PORT: Address already in use" \
    "$T/log2" || { cat "$T/log2"; fail "port in use: no reason logged"; }

echo "ok"
