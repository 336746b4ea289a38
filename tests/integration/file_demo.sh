#!/bin/sh
# The development pipeline from etc/file-demo.ini: source_file replays a
# recorded datastream into sink_file. The output must hold every message,
# in order per entity, and ferry must exit 0 once the file is replayed.
. tests/lib.sh

# 20,000 frames for 300 companies, positions 1..20000.
python3 - "$T/in.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for n in range(1, 20001):
        cid = "comp_%d" % (n % 300)
        op = ["full", "partial", "delete"][n % 3]
        data = {"id": cid, "keys": {"id": cid}, "n": n}
        f.write(json.dumps({"data": data, "entity_id": cid,
                            "entity_type": "rulesengine.Company",
                            "message_type": op,
                            "stream_id": "%d-0" % n}) + "\n")
    f.write("this is not json\n")
PY

FERRY_PLUGIN_DIR="$PWD/$BUILD/plugins" FERRY_DEMO_INPUT="$T/in.jsonl" \
    FERRY_DEMO_OUTPUT="$T/out.jsonl" "$FERRY" run -c etc/file-demo.ini \
    2>"$T/log" || { cat "$T/log"; fail "ferry exited non-zero"; }

python3 - "$T/out.jsonl" <<'PY' || exit 1
import json, sys
last = {}
seen = set()
for line in open(sys.argv[1]):
    m = json.loads(line)
    n = int(m["stream_id"].split("-")[0])
    assert m["entity_type"] == "company", m
    assert m["op"] == ["full", "partial", "delete"][n % 3], m
    assert m["data"]["n"] == n, m
    assert n > last.get(m["entity_id"], 0), "order broken for %s" % m["entity_id"]
    last[m["entity_id"]] = n
    seen.add(n)
missing = set(range(1, 20001)) - seen
assert not missing, "missing %d messages, e.g. %s" % (len(missing), sorted(missing)[:5])
print("all 20000 messages, in order per entity")
PY
grep -q "invalid" "$T/log" || fail "the invalid line was not reported"
echo "ok"
