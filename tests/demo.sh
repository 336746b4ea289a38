#!/bin/sh
# make demo: the main job on loopback. Starts a throwaway redis-server and
# the bundled datastream test server on free ports, runs ferry with
# etc/demo.ini, shows a progress line, then prints what reached Redis and
# stops everything it started.
#
#   DEMO_MESSAGES (default 20000), DEMO_COMPANIES (2000), DEMO_USERS (2000),
#   DEMO_RATE (messages/s the server streams; default 5000)
set -u
: "${BUILD:=build}"
: "${DEMO_MESSAGES:=20000}"
: "${DEMO_COMPANIES:=2000}"
: "${DEMO_USERS:=2000}"
: "${DEMO_RATE:=5000}"
FERRY="$BUILD/ferry"
TESTSERVER="$BUILD/tests/testserver"
. tests/lib.sh

say() { printf '%s\n' "$*"; }

command -v redis-server >/dev/null || fail "redis-server is missing: run make deps"
start_redis --appendonly no
DEMO_REDIS_PORT=$REDIS_PORT
DEMO_SERVER_PORT=$(free_port)
DEMO_HTTP_PORT=$(free_port)
DEMO_CACHE_VERSION=c0ffee01
export DEMO_REDIS_PORT DEMO_SERVER_PORT DEMO_HTTP_PORT DEMO_CACHE_VERSION

"$TESTSERVER" --port "$DEMO_SERVER_PORT" --ready-file "$T/ready" \
    --seed 7 --base-ms now --companies "$DEMO_COMPANIES" --users "$DEMO_USERS" --flags 20 \
    --messages "$DEMO_MESSAGES" --rate "$DEMO_RATE" \
    --cache-version "$DEMO_CACHE_VERSION" --expect "$T/expect.json" \
    >"$T/server.log" 2>&1 &
CLEANUP_PIDS="$CLEANUP_PIDS $!"
wait_for test -s "$T/ready" || { cat "$T/server.log"; fail "test server did not start"; }

say "demo: redis-server on 127.0.0.1:$DEMO_REDIS_PORT, datastream test server on 127.0.0.1:$DEMO_SERVER_PORT"
say "demo: $DEMO_COMPANIES companies and $DEMO_USERS users to load over REST, then $DEMO_MESSAGES stream messages at $DEMO_RATE/s"
say "demo: ferry run -c etc/demo.ini (log in $T/ferry.log; /metrics on http://127.0.0.1:$DEMO_HTTP_PORT)"

FERRY_PLUGIN_DIR="$PWD/$BUILD/plugins" DEMO_METRICS_INTERVAL=0 \
    "$FERRY" run -c etc/demo.ini >"$T/ferry.log" 2>&1 &
FERRY_PID=$!
CLEANUP_PIDS="$CLEANUP_PIDS $FERRY_PID"

metric() {
    curl -s "http://127.0.0.1:$DEMO_HTTP_PORT/metrics" 2>/dev/null |
        awk -v n="$1" '$1 ~ "^"n"({|$)" {s += $2} END {printf "%.0f", s}'
}
lag() {
    curl -s "http://127.0.0.1:$DEMO_HTTP_PORT/metrics" 2>/dev/null |
        awk '$1 ~ /^ferry_replication_lag_seconds/ {print $2; exit}'
}

start=$(date +%s)
last=0
done=0
while [ $(( $(date +%s) - start )) -lt 120 ]; do
    kill -0 "$FERRY_PID" 2>/dev/null || { cat "$T/ferry.log"; fail "ferry exited"; }
    applied=$(metric ferry_messages_applied_total)
    applied=${applied:-0}
    rate=$(( applied - last ))
    last=$applied
    printf 'demo: applied %8s messages  %7s msg/s  lag %6ss  ready %s\n' \
        "$applied" "$rate" "$(lag)" \
        "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$DEMO_HTTP_PORT/ready")"
    if python3 tests/support/statecheck.py --port "$DEMO_REDIS_PORT" \
        --expect "$T/expect.json" --version "$DEMO_CACHE_VERSION" >/dev/null 2>&1; then
        done=1
        break
    fi
    sleep 1
done
[ $done = 1 ] || {
    python3 tests/support/statecheck.py --port "$DEMO_REDIS_PORT" \
        --expect "$T/expect.json" --version "$DEMO_CACHE_VERSION"
    tail -20 "$T/ferry.log"
    fail "Redis did not reach the expected state within 120 s"
}

kill -TERM "$FERRY_PID"
wait "$FERRY_PID"
rc=$?
keys=$(rcli --raw dbsize)
say ""
say "demo: summary"
say "  ferry exit code:        $rc"
say "  messages applied:       $last"
say "  keys in Redis:          $keys"
say "  Redis state:            equals the test server's expected final state"
lookup=$(rcli --raw --scan --pattern "schematic:company:$DEMO_CACHE_VERSION:domain:*" | head -1)
if [ -n "$lookup" ]; then
    id=$(rcli --raw get "$lookup")
    bare=$(printf '%s' "$id" | tr -d '"')
    say "  SDK-style read:"
    say "    GET $lookup"
    say "      -> $id   (the company id, as a JSON string)"
    say "    GET schematic:company:$DEMO_CACHE_VERSION:$bare"
    say "      -> $(rcli --raw get "schematic:company:$DEMO_CACHE_VERSION:$bare" | cut -c1-160)..."
fi
say "  ferry's last log lines:"
tail -4 "$T/ferry.log" | sed 's/^/    /'
exit $rc
