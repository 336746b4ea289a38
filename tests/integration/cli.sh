#!/bin/sh
# The command line: ferry check (errors with FILE:LINE and exit 2, secrets
# masked), a missing ${VAR}, a second -c refused, version, plugins,
# inspect, and the one-symbol rule for every plugin.
. tests/lib.sh
P="$PWD/$BUILD/tests/plugins"

cat > "$T/typo.ini" <<INI
[ferry]
plugin_dir = $P
[source.gen]
plugin = gen
[sink.check]
plugin = check
entites = 10
[route.r]
from = gen
to = check
INI
"$FERRY" check -c "$T/typo.ini" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 2 ] || fail "check on a misspelled key exited $rc, not 2"
grep -qF "$T/typo.ini:7: [sink.check] unknown key 'entites' (did you mean 'entities'?)" "$T/err" ||
    { cat "$T/err"; fail "misspelled key message"; }

cat > "$T/env.ini" <<INI
[ferry]
plugin_dir = $P
[source.gen]
plugin = gen
count = \${FERRY_TEST_UNSET_VARIABLE}
INI
unset FERRY_TEST_UNSET_VARIABLE
"$FERRY" check -c "$T/env.ini" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 2 ] || fail "check with an unset variable exited $rc, not 2"
grep -q "FERRY_TEST_UNSET_VARIABLE" "$T/err" || { cat "$T/err"; fail "variable not named"; }
grep -q "$T/env.ini:5:" "$T/err" || { cat "$T/err"; fail "no FILE:LINE for the variable"; }

cat > "$T/good.ini" <<INI
[ferry]
plugin_dir = $P
http_listen =
[source.gen]
plugin = gen
[sink.check]
plugin = check
token = \${FERRY_TEST_TOKEN}
[route.r]
from = gen
to = check
workers = 3
INI
FERRY_TEST_TOKEN=hunter2-secret "$FERRY" check -c "$T/good.ini" >"$T/out" 2>"$T/err" ||
    { cat "$T/err"; fail "check on a valid file failed"; }
grep -q "hunter2" "$T/out" "$T/err" && fail "a secret reached ferry check output"
grep -qx "token = \*\*\*" "$T/out" || { cat "$T/out"; fail "secret not shown as ***"; }
grep -qx "workers = 3" "$T/out" || fail "effective route settings missing"
grep -qx "batch_size = 10" "$T/out" || fail "defaults missing from the effective config"

# Several -c files: refused with exit 2 (never one dropped in silence),
# for check and run alike, naming both files and the include that layers
# them.
for cmd in check run; do
    "$FERRY" $cmd -c "$T/typo.ini" -c "$T/good.ini" >"$T/out" 2>"$T/err"
    rc=$?
    [ $rc -eq 2 ] || fail "$cmd with two -c files exited $rc, not 2"
    grep -qF "'$T/typo.ini', then '$T/good.ini'" "$T/err" ||
        { cat "$T/err"; fail "$cmd with two -c files: both files not named"; }
    grep -q "include" "$T/err" || { cat "$T/err"; fail "no include hint"; }
    [ ! -s "$T/out" ] || { cat "$T/out"; fail "$cmd with two -c files printed a configuration"; }
done

"$FERRY" run -c "$T/missing.ini" 2>"$T/err"
[ $? -eq 2 ] || fail "run with a missing file must exit 2"
"$FERRY" bogus 2>/dev/null
[ $? -eq 2 ] || fail "unknown command must exit 2"

"$FERRY" version | grep -q "^ferry " || fail "ferry version"
"$FERRY" plugins -d "$BUILD/plugins" >"$T/plugins" || fail "ferry plugins"
grep -q "source" "$T/plugins" && grep -q "file" "$T/plugins" || { cat "$T/plugins"; fail "plugins listing"; }
"$FERRY" inspect "$BUILD/plugins/sink_file.so" >"$T/inspect" || fail "inspect"
grep -q "path" "$T/inspect" || fail "inspect shows no options"
"$FERRY" inspect "$BUILD/tests/plugins/bad_major.so" >/dev/null 2>&1
[ $? -eq 2 ] || fail "inspect of a broken plugin must exit 2"

# Every plugin exports ferry_plugin and nothing else of its own.
for so in "$BUILD"/plugins/*.so "$BUILD"/tests/plugins/source_gen.so; do
    syms=$(nm -D --defined-only "$so" | awk '{print $3}' |
        grep -v -E '^(_init|_fini|_edata|_end|__bss_start|__odr_asan\..*)$' | tr '\n' ' ')
    [ "$syms" = "ferry_plugin " ] || fail "$so exports: $syms"
done
echo ok
