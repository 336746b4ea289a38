#!/bin/sh
# http_liveness: /health is a liveness probe (issue 11).
#
# 1. A worker wedged inside its sink's write() (tests/plugins/sink_wedge.c
#    blocks while a gate file exists) turns /health into 503 with the
#    watchdog's reason once the bound passes (FERRY_WATCHDOG_MS=1000, the
#    testing knob; the default is 60 s), and back to 200 when it returns.
# 2. The production pipeline, its cache complete, goes through a 10 s
#    datastream outage (the test server is killed and restarted on the
#    same port): /health and /ready answer 200 throughout, the body shows
#    the datastream disconnected, and the source reconnects afterwards.
. tests/lib.sh

H=$(free_port)
URL=http://127.0.0.1:$H
code() {
    curl -s -m 2 -o "$T/body" -w '%{http_code}' "$URL$1"
}

# ---- 1. a wedged worker ------------------------------------------------
mkdir -p "$T/plugins"
for p in "$(plugin_dir)"/*.so; do ln -sf "$p" "$T/plugins/"; done
case $BUILD in /*) B=$BUILD ;; *) B=$PWD/$BUILD ;; esac
ln -sf "$B/tests/plugins/sink_wedge.so" "$T/plugins/" ||
    fail "sink_wedge.so not built"
: >"$T/gate"
# 3,000 messages at 100 a second keep the source running for the test.
python3 - "$T/in.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for n in range(3000):
        f.write(json.dumps({"entity_type": "rulesengine.Company",
                            "entity_id": "c%d" % n, "message_type": "full",
                            "data": {"id": "c%d" % n}}) + "\n")
PY
cat >"$T/w.ini" <<EOF
[ferry]
plugin_dir = $T/plugins
http_listen = 127.0.0.1:$H
metrics_interval = 0

[source.in]
plugin = file
path = $T/in.jsonl
rate = 100

[sink.stuck]
plugin = wedge
gate = $T/gate

[route.all]
from = in
to = stuck
workers = 1
EOF
FERRY_WATCHDOG_MS=1000 "$FERRY" run -c "$T/w.ini" 2>"$T/w.log" &
F=$!
CLEANUP_PIDS="$CLEANUP_PIDS $F"
wait_for curl -s -o /dev/null "$URL/health" || fail "no HTTP server"
WAIT_S=10 wait_for sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' \
    $URL/health) = 503 ]" || { cat "$T/w.log"; fail "/health never 503"; }
[ "$(code /health)" = 503 ] || fail "/health not 503 on the next probe"
python3 - "$T/body" <<'PY' || fail "wedged /health body: $(cat "$T/body")"
import json, sys
b = json.load(open(sys.argv[1]))
assert b["status"] == "unhealthy", b
r = b["reason"]
assert r.startswith("route all worker 0: sink.stuck write() has not "
                    "returned for "), r
assert r.endswith("(watchdog bound 1 s)"), r
PY
grep -q "watchdog: route all worker 0: sink.stuck write()" "$T/w.log" ||
    fail "wedge not logged: $(cat "$T/w.log")"
rm -f "$T/gate"
WAIT_S=10 wait_for sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' \
    $URL/health) = 200 ]" || fail "/health did not recover"
kill -TERM "$F"
wait "$F" || fail "ferry exited $? after the wedge"

# ---- 2. a 10 s datastream outage ------------------------------------------
start_redis
start_testserver --seed 5 --companies 200 --users 100 --flags 3 \
    --messages 200 --rate 200
TS_PID=${CLEANUP_PIDS##* }
production_ini "$T/f.ini" "$H"
cat >>"$T/f.ini" <<INI
[source.datastream]
reconnect_min = 100ms
reconnect_max = 1s
INI
"$FERRY" run -c "$T/f.ini" 2>"$T/ferry.log" &
F=$!
CLEANUP_PIDS="$CLEANUP_PIDS $F"
WAIT_S=30 wait_for sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' \
    $URL/ready) = 200 ]" || { tail "$T/ferry.log"; fail "never ready"; }

# /debug carries the Go replicator's fields beside ferry's own, and only
# the policies that have a state (the breaker, not the backpressure one).
[ "$(code /debug)" = 200 ] || fail "/debug"
python3 - "$T/body" <<'PY' || fail "/debug body: $(cat "$T/body")"
import json, re, sys
b = json.load(open(sys.argv[1]))
r = b["replay"]
assert r["enabled"] is True, r
assert re.match(r"^\d+-\d+$", r["cursor"]), r
assert r["sources"]["datastream"]["cursor"] == r["cursor"], r
m = b["messages"]
assert m["processed"] > 0 and m["applied"] > 0 and m["dropped"] == 0, m
assert all(isinstance(m[k], int) for k in ("processed", "applied",
                                            "dropped")), m
assert b["breakers"] == {"breaker": "closed"}, b["breakers"]
assert b["role"] == "active", b
assert isinstance(b["writer_lock"], str) and b["writer_lock"], b
assert re.match(r"^\d{4}-\d\d-\d\dT", b["timestamp"]), b
PY

kill -TERM "$TS_PID"
t0=$(date +%s)
bad=0 n=0 seen_down=0
while [ $(( $(date +%s) - t0 )) -lt 10 ]; do
    h=$(code /health)
    grep -q '"datastream":"disconnected"' "$T/body" && seen_down=1
    r=$(code /ready)
    n=$((n + 1))
    if [ "$h" != 200 ] || [ "$r" != 200 ]; then
        bad=$((bad + 1))
        echo "outage probe $n: /health $h /ready $r: $(cat "$T/body")"
    fi
    sleep 0.2
done
[ "$bad" = 0 ] || fail "$bad of $n probes were not 200 during the outage"
[ "$seen_down" = 1 ] || fail "/health never showed the datastream down"
kill -0 "$F" || fail "ferry exited during the outage"

"$TESTSERVER" --port "$TS_PORT" --seed 5 --companies 200 --users 100 \
    --flags 3 --messages 200 --rate 200 >"$T/ts2.log" 2>&1 &
CLEANUP_PIDS="$CLEANUP_PIDS $!"
WAIT_S=20 wait_for sh -c "curl -s $URL/health |
    grep -q '\"datastream\":\"connected\"'" ||
    { tail "$T/ferry.log"; fail "the source did not reconnect"; }
[ "$(code /health)" = 200 ] && [ "$(code /ready)" = 200 ] ||
    fail "not 200 after the outage"
kill -TERM "$F"
wait "$F" || fail "ferry exited $?"
echo "ok: $n probes through a 10 s outage, all 200"
