#!/bin/sh
# ferry check --connect reaches Redis (PING) and the datastream (a
# WebSocket handshake, then the REST API the initial load uses: its
# company and user counts, with the key) and reports each; exit 0 when
# both answer, 1 when one does not. The API key never appears in the
# output.
. tests/lib.sh
PD=$(plugin_dir)
start_redis
start_testserver --companies 3 --users 2 --flags 1 --messages 1 \
    --api-key sekrit-key-123
conf() {
    cat >"$T/c.ini" <<INI
[ferry]
include = $PWD/etc/ferry.ini
plugin_dir = $PD
[source.datastream]
api_key = $1
api_url = http://127.0.0.1:$TS_PORT
[sink.cache]
address = 127.0.0.1:$2
INI
}
conf sekrit-key-123 "$REDIS_PORT"
"$FERRY" check --connect -c "$T/c.ini" >"$T/out" 2>"$T/err" ||
    { cat "$T/out" "$T/err"; fail "check --connect failed with both services up"; }
grep -q '^# \[sink.cache\] connect: ok' "$T/out" || { cat "$T/out"; fail "no Redis probe line"; }
grep -q '^# \[source.datastream\] connect: ok' "$T/out" || { cat "$T/out"; fail "no datastream probe line"; }
grep -qF "; REST http://127.0.0.1:$TS_PORT: 3 companies, 2 users" "$T/out" ||
    { cat "$T/out"; fail "the probe line does not report the REST counts"; }
grep -q "sekrit" "$T/out" "$T/err" && fail "the API key reached check output"

conf sekrit-key-123 "$(free_port)"
"$FERRY" check --connect -c "$T/c.ini" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 1 ] || { cat "$T/out"; fail "check --connect with Redis down exited $rc, not 1"; }
grep -q '^# \[sink.cache\] connect: FAILED' "$T/out" || { cat "$T/out"; fail "Redis failure not reported"; }
grep -q '^# \[source.datastream\] connect: ok' "$T/out" || fail "datastream probe line missing"

conf wrong-key "$REDIS_PORT"
"$FERRY" check --connect -c "$T/c.ini" >"$T/out" 2>"$T/err"
[ $? -eq 1 ] || fail "a refused API key must fail check --connect"
grep -q '^# \[source.datastream\] connect: FAILED' "$T/out" || { cat "$T/out"; fail "refused key not reported"; }
grep -qF "; REST http://127.0.0.1:$TS_PORT: GET /companies/count: HTTP 401 (API key refused)" "$T/out" ||
    { cat "$T/out"; fail "the REST API's refusal of the key is not reported"; }

# The REST API unreachable while the WebSocket answers: url names the
# datastream, api_url a closed port.
cat >>"$T/c.ini" <<INI
[source.datastream]
api_key = sekrit-key-123
url = ws://127.0.0.1:$TS_PORT/datastream
api_url = http://127.0.0.1:$(free_port)
INI
"$FERRY" check --connect -c "$T/c.ini" >"$T/out" 2>"$T/err"
[ $? -eq 1 ] || { cat "$T/out"; fail "an unreachable REST API must fail check --connect"; }
grep -q '^# \[source.datastream\] connect: FAILED: .*handshake.*; REST .*GET /companies/count: ' "$T/out" ||
    { cat "$T/out"; fail "an unreachable REST API is not reported"; }
cat "$T/out" | grep connect:
echo ok
