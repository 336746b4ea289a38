#!/bin/sh
# Operations: SIGTERM drains what is queued (all applied, exit 0 within
# shutdown_timeout); SIGHUP with a changed batch_size while streaming keeps
# the final Redis state exact; SIGHUP with an invalid file keeps the
# running pipeline and logs why.
. tests/lib.sh
case $BUILD in /*) PD=$BUILD/plugins ;; *) PD=$PWD/$BUILD/plugins ;; esac

# ---- drain: 10k messages queued behind a slow sink, then SIGTERM ----------
"$TESTSERVER" --port 0 --ready-file "$T/d.ready" --seed 5 --companies 0 \
    --users 0 --flags 3 --messages 10000 >"$T/d.log" 2>&1 &
CLEANUP_PIDS="$CLEANUP_PIDS $!"
wait_for test -s "$T/d.ready" || { cat "$T/d.log"; fail "test server"; }
DPORT=$(cut -d' ' -f1 "$T/d.ready")
H=$(free_port)
cat >"$T/drain.ini" <<INI
[ferry]
plugin_dir = $PD
http_listen = 127.0.0.1:$H
metrics_interval = 1h
shutdown_timeout = 30s
[source.ds]
plugin = websocket
api_key = test-key
api_url = http://127.0.0.1:$DPORT
[sink.slow]
plugin = null
delay = 4ms
[route.all]
from = ds
to = slow
workers = 2
batch_size = 10
channel_size = 20000
INI
"$FERRY" run -c "$T/drain.ini" 2>"$T/drain.log" &
F=$!
CLEANUP_PIDS="$CLEANUP_PIDS $F"
metric() {
    curl -s "http://127.0.0.1:$H/metrics" |
        awk -v n="$1" '$1 ~ "^"n"({|$)" {s += $2} END {printf "%.0f", s}'
}
WAIT_S=20 wait_for sh -c "[ \"\$(curl -s http://127.0.0.1:$H/metrics |
    awk '\$1 ~ /^ferry_source_emitted_total/ {s += \$2} END {printf \"%.0f\", s}')\" -ge 10003 ]" ||
    { tail "$T/drain.log"; fail "the source did not receive the stream"; }
queued=$(metric ferry_channel_depth)
applied=$(metric ferry_messages_applied_total)
[ "$queued" -gt 1000 ] || fail "only $queued queued: the test needs a backlog"
t0=$(date +%s)
kill -TERM "$F"
wait "$F"
rc=$?
t1=$(date +%s)
[ $rc -eq 0 ] || { tail "$T/drain.log"; fail "ferry exited $rc after SIGTERM"; }
[ $((t1 - t0)) -le 30 ] || fail "drain took $((t1 - t0)) s"
line=$(grep "summary:" "$T/drain.log" | tail -1)
emitted=$(echo "$line" | sed -n 's/.* emitted=\([0-9]*\).*/\1/p')
fin=$(echo "$line" | sed -n 's/.* applied=\([0-9]*\).*/\1/p')
[ -n "$emitted" ] && [ "$emitted" = "$fin" ] ||
    { echo "$line"; fail "applied $fin of $emitted emitted messages"; }
echo "drain: $queued queued ($applied applied) at SIGTERM; all $fin applied in $((t1 - t0)) s, exit 0"

# ---- reload while streaming into Redis ------------------------------------
start_redis --appendonly no
"$TESTSERVER" --port 0 --ready-file "$T/r.ready" --seed 9 --companies 200 \
    --users 100 --flags 10 --messages 20000 --rate 4000 \
    --expect "$T/expect.json" >"$T/r.log" 2>&1 &
CLEANUP_PIDS="$CLEANUP_PIDS $!"
wait_for test -s "$T/r.ready" || { cat "$T/r.log"; fail "test server"; }
RPORT=$(cut -d' ' -f1 "$T/r.ready")
H2=$(free_port)
conf() {
    cat >"$T/r.ini" <<INI
[ferry]
plugin_dir = $PD
http_listen = 127.0.0.1:$H2
metrics_interval = 0
[source.datastream]
plugin = websocket
api_key = test-key
api_url = http://127.0.0.1:$RPORT
bulk_rate = 200
[sink.cache]
plugin = redis
address = 127.0.0.1:$REDIS_PORT
cache_version = c0ffee01
[route.all]
from = datastream
to = cache
workers = 4
batch_size = $1
INI
}
conf 10
"$FERRY" run -c "$T/r.ini" 2>"$T/reload.log" &
F=$!
CLEANUP_PIDS="$CLEANUP_PIDS $F"
sleep 2
conf 100
kill -HUP "$F"
WAIT_S=15 wait_for grep -q "reload: starting the new pipeline" "$T/reload.log" ||
    { tail "$T/reload.log"; fail "valid reload did not happen"; }
sleep 1
conf abc
kill -HUP "$F"
WAIT_S=10 wait_for grep -q "reload failed, keeping the running pipeline:.*batch_size: 'abc' is not an integer" "$T/reload.log" ||
    { tail "$T/reload.log"; fail "invalid reload not reported"; }
kill -0 "$F" || fail "ferry died after an invalid reload"
# One reload of each result, counted.
reloads() {
    curl -s "http://127.0.0.1:$H2/metrics" |
        awk -v r="result=\"$1\"" '$1 ~ /^ferry_config_reloads_total/ && index($1, r) { print $2 }'
}
[ "$(reloads ok)" = 1 ] || fail "ferry_config_reloads_total{result=ok} is '$(reloads ok)', not 1"
[ "$(reloads failed)" = 1 ] || fail "ferry_config_reloads_total{result=failed} is '$(reloads failed)', not 1"
python3 tests/support/statecheck.py --port "$REDIS_PORT" \
    --expect "$T/expect.json" --version c0ffee01 --wait 60 ||
    { tail -20 "$T/reload.log"; fail "final state differs after reloads"; }
kill -TERM "$F"
wait "$F" || fail "ferry exited non-zero"
echo "reload: valid reload while streaming and an invalid one; final Redis state exact"
echo ok
