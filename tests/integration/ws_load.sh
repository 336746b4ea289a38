#!/bin/sh
# ws_load: the REST initial load of 2,500 companies and 2,500 users with the
# default bulk_page_size (100), bulk_concurrency (5) and bulk_rate (10/s),
# while the stream runs at 100 messages/s. From the server's REST log: the
# two counts and every page exactly once (52 requests), never more than 10
# requests in any second. From the sink: LOAD_BEGIN, every entity, LOAD_END,
# and only then the stream messages held meanwhile, in order. From the
# log: progress lines (done/total, percent, rate, ETA) at least a second
# apart during the load; from /metrics: the progress gauge at 1 after it.
. tests/lib.sh
. tests/integration/ws_lib.inc

N=200
ws_plugins
H=$(free_port)
WS_HTTP=127.0.0.1:$H
ts_start --seed 5 --companies 2500 --users 2500 --flags 5 --messages $N \
    --rate 100
cat >"$T/f.ini" <<EOF
$(ws_ini_head)

[source.ds]
plugin = websocket
api_url = http://127.0.0.1:$TS_PORT
api_key = test-key

[sink.out]
plugin = file
path = $T/out.jsonl

[route.main]
from = ds
to = out
workers = 4
batch_size = 100
EOF
ferry_start "$T/f.ini"
WAIT_S=40 wait_for ws_jsonl_positions "$T/out.jsonl" $N ||
    fail "positions missing; log: $(tail -n 20 "$FERRY_LOG")"
ws_alive
curl -s "http://127.0.0.1:$H/metrics" >"$T/metrics" || fail "no /metrics"
grep -qx 'ferry_source_load_progress_ratio{source="ds"} 1' "$T/metrics" ||
    { grep load_progress "$T/metrics"; fail "the load progress gauge is not 1 after the load"; }
ferry_stop

python3 - "$T/ts.log" "$T/out.jsonl" "$FERRY_LOG" "$WS_BASE" <<'PY' || exit 1
import json, re, sys
def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)
base = int(sys.argv[4])
ev = [json.loads(l) for l in open(sys.argv[1])]
rest = [e for e in ev if e["event"] == "rest"]
paths = [e["path"] for e in rest]
flog = open(sys.argv[3]).read()
counts = {m.group(2): int(m.group(1)) for m in
          re.finditer(r"initial load: (\d+) (companies|users) to load", flog)}
want = {"/companies/count", "/users/count"}
for t in ("companies", "users"):
    for off in range(0, counts[t], 100):
        want.add("/%s?limit=100&offset=%d" % (t, off))
if len(paths) != len(want) or set(paths) != want:
    fail("%d requests; unexpected %r, missing %r" %
         (len(paths), sorted(set(paths) - want)[:5],
          sorted(want - set(paths))[:5]))
if any(e["status"] != 200 for e in rest):
    fail("a REST request failed")
t = [e["t_ms"] for e in rest]
# At most 10 requests per second: any 11 consecutive requests span >= 1 s
# (less 50 ms for timer and delivery jitter).
worst = min(t[i + 10] - t[i] for i in range(len(t) - 10))
if worst < 950:
    fail("11 requests within %d ms" % worst)
rate = (len(t) - 1) * 1000.0 / (t[-1] - t[0])
if rate > 10.5:
    fail("average %.2f requests/s" % rate)

lines = [json.loads(l) for l in open(sys.argv[2])]
ops = [l["op"] for l in lines]
if ops[0] != "load_begin" or ops.count("load_end") != 1:
    fail("load_begin / load_end: %r" % ops[:3])
end = ops.index("load_end")
loaded = lines[1:end]
ids = {(l["entity_type"], l["entity_id"]) for l in loaded}
if len(loaded) != counts["companies"] + counts["users"] or \
        len(ids) != len(loaded):
    fail("%d loaded lines, %d distinct, counts %r" %
         (len(loaded), len(ids), counts))
if any(l["stream_id"] or l["op"] != "full" for l in loaded):
    fail("a stream message before LOAD_END")
stream = [l for l in lines[end + 1:] if l["stream_id"]]
last = {}
for l in stream:
    p = int(l["stream_id"].split("-")[0]) - base
    k = (l["entity_type"], l["entity_id"])
    if last.get(k, 0) > p:
        fail("entity %r out of order" % (k,))
    last[k] = p

# Progress lines: every 5 s or 10 %, never two within a second.
prog = re.findall(r"^(\S+)Z .*initial load: (\d+)/(\d+) companies, "
                  r"(\d+)/(\d+) users \((\d+)%\), (\d+)/s, ETA (\d+s|unknown)$",
                  flog, re.M)
if not prog:
    fail("no progress line in the log")
def ms(ts):
    h, m, s = ts.split("T")[1].split(":")
    return (int(h) * 60 + int(m)) * 60000 + float(s) * 1000
stamps = [ms(p[0]) for p in prog]
gaps = [b - a for a, b in zip(stamps, stamps[1:])]
if gaps and min(gaps) < 950:
    fail("two progress lines %d ms apart" % min(gaps))
pct = [int(p[5]) for p in prog]
if pct != sorted(pct) or pct[-1] >= 100:
    fail("progress percentages %r" % pct)
if any(int(p[2]) != counts["companies"] or int(p[4]) != counts["users"]
       for p in prog):
    fail("progress totals differ from the counts: %r" % prog[0:1])
print("ok: %d requests at %.2f/s (densest 11 in %d ms), %d loaded, "
      "%d stream messages after LOAD_END, %d progress lines (%s%%)" %
      (len(t), rate, worst, len(loaded), len(stream), len(prog),
       ",".join(map(str, pct))))
PY
echo "PASS ws_load"
