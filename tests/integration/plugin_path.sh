#!/bin/sh
# `plugin =` takes a path to a .so as well as a name: absolute, or relative
# to the configuration file that set it (not to the working directory).
# The loader's checks apply unchanged, and `ferry check` prints the
# resolved file.
. tests/lib.sh
FERRY_ABS=$(cd "$(dirname "$FERRY")" && pwd)/$(basename "$FERRY")
TP="$PWD/$BUILD/tests/plugins"
PD=$(plugin_dir)
mkdir -p "$T/vendor" "$T/conf/sub" "$T/elsewhere"
cp "$PD/sink_null.so" "$T/vendor/my_sink.so"
cp "$TP/bad_major.so" "$TP/source_gen.so" "$T/vendor/"
V=$(cd "$T/vendor" && pwd -P)

cat >"$T/conf/ferry.ini" <<INI
[ferry]
plugin_dir = $TP
http_listen =
[source.gen]
plugin = gen
count = 50
[sink.out]
plugin = ../vendor/my_sink.so
[route.r]
from = gen
to = out
INI
# Run from another folder with a relative -c: the path follows the file.
(cd "$T/elsewhere" && "$FERRY_ABS" check -c ../conf/ferry.ini) \
    >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "check with a relative plugin path failed"; }
grep -qx "plugin = $V/my_sink.so" "$T/out" ||
    { cat "$T/out"; fail "ferry check does not print the resolved plugin file"; }
grep -qx "plugin = gen" "$T/out" || fail "a plugin named by name is no longer printed by name"

# The plugin loaded by path really runs.
(cd "$T/elsewhere" && "$FERRY_ABS" run -c ../conf/ferry.ini) >"$T/run.out" 2>&1 ||
    { cat "$T/run.out"; fail "run with a plugin loaded by path failed"; }

# Absolute paths work, and a path set in an included file is relative to
# that file.
cat >"$T/conf/sub/sink.ini" <<INI
[sink.out]
plugin = ../../vendor/my_sink.so
INI
cat >"$T/abs.ini" <<INI
[ferry]
plugin_dir = $TP
include = $T/conf/sub/sink.ini
[source.gen]
plugin = $V/source_gen.so
[route.r]
from = gen
to = out
INI
"$FERRY" check -c "$T/abs.ini" >"$T/out" 2>"$T/err" ||
    { cat "$T/err"; fail "check with an absolute path and an included path failed"; }
grep -qx "plugin = $V/source_gen.so" "$T/out" || { cat "$T/out"; fail "absolute path not printed"; }
grep -qx "plugin = $V/my_sink.so" "$T/out" || { cat "$T/out"; fail "included relative path not resolved"; }

# check_refused INI_BODY MESSAGE: ferry check exits 2 naming the problem.
check_refused() {
    printf '%s\n' "$1" >"$T/conf/bad.ini"
    "$FERRY" check -c "$T/conf/bad.ini" >"$T/out" 2>"$T/err"
    rc=$?
    [ $rc -eq 2 ] || { cat "$T/err"; fail "check exited $rc, not 2, for: $2"; }
    grep -qF "$2" "$T/err" || { cat "$T/err"; fail "message missing: $2"; }
}
check_refused "[sink.out]
plugin = ../vendor/bad_major.so" "$V/bad_major.so: ABI major 2, core supports 1"
check_refused "[sink.out]
plugin = ../vendor/source_gen.so" "$V/source_gen.so: plugin kind 'source', expected 'sink'"
check_refused "[sink.out]
plugin = ../vendor/missing.so" "$T/conf/../vendor/missing.so: cannot load"
# The duplicate-name rule spans names and paths.
check_refused "[ferry]
plugin_dir = $PD
[sink.a]
plugin = null
[sink.b]
plugin = ../vendor/my_sink.so" "$V/my_sink.so: plugin name 'null' (sink) is already loaded from $PD/sink_null.so"
echo ok
