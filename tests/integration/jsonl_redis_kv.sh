#!/bin/sh
# etc/jsonl-to-redis.ini end to end: source_file (format = jsonl) ->
# sink_redis_kv on a real redis-server, 8 workers.
#
# The input: a few thousand ids over four types, several lines per id in
# sequence (sets that overwrite, deletes, sets after deletes), string and
# integer ids, some lines with whitespace, and malformed lines near the
# start and the end. The first ferry is killed with -9 half-way (rate slows
# the source); the second, on the same configuration, must log that it
# resumed from the replay cursor with lines skipped, count the late
# malformed line, and exit 0 after the file. Then Redis must
# hold exactly the expected keys: each id's last set (its line as compact
# JSON), no key for an id whose last line is a delete, nothing else.
. tests/lib.sh
case $BUILD in /*) PD=$BUILD/plugins ;; *) PD=$PWD/$BUILD/plugins ;; esac
if [ ! -f "$PD/sink_redis_kv.so" ]; then
    echo "SKIP: $PD/sink_redis_kv.so is not built (plugins/sink_redis_kv)"
    exit 0
fi
start_redis

LINES=12000
python3 - "$T/in.jsonl" "$T/expect.json" "$LINES" <<'PY'
import json, random, sys
path, expect_path, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(7)
types = ["user", "order", "item", "team"]
ids = []
for n in range(3000):
    t = types[n % 4]
    # Orders use integer ids: the key holds their decimal text.
    ids.append((t, n if t == "order" else "%s-%d" % (t, n)))
lines, state = [], {}
for k in range(total):
    t, i = ids[rnd.randrange(len(ids))]
    key = "app:%s:%s" % (t, i)
    if rnd.random() < 0.25:
        obj = {"type": t, "id": i, "op": "delete"}
        state.pop(key, None)
    else:
        obj = {"id": i, "type": t, "v": k, "note": "line \"%d\"" % k}
        if rnd.random() < 0.5:
            obj["op"] = "set"
        state[key] = json.dumps(obj, separators=(",", ":"))
    # Some lines with whitespace: the payload is compact all the same.
    if rnd.random() < 0.1:
        lines.append(json.dumps(obj))
    else:
        lines.append(json.dumps(obj, separators=(",", ":")))
lines.insert(4, "{this is not json")
lines.insert(9, '{"type":"user","note":"no id"}')
lines.insert(len(lines) - 3, '{"id":"late","type":"user","op":"upsert"}')
with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
with open(expect_path, "w") as f:
    json.dump(state, f)
PY

H=$(free_port)
cat >"$T/kv.ini" <<INI
[ferry]
include = $PWD/etc/jsonl-to-redis.ini
plugin_dir = $PD
http_listen = 127.0.0.1:$H
[source.events]
path = $T/in.jsonl
rate = 3000
[sink.kv]
address = 127.0.0.1:$REDIS_PORT
lock_ttl = 1500ms
INI
"$FERRY" check -c "$T/kv.ini" >"$T/check.log" 2>&1 ||
    { cat "$T/check.log"; fail "ferry check refused the configuration"; }

# Run 1: killed with -9 once a few thousand lines went through.
"$FERRY" run -c "$T/kv.ini" 2>"$T/run1.log" &
A=$!
CLEANUP_PIDS="$CLEANUP_PIDS $A"
sleep 1.5
WAIT_S=20 wait_for sh -c "[ \$(redis-cli -p $REDIS_PORT --scan \
    --pattern 'app:*' | wc -l) -gt 1500 ]" ||
    { tail -20 "$T/run1.log"; fail "run 1 wrote too little"; }
curl -s "http://127.0.0.1:$H/metrics" >"$T/metrics1"
kill -9 $A
wait $A 2>/dev/null
grep -q "in.jsonl:5: invalid_json" "$T/run1.log" ||
    { tail -20 "$T/run1.log"; fail "line 5 was not reported as invalid"; }
# Line 10 comes within the second of line 5: counted, not logged.
for r in invalid_json missing_id; do
    grep -q "^ferry_source_invalid_messages_total{source=\"events\",reason=\"$r\"} 1" \
        "$T/metrics1" || { grep invalid "$T/metrics1"; fail "$r not counted"; }
done
grep -q "replayed $T/in.jsonl" "$T/run1.log" &&
    fail "run 1 replayed the whole file before the kill: raise LINES"

# Run 2: the same configuration resumes after the cursor and finishes.
"$FERRY" run -c "$T/kv.ini" 2>"$T/run2.log" &
B=$!
CLEANUP_PIDS="$CLEANUP_PIDS $B"
WAIT_S=30 wait_for grep -q "replayed $T/in.jsonl" "$T/run2.log" ||
    { tail -20 "$T/run2.log"; fail "run 2 did not finish the file"; }
# Run 2 counts afresh: the late line is its first invalid one, logged.
grep -q "in.jsonl:12000: unknown_op" "$T/run2.log" ||
    { tail -20 "$T/run2.log"; fail "the late invalid line was not reported"; }
WAIT_S=30 wait_for sh -c "! kill -0 $B" ||
    { tail -20 "$T/run2.log"; fail "run 2 did not exit after the file"; }
wait $B
rc=$?
[ $rc -eq 0 ] || { tail -20 "$T/run2.log"; fail "run 2 exited $rc"; }
skipped=$(sed -n 's/.*resumed from the committed position [0-9]*-[0-9]*: \([0-9]*\) lines skipped.*/\1/p' \
    "$T/run2.log" | head -1)
[ -n "$skipped" ] && [ "$skipped" -gt 0 ] ||
    { head -20 "$T/run2.log"; fail "run 2 did not resume from the cursor"; }
echo "run 2 resumed with $skipped lines skipped"
# Every line after the cursor but the late invalid one: 12003 lines in all
# (LINES and three malformed ones).
rest=$(( LINES + 3 - skipped - 1 ))
grep -q "replayed $T/in.jsonl: $rest messages emitted, 1 invalid lines" \
    "$T/run2.log" || { tail -5 "$T/run2.log"; fail "run 2 did not emit $rest"; }

python3 - "$REDIS_PORT" "$T/expect.json" <<'PY' || exit 1
import json, subprocess, sys
port, expect = sys.argv[1], json.load(open(sys.argv[2]))
def cli(*args):
    return subprocess.run(["redis-cli", "-p", port] + list(args),
                          check=True, capture_output=True,
                          text=True).stdout.splitlines()
keys = sorted(set(cli("--scan", "--pattern", "app:*")))
missing = sorted(set(expect) - set(keys))
extra = sorted(set(keys) - set(expect))
wrong = []
# Values are compact JSON without newlines: one output line per key.
for n in range(0, len(keys), 500):
    chunk = keys[n:n + 500]
    for k, v in zip(chunk, cli("MGET", *chunk)):
        if k in expect and v != expect[k]:
            wrong.append((k, v, expect[k]))
if missing or extra or wrong:
    print("missing %d %s" % (len(missing), missing[:5]))
    print("extra %d %s" % (len(extra), extra[:5]))
    print("wrong %d %s" % (len(wrong), wrong[:3]))
    sys.exit(1)
print("%d keys as expected" % len(keys))
PY
echo ok
