#!/bin/sh
# The sample frames (tests/fixtures/samples) replayed by source_file into
# sink_redis on a real redis-server: every cache value equals its cache-*
# file byte for byte, lookups hold the quoted id, the replay cursor is the
# last stream position, merges and deletes land, and the writer lock is
# released at exit.
. tests/lib.sh
S=tests/fixtures/samples
case $BUILD in /*) PD=$BUILD/plugins ;; *) PD=$PWD/$BUILD/plugins ;; esac
start_redis

frames() {
    for f in "$@"; do
        python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), separators=(",", ":")))' "$S/$f"
    done
}

cat > "$T/ferry.ini" <<INI
[ferry]
plugin_dir = $PD
http_listen =
[source.replay]
plugin = file
path = $T/in.jsonl
[sink.cache]
plugin = redis
address = 127.0.0.1:$REDIS_PORT
cache_version = c0ffee01
[route.all]
from = replay
to = cache
workers = 3
INI

# check.py KEY=FILE|KEY==VALUE|KEY=! ...: exact values over raw RESP.
cat > "$T/check.py" <<'PY'
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(out)
    line = f.readline()
    if line[:1] == b"$":
        n = int(line[1:])
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data
    if line[:1] == b":":
        return int(line[1:])
    return line.strip()
bad = 0
for spec in sys.argv[2:]:
    if "==" in spec:
        key, want = spec.split("==", 1)
        want = want.encode()
    elif spec.endswith("=!"):
        key, want = spec[:-2], None
    else:
        key, path = spec.split("=", 1)
        want = open(path, "rb").read()
    got = cmd("GET", key)
    if got != want:
        print("MISMATCH %s\n  got  %r\n  want %r" % (key, got, want))
        bad += 1
if bad:
    sys.exit(1)
PY

frames msg-01-flags-full.json msg-02-company-full.json msg-03-user-full.json \
    > "$T/in.jsonl"
"$FERRY" run -c "$T/ferry.ini" 2>"$T/log1" ||
    { cat "$T/log1"; fail "ferry exited non-zero"; }
V=schematic:flags:c0ffee01
python3 "$T/check.py" "$REDIS_PORT" \
    "$V:plan-flag=$S/cache-flag-plan-flag.json" \
    "$V:trait-flag=$S/cache-flag-trait-flag.json" \
    "$V:usage-flag=$S/cache-flag-usage-flag.json" \
    "$V:override-flag=$S/cache-flag-override-flag.json" \
    "$V:user-flag=$S/cache-flag-user-flag.json" \
    "$V:default-on-flag=$S/cache-flag-default-on-flag.json" \
    "schematic:company:c0ffee01:comp_acme=$S/cache-company-comp_acme.json" \
    "schematic:user:c0ffee01:user_ada=$S/cache-user-user_ada.json" \
    'schematic:company:c0ffee01:id:acme=="comp_acme"' \
    'schematic:company:c0ffee01:domain:acme.test=="comp_acme"' \
    'schematic:user:c0ffee01:id:ada=="user_ada"' \
    'schematic:user:c0ffee01:email:ada@acme.test=="user_ada"' \
    'schematic:datastream:replay_cursor==1767225600001-0' \
    'schematic:datastream:writer_lock=!' ||
    { cat "$T/log1"; fail "cache differs from the samples"; }
n=$(rcli DBSIZE)
[ "$n" = 13 ] || { rcli KEYS '*'; fail "expected 13 keys, found $n"; }

# Partials, a single flag and a flag delete, then the deletes.
frames msg-04-company-partial-metrics-credits.json \
    msg-05-company-partial-traits-keys-plans.json \
    msg-06-user-partial-traits.json msg-09-flag-single-full.json \
    msg-10-flag-single-delete.json > "$T/in.jsonl"
"$FERRY" run -c "$T/ferry.ini" 2>"$T/log2" ||
    { cat "$T/log2"; fail "second run exited non-zero"; }
python3 "$T/check.py" "$REDIS_PORT" \
    'schematic:company:c0ffee01:slug:acme-inc=="comp_acme"' \
    'schematic:company:c0ffee01:id:acme=="comp_acme"' \
    "$V:plan-flag=$S/cache-flag-plan-flag.json" \
    "$V:trait-flag=!" \
    'schematic:datastream:replay_cursor==1767225600008-0' ||
    { cat "$T/log2"; fail "merged state"; }
rcli GET schematic:company:c0ffee01:comp_acme | python3 -c '
import json, sys
c = json.load(sys.stdin)
assert c["metrics"][0]["value"] == 1200, c["metrics"]
assert c["credit_balances"] == {"bcrd_ai_tokens": 1234.5}, c["credit_balances"]
assert c["keys"] == {"domain": "acme.test", "id": "acme", "slug": "acme-inc"}
assert [t["value"] for t in c["traits"]] == ["retail"]
assert c["plan_ids"] == ["plan_free"] and c["base_plan_id"] is None
assert c["entitlements"][1]["credit_remaining"] == 1234.5
' || fail "merged company"
rcli GET schematic:user:c0ffee01:user_ada | grep -q '"value":"viewer"' ||
    fail "merged user"

frames msg-07-company-delete.json msg-08-user-delete.json > "$T/in.jsonl"
"$FERRY" run -c "$T/ferry.ini" 2>"$T/log3" ||
    { cat "$T/log3"; fail "third run exited non-zero"; }
left=$(rcli --scan --pattern 'schematic:company:*'; rcli --scan --pattern 'schematic:user:*')
[ -z "$left" ] || fail "keys left after the deletes: $left"
n=$(rcli DBSIZE)
# Five flags and the cursor.
[ "$n" = 6 ] || { rcli KEYS '*'; fail "expected 6 keys, found $n"; }
echo ok
