#!/bin/sh
# make bench-core: the core alone. source_file replays frames preloaded in
# memory through one route with 8 workers into sink_null, and we report
# messages per second from "preloaded" to exit (drain included).
#
#   MESSAGES (default 2000000), WORKERS (8), BATCH (100)
set -e
: "${BUILD:=build}"
: "${MESSAGES:=2000000}"
: "${WORKERS:=8}"
: "${BATCH:=100}"
T=$(mktemp -d /tmp/ferry-bench-core.XXXXXX)
trap 'rm -rf "$T"' EXIT

FRAMES=100000
REPEAT=$(( (MESSAGES + FRAMES - 1) / FRAMES ))
python3 - "$T/in.jsonl" "$FRAMES" <<'PY'
import json, sys
n = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    for i in range(1, n + 1):
        cid = "comp_%d" % (i % 1000)
        f.write(json.dumps({"data": {"id": cid, "keys": {"id": cid}},
                            "entity_id": cid,
                            "entity_type": "rulesengine.Company",
                            "message_type": "full",
                            "stream_id": "%d-0" % i},
                           separators=(",", ":")) + "\n")
PY
cat > "$T/bench.ini" <<INI
[ferry]
plugin_dir = $PWD/$BUILD/plugins
http_listen =
metrics_interval = 0
[source.mem]
plugin = file
path = $T/in.jsonl
preload = true
repeat = $REPEAT
[sink.null]
plugin = null
[route.bench]
from = mem
to = null
workers = $WORKERS
batch_size = $BATCH
channel_size = 8192
batch_timeout = 5ms
INI
${PERF:-} /usr/bin/time -f "%e %M %U %S" -o "$T/time" "$BUILD/ferry" run -c "$T/bench.ini" 2>"$T/log"
python3 - "$T/log" "$T/time" $((REPEAT * FRAMES)) "$WORKERS" "$BATCH" <<'PY'
import sys, datetime
def ts(line):
    return datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
start = end = None
for line in open(sys.argv[1]):
    if "preloaded" in line:
        start = ts(line)
    if " exit " in line:
        end = ts(line)
wall, rss, usr, sys_ = open(sys.argv[2]).read().split()
n = int(sys.argv[3])
secs = (end - start).total_seconds()
print("bench-core: %d messages, %s workers, batch %s: %.2f s, %.0f msgs/s, "
      "peak RSS %s kB, CPU %.2f s" % (n, sys.argv[4], sys.argv[5], secs,
                                        n / secs, rss, float(usr) + float(sys_)))
PY
