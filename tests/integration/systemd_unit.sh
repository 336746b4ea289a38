#!/bin/sh
# etc/ferry.service as make install lays it out: systemd-analyze verify
# accepts it and systemd-analyze security rates its exposure 2.5 or lower.
# Then Type=notify: ferry run with NOTIFY_SOCKET on a python3 datagram
# socket sends READY=1 with a STATUS= line, RELOADING=1 then READY=1
# around a SIGHUP, WATCHDOG=1 when WATCHDOG_USEC is set, and STOPPING=1;
# a worker wedged in its sink's write() stops the watchdog pings.
. tests/lib.sh

make --no-print-directory -s install BUILD="$BUILD" PREFIX="$T/prefix" \
    >"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "make install failed"; }
UNIT="$T/prefix/lib/systemd/system/ferry.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$UNIT" >"$T/verify.out" 2>&1 ||
        { cat "$T/verify.out"; fail "systemd-analyze verify refused the unit"; }
    grep -v "^$" "$T/verify.out" && fail "systemd-analyze verify warned"
    systemd-analyze security --offline=yes "$UNIT" >"$T/security.out" 2>&1
    level=$(sed -n 's/.*Overall exposure level for ferry.service: \([0-9.]*\).*/\1/p' \
        "$T/security.out")
    [ -n "$level" ] || { cat "$T/security.out"; fail "no exposure level"; }
    awk -v l="$level" 'BEGIN { exit !(l <= 2.5) }' ||
        { cat "$T/security.out"; fail "exposure $level is above 2.5"; }
    echo "systemd-analyze security: exposure $level"
else
    echo "SKIP systemd-analyze checks: systemd-analyze is not installed" \
        "(Debian package systemd)"
fi

# The notification protocol, against a socket of our own.
cat >"$T/notify.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        data = s.recv(4096).decode()
        for line in data.split("\n"):
            out.write(line + "\n")
        out.flush()
PY
python3 "$T/notify.py" "$T/notify.sock" "$T/notify.log" &
CLEANUP_PIDS="$CLEANUP_PIDS $!"
wait_for test -S "$T/notify.sock" || fail "the notify socket did not appear"
cat >"$T/run.ini" <<INI
[ferry]
plugin_dir = $PWD/$BUILD/tests/plugins
http_listen =
[source.gen]
plugin = gen
count = 10
linger = true
[sink.out]
plugin = $(plugin_dir)/sink_null.so
[route.r]
from = gen
to = out
INI
NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=400000 "$FERRY" run -c "$T/run.ini" \
    >"$T/ferry.log" 2>&1 &
FPID=$!
CLEANUP_PIDS="$CLEANUP_PIDS $FPID"
wait_for grep -qx "READY=1" "$T/notify.log" || { cat "$T/ferry.log"; fail "no READY=1"; }
grep -q "^STATUS=running: 1 source, 1 route, gen at " "$T/notify.log" ||
    { cat "$T/notify.log"; fail "no useful STATUS= line"; }
wait_for grep -qx "WATCHDOG=1" "$T/notify.log" ||
    { cat "$T/notify.log"; fail "no WATCHDOG=1 with WATCHDOG_USEC set"; }
kill -HUP $FPID
wait_for sh -c "grep -A100 -x RELOADING=1 '$T/notify.log' | grep -qx READY=1" ||
    { cat "$T/notify.log" "$T/ferry.log"; fail "no RELOADING=1 then READY=1 after SIGHUP"; }
grep -q "^MONOTONIC_USEC=[0-9]" "$T/notify.log" || fail "RELOADING=1 without MONOTONIC_USEC"
kill -TERM $FPID
wait $FPID || { cat "$T/ferry.log"; fail "ferry exited nonzero"; }
grep -qx "STOPPING=1" "$T/notify.log" || fail "no STOPPING=1"

# A wedged worker (tests/plugins/sink_wedge.c blocks while its gate file
# exists): no WATCHDOG=1 while wedged, a STATUS= saying why, pings again
# once it returns.
case $BUILD in /*) B=$BUILD ;; *) B=$PWD/$BUILD ;; esac
: >"$T/gate"
cat >"$T/wedge.ini" <<INI
[ferry]
plugin_dir = $B/tests/plugins
http_listen =
[source.gen]
plugin = gen
count = 100
linger = true
[sink.stuck]
plugin = $B/tests/plugins/sink_wedge.so
gate = $T/gate
[route.r]
from = gen
to = stuck
workers = 1
INI
NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=200000 FERRY_WATCHDOG_MS=300 \
    "$FERRY" run -c "$T/wedge.ini" >"$T/wedge.log" 2>&1 &
FPID=$!
CLEANUP_PIDS="$CLEANUP_PIDS $FPID"
wait_for grep -q "^STATUS=wedged: route r worker 0: sink.stuck write()" \
    "$T/notify.log" || { cat "$T/notify.log" "$T/wedge.log"; fail "no wedged STATUS="; }
: >"$T/notify.log"
sleep 0.5
grep -qx "WATCHDOG=1" "$T/notify.log" && fail "WATCHDOG=1 while a worker is wedged"
rm -f "$T/gate"
wait_for grep -qx "WATCHDOG=1" "$T/notify.log" || fail "no WATCHDOG=1 after the wedge"
kill -TERM $FPID
wait $FPID || { cat "$T/wedge.log"; fail "ferry exited nonzero after the wedge"; }
echo ok
