#!/bin/sh
# ws_backpressure: 50,000 stream messages of about 1.5 KB (75 MB in all)
# offered as fast as the client reads, into a sink that applies at most
# about 10 messages per 1 ms, through a channel of 10. The source must
# stop reading instead of buffering or dropping: every position arrives,
# ferry's RSS stays under 64 MB the whole time, and the source reports
# that it paused.
. tests/lib.sh
. tests/integration/ws_lib.inc

N=50000
RSS_LIMIT_KB=65536
# ASan's shadow memory and quarantine inflate RSS: the bound is checked
# in normal builds only.
[ -n "$SANITIZER" ] && RSS_LIMIT_KB=4194304
ws_plugins
[ -f "$WS_PLUGIN_DIR/sink_slow.so" ] || fail "sink_slow.so not built"
ts_start --companies 20 --users 20 --flags 2 --messages $N --mix 100:0:0
HP=$(free_port)
WS_HTTP=127.0.0.1:$HP
cat >"$T/f.ini" <<EOF
$(ws_ini_head)

[source.ds]
plugin = websocket
api_url = http://127.0.0.1:$TS_PORT
api_key = test-key
bulk_rate = 0
ping_interval = 1s
pong_wait = 2s
# Stream messages that arrive during the (short) initial load are held,
# up to max_held_messages (100,000 by default: the whole stream); a small
# hold makes the source pause reading then too, which is what this test
# measures. Without it the peak RSS depended on how the load and the
# stream interleaved (16 to 71 MB in repeated runs, before and after the
# walls change alike).
max_held_messages = 100

[sink.slow]
plugin = slow
path = $T/out.txt
delay = 1ms

[route.main]
from = ds
to = slow
channel_size = 10
workers = 1
batch_size = 10
EOF
ferry_start "$T/f.ini"
max_rss=0
i=0
done_=0
while [ $i -lt 500 ]; do
    ws_alive
    r=$(rss_kb "$FERRY_PID")
    [ -n "$r" ] && [ "$r" -gt "$max_rss" ] && max_rss=$r
    if [ $((i % 10)) -eq 0 ] &&
        [ "$(awk '$4 != "-"' "$T/out.txt" 2>/dev/null | wc -l)" -ge $N ]; then
        done_=1
        break
    fi
    sleep 0.1
    i=$((i + 1))
done
curl -s "http://$WS_HTTP/metrics" >"$T/metrics.txt"
ferry_stop
[ $done_ -eq 1 ] || fail "not every message arrived within 50 s"
echo "peak RSS ${max_rss} kB"
[ "$max_rss" -lt $RSS_LIMIT_KB ] ||
    fail "RSS ${max_rss} kB >= $RSS_LIMIT_KB kB: the source buffered"
python3 - "$T/out.txt" "$N" "$WS_BASE" <<'PY' || exit 1
import sys
n, base = int(sys.argv[2]), int(sys.argv[3])
seen = set()
for line in open(sys.argv[1]):
    f = line.split()
    if f[3] != "-":
        seen.add(int(f[3].split("-")[0]) - base)
missing = [i for i in range(1, n + 1) if i not in seen]
if missing:
    print("FAIL: %d positions missing, first %r" % (len(missing), missing[:5]))
    sys.exit(1)
PY
grep -q '^ferry_source_paused_total{source="ds"} [1-9]' "$T/metrics.txt" ||
    fail "the source never paused: $(grep paused "$T/metrics.txt")"
grep -q "no pong" "$FERRY_LOG" && fail "a paused connection was declared dead"
grep -q "disconnected" "$FERRY_LOG" && fail "the connection dropped"
echo "PASS ws_backpressure"
