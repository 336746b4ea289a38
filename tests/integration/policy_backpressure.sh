#!/bin/sh
# policy_backpressure: the backpressure policy's lossy and coalescing
# modes, all in one ferry process.
#
# drop_newest, drop_oldest: a source that emits 3,000 messages (and a
# LOAD_END barrier after every 100) as fast as it can into a channel of 8
# drained by a sink that sleeps 2 ms per batch of 4. Every message either
# reaches the sink or is counted in ferry_messages_dropped_total{route,
# reason=<mode>}: lines in the sink's output + dropped == emitted, with
# both sides well above zero, the other reason at 0, no barrier dropped,
# order kept; drop_newest keeps the first message, drop_oldest the last.
#
# coalesce: the bundled datastream server streams 20,000 mixed messages
# about only 50 companies and 50 users (so the queue often holds an older
# message for the same entity) as fast as ferry reads into Redis through
# small channels. ferry_messages_coalesced_total > 0, nothing is dropped
# or failed, and Redis ends up holding exactly the server's expected
# final state.
. tests/lib.sh
FAULT_MESSAGES=20000 FAULT_COMPANIES=50 FAULT_USERS=50
. tests/support/fault/fault.inc

N=3000
EVERY=100

# One plugin folder with the shipped plugins and the test fixtures.
mkdir -p "$T/plugins"
for p in "$FAULT_B"/plugins/*.so "$FAULT_B"/tests/plugins/source_gen.so \
    "$FAULT_B"/tests/plugins/sink_slow.so; do
    [ -f "$p" ] || fail "$p is not built"
    ln -s "$p" "$T/plugins/"
done

fault_redis_start
fault_server_start
FAULT_HTTP=127.0.0.1:$(free_port)

drop_route() { # NAME MODE
    cat <<EOF

[source.gen_$1]
plugin = gen
count = $N
entities = 50
control_every = $EVERY
linger = true

[sink.slow_$1]
plugin = slow
path = $T/$1.txt
delay = 2ms

[policy.$1]
plugin = backpressure
mode = $2

[route.$1]
from = gen_$1
to = slow_$1
policies = $1
channel_size = 8
workers = 1
batch_size = 4
batch_timeout = 1ms
EOF
}

coalesce_route() { # NAME MATCH
    cat <<EOF

[route.$1]
from = ds
match = $2
to = cache
policies = coalesce
channel_size = 16
workers = 1
batch_size = 10
EOF
}

{
    cat <<EOF
[ferry]
plugin_dir = $T/plugins
http_listen = $FAULT_HTTP
metrics_interval = 0
shutdown_timeout = 10s
EOF
    drop_route newest drop_newest
    drop_route oldest drop_oldest
    cat <<EOF

[source.ds]
plugin = websocket
api_url = http://127.0.0.1:$TS_PORT
api_key = test-key
bulk_rate = 0

[sink.cache]
plugin = redis
address = 127.0.0.1:$REDIS_PORT
cache_version = $FAULT_CACHE_VERSION

[policy.coalesce]
plugin = backpressure
mode = coalesce
EOF
    coalesce_route companies company
    coalesce_route users user
    coalesce_route flags flags
} >"$T/ferry.ini"
fault_ferry_start

# ---- drop_newest, drop_oldest --------------------------------------------

# settled ROUTE: every emitted message is applied or dropped.
settled() {
    fault_metrics "$T/m.txt"
    e=$(fault_metric ferry_source_emitted_total "source=\"gen_$1\"" "$T/m.txt")
    a=$(fault_metric ferry_messages_applied_total "route=\"$1\"" "$T/m.txt")
    d=$(fault_metric ferry_messages_dropped_total "route=\"$1\"" "$T/m.txt")
    [ "$e" -eq $((N + N / EVERY)) ] && [ $((a + d)) -eq "$e" ]
}

for r in newest oldest; do
    WAIT_S=30 wait_for settled $r || {
        settled $r
        fail "route $r: emitted $e, applied $a + dropped $d"
    }
done
fault_metrics "$T/drop-metrics.txt"

# check_drop ROUTE MODE OTHER: the sink's lines against the counters.
check_drop() {
    m=$T/drop-metrics.txt
    emitted=$(fault_metric test_source_emitted_total "gen_$1" "$m")
    dropped=$(fault_metric ferry_messages_dropped_total \
        "route=\"$1\",reason=\"$2\"" "$m")
    other=$(fault_metric ferry_messages_dropped_total \
        "route=\"$1\",reason=\"$3\"" "$m")
    applied=$(fault_metric ferry_messages_applied_total "route=\"$1\"" "$m")
    lines=$(grep -c '^full item ' "$T/$1.txt")
    controls=$(grep -c '^load_end ' "$T/$1.txt")
    echo "$2: emitted $emitted, reached the sink $lines (+ $controls" \
        "barriers), dropped $dropped"
    [ "$emitted" -eq $N ] || fail "$2: the source emitted $emitted of $N"
    [ $((lines + dropped)) -eq $N ] ||
        fail "$2: $lines delivered + $dropped dropped != $N emitted"
    [ "$applied" -eq $((lines + controls)) ] ||
        fail "$2: applied_total $applied, the sink wrote $((lines + controls))"
    [ "$other" -eq 0 ] || fail "$2: $other counted as $3"
    [ "$controls" -eq $((N / EVERY)) ] ||
        fail "$2: $controls of $((N / EVERY)) barriers reached the sink"
    # The drop must be real, and not total.
    [ "$dropped" -ge $((N / 10)) ] || fail "$2: only $dropped dropped"
    [ "$lines" -ge 8 ] || fail "$2: only $lines delivered"
    # One worker: positions arrive in emit order.
    awk '$1 == "full" { split($4, p, "-"); n = p[1] + 0
            if (n <= last) { print "out of order: " n " after " last; exit 1 }
            last = n }' "$T/$1.txt" || fail "$2: order broken"
    grep -q "dropping the $1 message (mode $2)" "$FERRY_LOG" ||
        fail "$2: no 'dropping' log line"
}
check_drop newest drop_newest drop_oldest
check_drop oldest drop_oldest drop_newest
# drop_newest keeps what was queued first; drop_oldest what came last.
grep -q "^full item e1 1-0\$" "$T/newest.txt" ||
    fail "drop_newest did not deliver the first message"
grep -q "^full item e$((N % 50)) $N-0\$" "$T/oldest.txt" ||
    fail "drop_oldest did not deliver the last message"

# ---- coalesce -------------------------------------------------------------

python3 "$FAULT_STATECHECK" --port "$REDIS_PORT" --expect "$T/expect.json" \
    --version "$FAULT_CACHE_VERSION" --wait 30 ||
    fail "coalesce: Redis does not hold the expected state"
fault_alive
fault_metrics "$T/metrics.txt"
kill -TERM "$FERRY_PID"
wait "$FERRY_PID" || fail "ferry exited $? on SIGTERM"
m=$T/metrics.txt
coalesced=0 applied=0 lost=0
for r in companies users flags; do
    c=$(fault_metric ferry_messages_coalesced_total "route=\"$r\"" "$m")
    a=$(fault_metric ferry_messages_applied_total "route=\"$r\"" "$m")
    d=$(fault_metric ferry_messages_dropped_total "route=\"$r\"" "$m")
    f=$(fault_metric ferry_messages_failed_total "route=\"$r\"" "$m")
    coalesced=$((coalesced + c)) applied=$((applied + a)) lost=$((lost + d + f))
done
emitted=$(fault_metric ferry_source_emitted_total 'source="ds"' "$m")
echo "coalesce: $emitted emitted (load, stream, barriers), $applied applied," \
    "$coalesced coalesced, $lost dropped or failed"
[ "$lost" -eq 0 ] || fail "coalesce: $lost messages dropped or failed"
[ "$coalesced" -gt 0 ] || fail "coalesce: nothing was coalesced"
# Every message is applied or replaced by a newer one for its entity
# (barriers reach the one sink once).
[ $((applied + coalesced)) -eq "$emitted" ] ||
    fail "coalesce: $applied applied + $coalesced coalesced != $emitted emitted"
echo "PASS policy_backpressure"
