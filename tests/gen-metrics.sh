#!/bin/sh
# Prints README.md's metric list (a markdown table: name, type, labels,
# help) generated from the live registry: ferry runs a configuration that
# loads every shipped plugin (etc/ferry.ini's websocket -> redis pipeline
# with its breaker and backpressure policies, plus a jsonl file source
# into redis_kv, file and null sinks) against a throwaway redis-server
# and the bundled test server; once the cache is ready and the second
# pipeline has applied its messages, /metrics' HELP and TYPE lines and
# the label names of its samples make the table, sorted by name.
#
# With --update-readme (what `make metrics-reference` runs) it replaces
# the list between README.md's "generated metrics" markers instead of
# printing it; tests/integration/readme_metrics.sh fails when the two
# differ.
if [ "${1:-}" = --update-readme ]; then
    gen=$(mktemp)
    sh "$0" >"$gen" || { rm -f "$gen"; exit 1; }
    awk -v gen="$gen" '
        /^<!-- BEGIN generated metrics/ { print; while ((getline l < gen) > 0) print l; skip = 1; next }
        /^<!-- END generated metrics/ { skip = 0 }
        !skip { print }
    ' README.md >README.md.new && mv README.md.new README.md
    rm -f "$gen"
    exit 0
fi
. tests/lib.sh

start_redis
KV_PORT=$REDIS_PORT
start_redis
start_testserver --seed 6 --companies 40 --users 40 --flags 3 \
    --messages 200 --rate 100
H=$(free_port)
python3 - "$T/in.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    f.write("{not json\n")
    for n in range(400):
        f.write(json.dumps({"id": n, "type": "item", "v": n}) + "\n")
PY
production_ini "$T/f.ini" "$H"
cat >>"$T/f.ini" <<INI
[source.events]
plugin = file
format = jsonl
path = $T/in.jsonl
id_field = id
type_field = type
rate = 100
[sink.kv]
plugin = redis_kv
address = 127.0.0.1:$KV_PORT
key = app:{type}:{id}
[sink.out]
plugin = file
path = $T/out.jsonl
[sink.discard]
plugin = null
[route.events]
from = events
to = kv
[route.copy]
from = events
to = out
[route.none]
from = events
to = discard
INI
"$FERRY" run -c "$T/f.ini" 2>"$T/ferry.log" &
CLEANUP_PIDS="$CLEANUP_PIDS $!"
URL=http://127.0.0.1:$H
WAIT_S=30 wait_for sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' \
    $URL/ready) = 200 ]" || { tail "$T/ferry.log" >&2; fail "never ready"; }
applied() {
    curl -s "$URL/metrics" |
        grep -q '^ferry_messages_applied_total{route="none"} [1-9]'
}
WAIT_S=20 wait_for applied || fail "the jsonl pipeline applied nothing"
sleep 1
curl -s "$URL/metrics" >"$T/metrics.txt" || fail "no /metrics"

python3 - "$T/metrics.txt" <<'PY'
import re, sys

fams, order = {}, []
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    m = re.match(r"^# (HELP|TYPE) (\S+) ?(.*)$", line)
    if m:
        kind, name, rest = m.groups()
        f = fams.setdefault(name, {"help": "", "type": "", "labels": []})
        if kind == "HELP":
            f["help"] = rest.replace("\\\\", "\\").replace("\\n", " ")
        else:
            f["type"] = rest
        continue
    if not line or line.startswith("#"):
        continue
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ", line)
    if not m:
        continue
    name, labels = m.group(1), m.group(3) or ""
    base = name
    if base not in fams:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
    f = fams.get(base)
    if f is None:
        continue
    for k in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"',
                        labels):
        if k != "le" and k not in f["labels"]:
            f["labels"].append(k)

print("| name | type | labels | help |")
print("| --- | --- | --- | --- |")
for name in sorted(fams):
    f = fams[name]
    labels = ", ".join("`%s`" % l for l in f["labels"]) or "-"
    print("| `%s` | %s | %s | %s |" % (name, f["type"], labels,
                                       f["help"].replace("|", "\\|")))
PY
