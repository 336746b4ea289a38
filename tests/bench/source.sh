#!/bin/sh
# tests/bench/source.sh: the websocket source alone. The bundled test server
# streams MESSAGES company messages of about 1.5 KB as fast as ferry reads
# them; ferry runs source.websocket -> sink_null (one route, WORKERS
# workers, BATCH per batch). Reports messages per second from ferry's start
# until /metrics counts every message applied, ferry's CPU seconds per
# million messages and its peak RSS.
#
#   MESSAGES (default 1000000), WORKERS (2), BATCH (100), CHANNEL (1000)
#   PERF=1   record a profile of ferry (perf record -g) into $BUILD/
#            bench-source.perf.data and print the top of perf report
set -e
: "${BUILD:=build}"
: "${MESSAGES:=1000000}"
: "${WORKERS:=2}"
: "${BATCH:=100}"
: "${CHANNEL:=1000}"
case "$BUILD" in
/*) B=$BUILD ;;
*) B=$PWD/$BUILD ;;
esac
T=$(mktemp -d /tmp/ferry-bench-source.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "source bench: generating $MESSAGES messages..." >&2
"$B/tests/testserver" --port 0 --ready-file "$T/ready" --seed 1 \
    --companies 1000 --users 1 --flags 1 --messages "$MESSAGES" \
    --mix 100:0:0 --company-bytes 1500 >"$T/ts.out" 2>&1 &
TS=$!
PIDS="$PIDS $TS"
i=0
while ! grep -q ' ' "$T/ready" 2>/dev/null; do
    kill -0 "$TS" 2>/dev/null || { cat "$T/ts.out" >&2; exit 1; }
    i=$((i + 1))
    [ $i -lt 6000 ] || { echo "testserver did not start" >&2; exit 1; }
    sleep 0.1
done
read -r TS_PORT _ <"$T/ready"
HP=$(port)
cat >"$T/bench.ini" <<INI
[ferry]
plugin_dir = $B/plugins
http_listen = 127.0.0.1:$HP
metrics_interval = 0
shutdown_timeout = 10s

[source.ds]
plugin = websocket
api_url = http://127.0.0.1:$TS_PORT
api_key = test-key
bulk_load = false

[sink.null]
plugin = null

[route.main]
from = ds
to = null
workers = $WORKERS
batch_size = $BATCH
channel_size = $CHANNEL
INI

if [ -n "$PERF" ]; then
    perf record -g -o "$B/bench-source.perf.data" -- \
        "$B/ferry" run -c "$T/bench.ini" >"$T/ferry.log" 2>&1 &
else
    "$B/ferry" run -c "$T/bench.ini" >"$T/ferry.log" 2>&1 &
fi
FP=$!
PIDS="$PIDS $FP"
python3 - "$HP" "$MESSAGES" "$FP" "$T/result" "$TS" <<'PY'
import os, re, sys, time, urllib.request
hp, n, pid, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ts = int(sys.argv[5])
def cpu_of(p):
    st = open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
ts_cpu0 = cpu_of(ts)
t0 = time.monotonic()
applied, peak = 0, 0
def ferry_pid():
    # Under perf, ferry is perf's child.
    try:
        kids = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
        return int(kids[0]) if kids else pid
    except OSError:
        return pid
while applied < n:
    if time.monotonic() - t0 > 600:
        sys.exit("timeout: %d of %d applied" % (applied, n))
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % hp,
                                      timeout=2).read().decode()
        applied = sum(float(m.group(1)) for m in re.finditer(
            r'^ferry_messages_applied_total\{[^}]*\} (\S+)$', body, re.M))
    except OSError:
        pass
    try:
        rss = int(re.search(r"VmRSS:\s+(\d+)",
                            open("/proc/%d/status" % ferry_pid()).read()).group(1))
        peak = max(peak, rss)
    except (OSError, AttributeError):
        pass
    time.sleep(0.02)
dt = time.monotonic() - t0
cpu = cpu_of(ferry_pid())
ts_cpu = cpu_of(ts) - ts_cpu0
with open(out, "w") as f:
    f.write("%d %.3f %.0f %.2f %d %.2f\n" % (n, dt, n / dt, cpu * 1e6 / n,
                                             peak, ts_cpu * 1e6 / n))
PY
read -r N DT RATE CPU PEAK TSCPU <"$T/result"
kill -TERM "$FP"
wait "$FP" || true
printf '%-34s %s\n' "messages" "$N" \
    "seconds (start to all applied)" "$DT" \
    "msgs/s" "$RATE" \
    "ferry CPU s per million" "$CPU" \
    "ferry peak RSS kB" "$PEAK" \
    "test server CPU s per million" "$TSCPU"
grep -q "disconnected\|invalid message" "$T/ferry.log" &&
    { echo "warning: see the ferry log:" >&2; grep "WARN\|ERROR" "$T/ferry.log" | head >&2; }
if [ -n "$PERF" ]; then
    perf report -i "$B/bench-source.perf.data" --no-children --percent-limit 2 \
        --stdio 2>/dev/null | grep -v '^$' | head -60
fi
exit 0
