#!/bin/sh
# ws_redis: the whole pipeline against real servers: the bundled test
# server (initial state over REST, a stream with forced disconnects, a
# reload and malformed frames) -> source.websocket -> sink.redis. The final
# Redis state must equal the server's expected state exactly
# (tests/support/statecheck.py). Then ferry restarts and resumes from the
# replay cursor the sink stored: no second initial load.
. tests/lib.sh
. tests/integration/ws_lib.inc

N=3000
ws_plugins
[ -f "$WS_PLUGIN_DIR/sink_redis.so" ] || fail "sink_redis.so not built"
start_redis
ts_start --seed 21 --companies 300 --users 200 --flags 8 --messages $N \
    --disconnect-every 900 --reload-at 1500 --malformed-every 250 \
    --expect "$T/expect.json"
cat >"$T/f.ini" <<EOF
$(ws_ini_head)

[source.ds]
plugin = websocket
api_url = http://127.0.0.1:$TS_PORT
api_key = test-key
bulk_rate = 0
reconnect_min = 50ms

[sink.cache]
plugin = redis
address = 127.0.0.1:$REDIS_PORT
cache_version = c0ffee01

[route.main]
from = ds
to = cache
workers = 4
batch_size = 50
EOF
ferry_start "$T/f.ini"
# The reload's load must be over before the state can be final.
loads() { [ "$(grep -c '\[source.ds\] initial load complete' "$FERRY_LOG")" -ge 2 ]; }
WAIT_S=30 wait_for loads || fail "no second initial load (after the reload)"
python3 tests/support/statecheck.py --port "$REDIS_PORT" \
    --expect "$T/expect.json" --version c0ffee01 --wait 40 ||
    fail "Redis differs from the expected state; log: $(tail -n 20 "$FERRY_LOG")"
ws_alive
ferry_stop
ws_log_has "reload received" || fail "no reload"
[ "$(grep -c '\[source.ds\] initial load complete' "$FERRY_LOG")" -eq 2 ] ||
    fail "want two initial loads (start and reload)"
grep -q '"event": *"malformed"' "$T/ts.log" || fail "no malformed frame sent"

# A restart resumes from the stored cursor: replay_from, no initial load.
conns=$(grep -c '"event": *"connect"' "$T/ts.log")
ferry_start "$T/f.ini" "$T/ferry2.log"
WAIT_S=10 wait_for ws_log_has "subscribed to companies users flags (replay_from" \
    "$T/ferry2.log" || fail "no resume: $(tail -n 5 "$T/ferry2.log")"
sleep 1
ws_alive
ferry_stop
ws_log_has "\[source.ds\] initial load" "$T/ferry2.log" &&
    fail "a second start reloaded"
python3 tests/support/statecheck.py --port "$REDIS_PORT" \
    --expect "$T/expect.json" --version c0ffee01 --wait 5 ||
    fail "state changed after the restart"
[ "$(grep -c '"event": *"connect"' "$T/ts.log")" -gt "$conns" ] ||
    fail "the restart did not connect"
echo "PASS ws_redis"
