#!/bin/sh
# ws_auth: a wrong API key. The server closes with 4001 after the upgrade
# and answers REST with 401. The source logs "API key refused (close
# 4001)", reports the datastream disconnected and unhealthy, keeps retrying
# every reconnect_max (no storm), never completes a load, and never writes
# the key anywhere. (A REST 401 during the load: test_source_websocket.)
. tests/lib.sh
. tests/integration/ws_lib.inc

ws_plugins
ts_start --api-key right-key --companies 3 --users 3 --messages 10
HP=$(free_port)
WS_HTTP=127.0.0.1:$HP
cat >"$T/f.ini" <<EOF
$(ws_ini_head)

[source.ds]
plugin = websocket
api_url = http://127.0.0.1:$TS_PORT
api_key = wrong-key-s3cr3t
reconnect_min = 100ms
reconnect_max = 1s

[sink.out]
plugin = file
path = $T/out.jsonl

[route.main]
from = ds
to = out
EOF
ferry_start "$T/f.ini"
WAIT_S=10 wait_for ws_log_has "ERROR.*API key refused (close 4001)" ||
    fail "no 4001 line; log: $(tail -n 20 "$FERRY_LOG")"
curl -s "http://$WS_HTTP/metrics" >"$T/metrics.txt" || fail "no /metrics"
grep -q '^ferry_source_unhealthy{source="ds"} 1' "$T/metrics.txt" ||
    fail "unhealthy gauge: $(grep unhealthy "$T/metrics.txt")"
grep -q '^ferry_source_connected{source="ds"} 0' "$T/metrics.txt" ||
    fail "connected gauge: $(grep source_connected "$T/metrics.txt")"
curl -s "http://$WS_HTTP/health" >"$T/health.json"
grep -q '"datastream": *"disconnected"' "$T/health.json" ||
    fail "/health: $(cat "$T/health.json")"
t0=$(grep -c '"event": *"connect"' "$T/ts.log")
sleep 3
t1=$(grep -c '"event": *"connect"' "$T/ts.log")
# reconnect_max = 1s: about three redials in 3 s, not a storm.
[ $((t1 - t0)) -ge 2 ] && [ $((t1 - t0)) -le 4 ] ||
    fail "$((t1 - t0)) dials in 3 s with reconnect_max = 1s"
ws_alive
ferry_stop
grep -q '"op":"load_end"' "$T/out.jsonl" && fail "load_end without a load"
grep -q "s3cr3t" "$FERRY_LOG" "$T/metrics.txt" "$T/health.json" &&
    fail "the API key leaked"
echo "PASS ws_auth"
