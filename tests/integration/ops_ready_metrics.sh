#!/bin/sh
# /ready on the real pipeline: 503 (with cache_version and ready:false)
# while the initial load runs, 200 once the load and the flags snapshot
# are applied. /metrics on the real pipeline: strictly valid Prometheus
# text with every name interface.md lists, and counters that increase
# between two scrapes while the stream flows.
. tests/lib.sh
start_redis
start_testserver --seed 4 --companies 1500 --users 500 --flags 5 \
    --messages 20000 --rate 2000 --expect "$T/expect.json"
H=$(free_port)
# 20 pages at 10 requests/s: the initial load takes about two seconds.
production_ini "$T/f.ini" "$H"
cat >>"$T/f.ini" <<INI
[source.datastream]
bulk_rate = 10
INI
"$FERRY" run -c "$T/f.ini" 2>"$T/ferry.log" &
F=$!
CLEANUP_PIDS="$CLEANUP_PIDS $F"
URL=http://127.0.0.1:$H
wait_for curl -s -o /dev/null "$URL/health" || fail "no HTTP server"

code=$(curl -s -o "$T/r1.json" -w '%{http_code}' "$URL/ready")
[ "$code" = 503 ] || { cat "$T/r1.json"; fail "/ready answered $code during the initial load"; }
python3 - "$T/r1.json" <<'PY' || fail "/ready 503 body"
import json, sys
b = json.load(open(sys.argv[1]))
assert b["ready"] is False, b
assert b["cache_version"] == "c0ffee01", b
assert set(b) >= {"status", "ready", "connected", "components", "cache_version", "timestamp"}, b
PY
WAIT_S=30 wait_for sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' $URL/ready) = 200 ]" ||
    { tail "$T/ferry.log"; fail "/ready never became 200"; }
curl -s "$URL/ready" >"$T/r2.json"
python3 - "$T/r2.json" <<'PY' || fail "/ready 200 body"
import json, sys
b = json.load(open(sys.argv[1]))
assert b["ready"] is True and b["status"] == "healthy", b
assert b["components"] == {"datastream": "connected", "redis": "connected"}, b
assert b["cache_version"] == "c0ffee01", b
PY

REQ="ferry_source_messages_total ferry_source_invalid_messages_total
ferry_source_connected ferry_source_reconnects_total ferry_channel_depth
ferry_channel_capacity ferry_messages_dropped_total
ferry_messages_coalesced_total ferry_sink_batches_total
ferry_sink_operations_total ferry_apply_latency_seconds ferry_breaker_state
ferry_replication_lag_seconds"
set --
for n in $REQ; do set -- "$@" --require "$n"; done
curl -s "$URL/metrics" >"$T/m1"
python3 tests/support/promcheck.py "$T/m1" "$@" || fail "first scrape invalid"
sleep 1.5
curl -s "$URL/metrics" >"$T/m2"
python3 tests/support/promcheck.py "$T/m2" "$@" || fail "second scrape invalid"
python3 - "$T/m1" "$T/m2" <<'PY' || fail "counters did not increase"
import sys
def load(p):
    d = {}
    for line in open(p):
        if line.startswith("#"):
            continue
        k, v = line.rsplit(" ", 1)
        d[k] = float(v)
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
def total(d, name):
    return sum(v for k, v in d.items() if k.split("{")[0] == name)
for name in ("ferry_source_messages_total", "ferry_messages_applied_total",
             "ferry_sink_operations_total", "ferry_apply_latency_seconds_count"):
    assert total(b, name) > total(a, name), (name, total(a, name), total(b, name))
# No counter ever goes down between scrapes.
for k, v in a.items():
    if k.split("{")[0].endswith("_total") and k in b:
        assert b[k] >= v, (k, v, b[k])
PY
python3 tests/support/statecheck.py --port "$REDIS_PORT" --expect "$T/expect.json" \
    --version c0ffee01 --wait 60 || fail "final state differs"
kill -TERM "$F"
wait "$F" || fail "ferry exited non-zero"
echo ok
