#!/bin/sh
# testserver_smoke: the bundled datastream test server by itself, with no
# ferry involved. Determinism of --expect; REST count, pages, API key and
# errors over http:// and https:// (and a refused unknown CA); WebSocket
# handshakes with a stdlib-only client: 4001 on a wrong key, then
# confirmations, the flags snapshot, every stream position in order, the
# malformed frames and the one reload, replay_from, and the REST state
# after the whole stream equal to the expected state's entities;
# statecheck.py against a redis-server fed by hand (match, mismatch,
# --wait); clean exit on SIGTERM.
. tests/lib.sh
[ -x "$TESTSERVER" ] || fail "$TESTSERVER not built"
N=3000
COMPANIES=150
USERS=120
ARGS="--seed 42 --companies $COMPANIES --users $USERS --flags 12 --messages $N"

sh tests/support/certs.sh "$T/pki" || fail "certs.sh"
for f in ca.pem ca.key server.pem server.key other-ca.pem; do
    [ -s "$T/pki/$f" ] || fail "certs.sh did not write $f"
done

# ---- determinism -------------------------------------------------------
"$TESTSERVER" $ARGS --port 0 --ready-file "$T/r1" --expect "$T/e1.json" \
    >"$T/s1.out" 2>&1 &
P1=$!
"$TESTSERVER" $ARGS --port 0 --ready-file "$T/r2" --expect "$T/e2.json" \
    >"$T/s2.out" 2>&1 &
P2=$!
"$TESTSERVER" --seed 43 --companies $COMPANIES --users $USERS --flags 12 \
    --messages $N --port 0 --ready-file "$T/r3" --expect "$T/e3.json" \
    >"$T/s3.out" 2>&1 &
P3=$!
CLEANUP_PIDS="$CLEANUP_PIDS $P1 $P2 $P3"
WAIT_S=30 wait_for test -s "$T/r1" || fail "server 1: $(cat "$T/s1.out")"
WAIT_S=30 wait_for test -s "$T/r2" || fail "server 2: $(cat "$T/s2.out")"
WAIT_S=30 wait_for test -s "$T/r3" || fail "server 3: $(cat "$T/s3.out")"
cmp -s "$T/e1.json" "$T/e2.json" || fail "same seed, different --expect"
cmp -s "$T/e1.json" "$T/e3.json" && fail "another seed, same --expect"
kill -TERM $P1 $P2 $P3
for p in $P1 $P2 $P3; do
    wait $p || fail "server exited $? on SIGTERM"
done

# Bad options are refused with a message naming the option.
"$TESTSERVER" --messages -1 >"$T/bad.out" 2>&1 && fail "--messages -1 accepted"
grep -q -- "--messages" "$T/bad.out" || fail "bad option message: $(cat "$T/bad.out")"
"$TESTSERVER" --tls-port 0 >"$T/bad.out" 2>&1 && fail "--tls-port without cert"

# ---- the server under test ---------------------------------------------
"$TESTSERVER" $ARGS --port 0 --tls-port 0 --cert "$T/pki/server.pem" \
    --key "$T/pki/server.key" --ready-file "$T/ready" --expect "$T/expect.json" \
    --log "$T/ts.log" --malformed-every 400 --reload-at 1000 \
    >"$T/ts.out" 2>"$T/ts.err" &
TS=$!
CLEANUP_PIDS="$CLEANUP_PIDS $TS"
WAIT_S=30 wait_for test -s "$T/ready" || fail "server: $(cat "$T/ts.err")"
read -r PORT TLS_PORT <"$T/ready"
[ "$PORT" -gt 0 ] && [ "$TLS_PORT" -gt 0 ] || fail "ready file: $(cat "$T/ready")"
grep -qx "testserver: listening on ws://127.0.0.1:$PORT wss://127.0.0.1:$TLS_PORT" \
    "$T/ts.out" || fail "stdout line: $(cat "$T/ts.out")"

# ---- REST --------------------------------------------------------------
H="X-Schematic-Api-Key: test-key"
U="http://127.0.0.1:$PORT"
code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }
[ "$(code -H "$H" "$U/companies/count")" = 200 ] || fail "count status"
grep -qx "{\"data\":{\"count\":$COMPANIES}}" "$T/body" || fail "count: $(cat "$T/body")"
[ "$(code -H "$H" "$U/users/count")" = 200 ] || fail "users count status"
grep -qx "{\"data\":{\"count\":$USERS}}" "$T/body" || fail "users count: $(cat "$T/body")"
[ "$(code "$U/companies/count")" = 401 ] || fail "no key: not 401"
grep -q '"error"' "$T/body" || fail "401 body: $(cat "$T/body")"
[ "$(code -H "X-Schematic-Api-Key: nope" "$U/users?limit=1")" = 401 ] ||
    fail "wrong key: not 401"
[ "$(code -H "$H" "$U/companies?limit=abc")" = 400 ] || fail "bad limit: not 400"
[ "$(code -H "$H" "$U/nothing")" = 404 ] || fail "unknown path: not 404"
curl -s -D "$T/hdr" -o /dev/null -H "$H" "$U/users/count"
grep -qi '^content-type: application/json' "$T/hdr" || fail "content type"

# Pages of 100 cover every company once, in order, as CompanyDetail.
for off in 0 100 200; do
    [ "$(code -H "$H" "$U/companies?limit=100&offset=$off")" = 200 ] ||
        fail "page $off status"
    cp "$T/body" "$T/page$off.json"
done
python3 - "$T" "$COMPANIES" <<'EOF' || fail "REST pages"
import json, sys
t, n = sys.argv[1], int(sys.argv[2])
pages = [json.load(open("%s/page%d.json" % (t, o)))["data"] for o in (0, 100, 200)]
assert [len(p) for p in pages] == [100, n - 100, 0], [len(p) for p in pages]
ids = [c["id"] for p in pages for c in p]
assert len(set(ids)) == n, "duplicate ids"
for c in pages[0]:
    assert isinstance(c["keys"], list) and all(set(k) == {"key", "value"} for k in c["keys"])
    assert all("definition" in tr for tr in c["entity_traits"])
    assert isinstance(c["billing_credit_balances"], dict)
EOF

# TLS: the throwaway CA is trusted, an unrelated one is not.
TU="https://127.0.0.1:$TLS_PORT"
[ "$(code --cacert "$T/pki/ca.pem" -H "$H" "$TU/users/count")" = 200 ] ||
    fail "https count"
grep -qx "{\"data\":{\"count\":$USERS}}" "$T/body" || fail "https body"
[ "$(code --cacert "$T/pki/ca.pem" -H "$H" "https://localhost:$TLS_PORT/users/count")" = 200 ] ||
    fail "https by name"
curl -s -o /dev/null --cacert "$T/pki/other-ca.pem" "$TU/users/count" &&
    fail "https accepted with an unrelated CA"

# ---- WebSocket ---------------------------------------------------------
cat >"$T/ws.py" <<'EOF'
import base64, hashlib, json, os, socket, ssl, struct

class WS:
    """A minimal RFC 6455 client (standard library only)."""

    def __init__(self, port, headers, tls=None, path="/datastream"):
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        if tls:
            s = ssl.create_default_context(cafile=tls).wrap_socket(
                s, server_hostname="localhost")
        self.s, self.buf = s, b""
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n" % (path, port, key))
        req += "".join("%s: %s\r\n" % kv for kv in headers.items())
        s.sendall((req + "\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = lines[0]
        self.headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip()
                        for l in lines[1:]}
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.accept_ok = self.headers.get("sec-websocket-accept") == want.decode()

    def _more(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError
        self.buf += d

    def send(self, obj, opcode=1):
        p = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        m = os.urandom(4)
        n = len(p)
        h = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else
                                      bytes([0x80 | 126]) + struct.pack(">H", n))
        self.s.sendall(h + m + bytes(b ^ m[i % 4] for i, b in enumerate(p)))

    def recv(self):
        """(opcode, payload); EOFError when the TCP connection ends."""
        while len(self.buf) < 2:
            self._more()
        n, off = self.buf[1] & 0x7f, 2
        if n >= 126:
            off = 4 if n == 126 else 10
            while len(self.buf) < off:
                self._more()
            n = int.from_bytes(self.buf[2:off], "big")
        while len(self.buf) < off + n:
            self._more()
        op, p = self.buf[0] & 0x0f, self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return op, p

    def subscribe(self, replay_from=None):
        for et in ("rulesengine.Companies", "rulesengine.Users",
                   "rulesengine.Flags"):
            d = {"action": "start", "entity_type": et}
            if replay_from:
                d["replay_from"] = replay_from
            self.send({"data": d})
EOF

python3 - "$T" "$PORT" "$TLS_PORT" "$N" <<'EOF' || fail "websocket checks"
import json, sys
sys.path.insert(0, sys.argv[1])
from ws import WS
t, port, tls_port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
base = 1767225600000

# A wrong key: the upgrade succeeds, then close code 4001 and the end.
w = WS(port, {"X-Schematic-Api-Key": "wrong"})
assert w.status.startswith("HTTP/1.1 101"), w.status
op, p = w.recv()
assert op == 8 and int.from_bytes(p[:2], "big") == 4001, (op, p)
try:
    w.recv()
    raise AssertionError("data after the close frame")
except EOFError:
    pass

# Only /datastream upgrades.
try:
    w = WS(port, {"X-Schematic-Api-Key": "test-key"}, path="/other")
    assert not w.status.startswith("HTTP/1.1 101"), w.status
except (EOFError, ConnectionError):
    pass

# The replicator's three requests.
w = WS(port, {"X-Schematic-Api-Key": "test-key",
              "X-Schematic-Datastream-Mode": "replicator",
              "X-Schematic-Client": "smoke", "X-Schematic-Client-Version": "1.2.3"})
assert w.status.startswith("HTTP/1.1 101") and w.accept_ok, w.status
assert "sec-websocket-protocol" not in w.headers
w.subscribe()
ctl = []
for _ in range(3):
    op, p = w.recv()
    assert op == 1
    ctl.append(json.loads(p))
for m, et in zip(ctl[:2], ("rulesengine.Companies", "rulesengine.Users")):
    assert m == {"data": {}, "entity_id": None, "entity_type": et,
                 "message_type": "full"}, m
snap = ctl[2]
assert snap["entity_type"] == "rulesengine.Flags" and snap["message_type"] == "full"
assert "stream_id" not in snap and len(snap["data"]) == 12, snap.keys()
assert any(f["key"] != f["key"].lower() for f in snap["data"]), "no mixed-case flag key"

pos, bad, reloads, kinds = 0, [], 0, set()
while pos < n:
    op, p = w.recv()
    if op == 2:
        bad.append("binary")
        continue
    try:
        m = json.loads(p.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        bad.append(type(e).__name__)
        continue
    if m.get("message_type") == "reload":
        assert m == {"data": None, "entity_id": None, "entity_type": "",
                     "message_type": "reload"}, m
        assert pos == 1000, pos
        reloads += 1
        continue
    if "stream_id" not in m:
        bad.append("no stream_id")
        continue
    pos += 1
    assert m["stream_id"] == "%d-0" % (base + pos), (pos, m["stream_id"])
    et, mt = m["entity_type"], m["message_type"]
    kinds.add((et, mt))
    if et in ("rulesengine.Company", "rulesengine.User"):
        assert m["entity_id"] and (mt == "partial" or m["data"]["id"] == m["entity_id"])
assert reloads == 1, reloads
# After every 400 messages: 7 malformed frames, cycling through 6 kinds.
assert len(bad) == n // 400, bad
for want in [(et, mt) for et in ("rulesengine.Company", "rulesengine.User")
             for mt in ("full", "partial", "delete")] + [
        ("rulesengine.Flag", "full"), ("rulesengine.Flag", "delete")]:
    assert want in kinds, want

# Resuming: messages after replay_from, no second reload (TLS this time).
w2 = WS(tls_port, {"X-Schematic-Api-Key": "test-key"}, tls=t + "/pki/ca.pem")
w2.subscribe("%d-0" % (base + n - 5))
for _ in range(3):
    w2.recv()
got = []
while len(got) < 5:
    op, p = w2.recv()
    m = json.loads(p)
    assert m.get("message_type") != "reload"
    got.append(int(m["stream_id"].split("-")[0]) - base)
assert got == list(range(n - 4, n + 1)), got

# Direct-mode lookups answer from the current state.
exp = json.load(open(t + "/expect.json"))
lk = sorted(k for k in exp if k.startswith("schematic:company:c0ffee01:domain:"))[0]
w2.send({"data": {"entity_type": "rulesengine.Company",
                  "keys": {"domain": lk.rsplit(":", 1)[1].upper()}}})
m = json.loads(w2.recv()[1])
assert m["message_type"] == "full" and '"%s"' % m["entity_id"] == exp[lk], m
w2.send({"data": {"entity_type": "rulesengine.User", "keys": {"id": "nobody"}}})
m = json.loads(w2.recv()[1])
assert m["message_type"] == "error" and m["data"]["keys"] == {"id": "nobody"}, m
EOF

# The event log: the connection's headers (never the key), its requests.
python3 - "$T/ts.log" <<'EOF' || fail "event log"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
conn = [e for e in ev if e["event"] == "connect"]
assert conn[0]["headers"] == {"x-schematic-api-key": "invalid"} and not conn[0]["api_key_ok"]
h = [e for e in conn if e["headers"].get("x-schematic-client") == "smoke"][0]["headers"]
assert h["x-schematic-datastream-mode"] == "replicator" and h["x-schematic-client-version"] == "1.2.3"
assert h["x-schematic-api-key"] == "valid"
assert any(e["tls"] for e in conn)
req = [e["data"] for e in ev if e["event"] == "request"]
assert {"action": "start", "entity_type": "rulesengine.Flags"} in req
assert sum(e["event"] == "reload" for e in ev) == 1
assert sum(e["event"] == "rest" for e in ev) >= 10
assert all(isinstance(e["t_ms"], int) for e in ev)
assert "test-key" not in open(sys.argv[1]).read()
EOF

# After the whole stream, a new load (count, then pages) sees the final
# state: the same companies and users, with the same keys, as the
# expected cache.
for k in companies users; do
    code -H "$H" "$U/$k/count" >/dev/null
    code -H "$H" "$U/$k?limit=1000&offset=0" >/dev/null
    cp "$T/body" "$T/final_$k.json"
done
python3 - "$T" <<'EOF' || fail "REST final state vs expected"
import json, sys
t = sys.argv[1]
exp = json.load(open(t + "/expect.json"))
for kind, ns in (("companies", "company"), ("users", "user")):
    items = json.load(open("%s/final_%s.json" % (t, kind)))["data"]
    pre = "schematic:%s:c0ffee01:" % ns
    want = {k[len(pre):] for k in exp if k.startswith(pre) and k.count(":") == 3}
    got = {c["id"] for c in items}
    assert got == want, (kind, len(got), len(want), sorted(got - want)[:5], sorted(want - got)[:5])
    for c in items:
        for kv in c["keys"]:
            key = pre + kv["key"].lower() + ":" + kv["value"].lower()
            assert exp.get(key) == '"%s"' % c["id"], key
EOF

# ---- drops, rate, stall ------------------------------------------------
"$TESTSERVER" --seed 1 --companies 5 --users 5 --flags 2 --messages 100 \
    --disconnect-every 20 --rate 200 --port 0 --ready-file "$T/ra" \
    >"$T/sa.out" 2>&1 &
PA=$!
"$TESTSERVER" --seed 1 --companies 5 --users 5 --flags 2 --messages 100 \
    --stall-after 10 --port 0 --ready-file "$T/rb" >"$T/sb.out" 2>&1 &
PB=$!
CLEANUP_PIDS="$CLEANUP_PIDS $PA $PB"
wait_for test -s "$T/ra" || fail "server A: $(cat "$T/sa.out")"
wait_for test -s "$T/rb" || fail "server B: $(cat "$T/sb.out")"
python3 - "$T" "$(cut -d' ' -f1 "$T/ra")" "$(cut -d' ' -f1 "$T/rb")" <<'EOF' ||
import json, socket, sys, time
sys.path.insert(0, sys.argv[1])
from ws import WS
a, b = int(sys.argv[2]), int(sys.argv[3])
base = 1767225600000

def stream(w):
    """Stream positions until the connection ends (without a close frame)."""
    got = []
    while True:
        try:
            op, p = w.recv()
        except EOFError:
            return got
        assert op == 1, "opcode %d: a close frame on a drop" % op
        m = json.loads(p)
        if "stream_id" in m:
            got.append(int(m["stream_id"].split("-")[0]) - base)

# --disconnect-every 20 at --rate 200: 20 messages per connection, resumed
# from replay_from, and 20 messages take at least ~95 ms.
w = WS(a, {"X-Schematic-Api-Key": "test-key"})
w.subscribe()
t0 = time.monotonic()
assert stream(w) == list(range(1, 21))
assert time.monotonic() - t0 >= 0.08, time.monotonic() - t0
w = WS(a, {"X-Schematic-Api-Key": "test-key"})
w.subscribe("%d-0" % (base + 20))
assert stream(w) == list(range(21, 41))

# --stall-after 10: 10 messages, then nothing, and no pong.
w = WS(b, {"X-Schematic-Api-Key": "test-key"})
w.subscribe()
for _ in range(3):
    w.recv()
got = [json.loads(w.recv()[1])["stream_id"] for _ in range(10)]
assert got[-1] == "%d-0" % (base + 10), got
w.send(b"", opcode=9)
w.s.settimeout(1.0)
try:
    op, p = w.recv()
    raise AssertionError("a frame after the stall: %d %r" % (op, p[:60]))
except socket.timeout:
    pass
EOF
    fail "drop / rate / stall"
kill -TERM $PA $PB
wait $PA || fail "server A exit"
wait $PB || fail "server B exit"

# ---- statecheck against a hand-fed redis-server ------------------------
start_redis
python3 - "$REDIS_PORT" "$T/expect.json" <<'EOF' || fail "feeding redis"
import json, socket, sys
exp = json.load(open(sys.argv[2]))
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def cmd(*a):
    a = [x.encode() for x in a]
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
out = b"".join(cmd("SET", k, v) for k, v in exp.items())
out += cmd("SET", "schematic:company:oldver:comp_1", "{}")
s.sendall(out)
f = s.makefile("rb")
for _ in range(len(exp) + 1):
    assert f.readline() == b"+OK\r\n"
EOF
SC="python3 tests/support/statecheck.py --port $REDIS_PORT --expect $T/expect.json"
$SC >"$T/sc.out" || fail "statecheck on the exact state: $(cat "$T/sc.out")"
grep -q "OK" "$T/sc.out" || fail "statecheck output"
FLAG=$(python3 -c 'import json,sys; print(sorted(k for k in json.load(open(sys.argv[1])) if ":flags:" in k)[0])' "$T/expect.json")
rcli GET "$FLAG" >"$T/flag.txt"
rcli DEL "$FLAG" >/dev/null
rcli SET schematic:user:c0ffee01:user_999999 '{}' >/dev/null
$SC >"$T/sc.out" && fail "statecheck passed a wrong state"
grep -q "1 missing, 1 extra, 0 different" "$T/sc.out" || fail "diff: $(cat "$T/sc.out")"
grep -q "missing   $FLAG" "$T/sc.out" || fail "missing key not shown"
rcli DEL schematic:user:c0ffee01:user_999999 >/dev/null
( sleep 1; head -c -1 "$T/flag.txt" | redis-cli -p "$REDIS_PORT" -x SET "$FLAG" >/dev/null ) &
$SC --wait 10 >"$T/sc.out" || fail "statecheck --wait: $(cat "$T/sc.out")"
rcli SET "$FLAG" '{}' >/dev/null
$SC >"$T/sc.out" && fail "statecheck passed a wrong value"
grep -q "0 missing, 0 extra, 1 different" "$T/sc.out" || fail "diff: $(cat "$T/sc.out")"

# ---- shutdown ----------------------------------------------------------
kill -TERM "$TS"
wait "$TS"
rc=$?
[ "$rc" -eq 0 ] || fail "server exited $rc on SIGTERM: $(cat "$T/ts.err")"
[ -s "$T/ts.err" ] && fail "server stderr: $(cat "$T/ts.err")"
echo "testserver_smoke: ok"
