#!/bin/sh
# ws_tls: wss:// and https:// against the test server with a throwaway CA.
#  1. tls_ca_file = the CA that signed the server: stream and REST load work;
#  2. tls_ca_file = an unrelated CA: refused, with a clear error, nothing
#     emitted, ferry keeps running and retrying;
#  3. tls_verify = false with the unrelated CA: works, with a WARN line.
. tests/lib.sh
. tests/integration/ws_lib.inc

N=200
sh tests/support/certs.sh "$T/pki" || fail "certs.sh failed"
ws_plugins
ts_start --tls-port 0 --cert "$T/pki/server.pem" --key "$T/pki/server.key" \
    --companies 5 --users 5 --flags 2 --messages $N
[ -n "$TS_TLS_PORT" ] && [ "$TS_TLS_PORT" != 0 ] || fail "no TLS port"

ini() { # ini NAME CA VERIFY
    cat >"$T/$1.ini" <<EOF
$(ws_ini_head)

[source.ds]
plugin = websocket
url = wss://127.0.0.1:$TS_TLS_PORT/datastream
api_url = https://127.0.0.1:$TS_TLS_PORT
api_key = test-key
tls_ca_file = $2
tls_verify = $3
bulk_rate = 0
reconnect_min = 100ms
reconnect_max = 200ms

[sink.out]
plugin = file
path = $T/$1.jsonl

[route.main]
from = ds
to = out
EOF
}

# 1. The right CA.
ini good "$T/pki/ca.pem" true
ferry_start "$T/good.ini" "$T/good.log"
WAIT_S=20 wait_for ws_jsonl_positions "$T/good.jsonl" $N ||
    fail "wss: positions missing; log: $(tail -n 20 "$T/good.log")"
ferry_stop
ws_log_has "connected to wss://127.0.0.1:$TS_TLS_PORT/datastream" ||
    fail "no wss connect line"
ws_log_has "initial load complete" || fail "REST load over https failed"
grep -q '"event": *"connect".*"tls": *true' "$T/ts.log" ||
    fail "the server saw no TLS connection"

# 2. An unknown CA: refused, clearly.
conns_before=$(grep -c '"event": *"connect"' "$T/ts.log")
ini bad "$T/pki/other-ca.pem" true
ferry_start "$T/bad.ini" "$T/bad.log"
WAIT_S=10 wait_for grep -q "cannot connect to wss://127.0.0.1:$TS_TLS_PORT" \
    "$T/bad.log" || fail "no connect error; log: $(tail -n 20 "$T/bad.log")"
sleep 1
ws_alive
grep "cannot connect to wss://" "$T/bad.log" | head -n 1 |
    grep -q "unable to get local issuer certificate" ||
    fail "the error does not say why: $(grep 'cannot connect' "$T/bad.log" | head -n 1)"
grep -q "retrying in" "$T/bad.log" || fail "no retry"
ferry_stop
[ "$(grep -c '"event": *"connect"' "$T/ts.log")" -eq "$conns_before" ] ||
    fail "a WebSocket upgrade happened with an untrusted certificate"
grep -q '"stream_id":"' "$T/bad.jsonl" 2>/dev/null &&
    fail "messages emitted over an untrusted connection"

# 2b. REST over https with an unknown CA (the stream over plain ws://):
# the load is refused with the reason, retried, and never completes.
cat >"$T/rest.ini" <<EOF
$(ws_ini_head)

[source.ds]
plugin = websocket
url = ws://127.0.0.1:$TS_PORT/datastream
api_url = https://127.0.0.1:$TS_TLS_PORT
api_key = test-key
tls_ca_file = $T/pki/other-ca.pem
reconnect_min = 100ms
reconnect_max = 200ms

[sink.out]
plugin = file
path = $T/rest.jsonl

[route.main]
from = ds
to = out
EOF
ferry_start "$T/rest.ini" "$T/rest.log"
WAIT_S=10 wait_for grep -q \
    "initial load: GET /companies/count failed: .*certificate" "$T/rest.log" ||
    fail "REST over an untrusted certificate: $(grep 'load' "$T/rest.log")"
ferry_stop
grep -q '"op":"load_end"' "$T/rest.jsonl" && fail "load_end after a failed load"

# 3. tls_verify = false: accepted, with a warning.
ini insecure "$T/pki/other-ca.pem" false
ferry_start "$T/insecure.ini" "$T/insecure.log"
WAIT_S=20 wait_for ws_jsonl_positions "$T/insecure.jsonl" $N ||
    fail "tls_verify=false: positions missing"
ferry_stop
grep -q "WARN.*tls_verify is off" "$T/insecure.log" || fail "no WARN line"
echo "PASS ws_tls"
