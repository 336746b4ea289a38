#!/bin/sh
# Interop: ferry fills Redis from the bundled test server (its workload
# plus the spec's sample entities, --samples), then Schematic's own Node
# SDK (@schematichq/schematic-typescript-node 1.6.2, replicator mode, its
# health URL pointed at ferry's /ready) evaluates flags for company, user
# and flag combinations whose answers are known (spec 12.7).
. tests/lib.sh
[ -d tests/interop/node_modules ] || fail "the Node SDK is not installed: run make deps"
SAMPLES=tests/fixtures/samples
[ -f "$SAMPLES/msg-01-flags-full.json" ] || SAMPLES=../shared/spec/samples

start_redis
start_testserver --seed 11 --companies 200 --users 200 --flags 10 \
    --messages 3000 --samples "$SAMPLES" --expect "$T/expect.json"
H=$(free_port)
production_ini "$T/ferry.ini" "$H"
"$FERRY" run -c "$T/ferry.ini" 2>"$T/ferry.log" &
F=$!
CLEANUP_PIDS="$CLEANUP_PIDS $F"
python3 tests/support/statecheck.py --port "$REDIS_PORT" \
    --expect "$T/expect.json" --version c0ffee01 --wait 60 ||
    { tail -20 "$T/ferry.log"; fail "Redis state differs"; }
WAIT_S=20 wait_for sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$H/ready) = 200 ]" ||
    fail "/ready never answered 200"
(cd tests/interop && timeout 90 node check.mjs "$REDIS_PORT" "http://127.0.0.1:$H/ready") ||
    { tail -20 "$T/ferry.log"; fail "the Node SDK did not get the expected flag results"; }
kill -TERM "$F"
wait "$F" || fail "ferry exited non-zero"
echo ok
