#!/bin/sh
# End to end: the bundled datastream test server -> source_websocket ->
# sink_redis, with disconnects and a reload on the way.
# The final Redis state must equal the server's expected state; /ready
# answers 200 with the cache version; the load_complete marker, the
# cursor and the writer lock are where spec section 8 puts them; a second
# instance waits as standby and takes over when the first stops; a
# restart resumes from the cursor and is ready at once.
. tests/lib.sh
: "${STATECHECK:=tests/support/statecheck.py}"
case $BUILD in /*) PD=$BUILD/plugins ;; *) PD=$PWD/$BUILD/plugins ;; esac
[ -f "$STATECHECK" ] || fail "$STATECHECK is missing"
start_redis

"$TESTSERVER" --port 0 --ready-file "$T/ts.ready" --seed 3 \
    --companies 300 --users 150 --flags 15 --messages 4000 \
    --disconnect-every 1500 --reload-at 2500 \
    --expect "$T/expect.json" >"$T/ts.log" 2>&1 &
CLEANUP_PIDS="$CLEANUP_PIDS $!"
wait_for test -s "$T/ts.ready" || { cat "$T/ts.log"; fail "test server"; }
TS_PORT=$(cut -d' ' -f1 "$T/ts.ready")

# conf NAME HTTP_PORT: a production-shaped configuration.
conf() {
    cat >"$T/$1.ini" <<INI
[ferry]
plugin_dir = $PD
http_listen = 127.0.0.1:$2
metrics_interval = 0
[source.datastream]
plugin = websocket
api_key = test-key
api_url = http://127.0.0.1:$TS_PORT
bulk_rate = 200
[sink.cache]
plugin = redis
address = 127.0.0.1:$REDIS_PORT
cache_version = c0ffee01
lock_ttl = 1500ms
[route.companies]
from = datastream
match = company
to = cache
workers = 4
batch_size = 50
[route.users]
from = datastream
match = user
to = cache
workers = 4
batch_size = 50
[route.flags]
from = datastream
match = flags
to = cache
workers = 1
INI
}

H1=$(free_port)
H2=$(free_port)
conf a "$H1"
conf b "$H2"
"$FERRY" run -c "$T/a.ini" 2>"$T/a.log" &
A=$!
CLEANUP_PIDS="$CLEANUP_PIDS $A"
python3 "$STATECHECK" --port "$REDIS_PORT" --expect "$T/expect.json" \
    --wait 60 || { tail -30 "$T/a.log"; fail "final state differs"; }

curl -s "http://127.0.0.1:$H1/ready" >"$T/ready.json"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$H1/ready")
[ "$code" = 200 ] || { cat "$T/ready.json"; fail "/ready answered $code"; }
grep -q '"cache_version":"c0ffee01"' "$T/ready.json" || fail "cache_version"
grep -q '"redis":"connected"' "$T/ready.json" || fail "redis component"
curl -s "http://127.0.0.1:$H1/metrics" >"$T/metrics"
grep -q '^ferry_sink_operations_total{sink="cache",op="set"} [1-9]' \
    "$T/metrics" || fail "no set operations in /metrics"
grep -q '^ferry_sink_evicted_total{sink="cache",reason="load"}' \
    "$T/metrics" || fail "no eviction metric"
[ "$(rcli GET schematic:datastream:load_complete)" = c0ffee01 ] ||
    fail "load_complete marker"
rcli GET schematic:datastream:replay_cursor | grep -qE '^[0-9]+-[0-9]+$' ||
    fail "replay cursor"
grep -q "reload: replay cursor deleted" "$T/a.log" ||
    fail "the reload did not reach the sink"
holder=$(rcli GET schematic:datastream:writer_lock)
echo "$holder" | grep -qE -- '-[0-9]+-[0-9a-f]{32}$' ||
    fail "writer lock token '$holder'"

# A second instance waits as standby, not ready, until A stops.
"$FERRY" run -c "$T/b.ini" 2>"$T/b.log" &
B=$!
CLEANUP_PIDS="$CLEANUP_PIDS $B"
WAIT_S=10 wait_for grep -q "standby: writer lock held by $holder" "$T/b.log" ||
    { cat "$T/b.log"; fail "B is not standby"; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$H2/ready")
[ "$code" = 503 ] || fail "standby /ready answered $code"
curl -s "http://127.0.0.1:$H2/ready" | grep -q '"cache_version":"c0ffee01"' ||
    fail "standby /ready without cache_version"
kill -TERM $A
wait $A
rc=$?
[ $rc -eq 0 ] || { tail -20 "$T/a.log"; fail "A exited $rc on SIGTERM"; }
grep -q "writer lock released" "$T/a.log" || fail "A did not release the lock"

# B takes over, resumes from the cursor, and is ready from the marker.
WAIT_S=10 wait_for grep -q "writer lock acquired" "$T/b.log" ||
    { cat "$T/b.log"; fail "B did not take over"; }
WAIT_S=10 wait_for curl -sf "http://127.0.0.1:$H2/ready" ||
    fail "B not ready"
grep -q "resuming from position" "$T/b.log" ||
    { cat "$T/b.log"; fail "B did not resume from the cursor"; }
python3 "$STATECHECK" --port "$REDIS_PORT" --expect "$T/expect.json" \
    --wait 30 || { tail -30 "$T/b.log"; fail "state after takeover"; }
kill -TERM $B
wait $B
rc=$?
[ $rc -eq 0 ] || { tail -20 "$T/b.log"; fail "B exited $rc on SIGTERM"; }
[ -z "$(rcli GET schematic:datastream:writer_lock)" ] ||
    fail "writer lock left behind"
echo ok
