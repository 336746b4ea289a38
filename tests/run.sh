#!/bin/sh
# Runs every unit test binary and every integration script, prints one
# line per test and a closing "N passed, N failed" line; exits nonzero on
# any failure. Integration scripts may be skipped with FERRY_UNIT_ONLY=1.
# FERRY_SCRIPTS=dir runs only that directory's scripts (no unit tests):
# make test-redis-topologies uses it for tests/topology.
: "${BUILD:=build}"
export BUILD
FERRY="$BUILD/ferry"
TESTSERVER="$BUILD/tests/testserver"
export FERRY TESTSERVER
if [ -n "$SANITIZER" ]; then
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0"
fi
passed=0
failed=0
failures=""
logdir="$BUILD/test-logs"
mkdir -p "$logdir"

run_one() {
    name=$1
    shift
    start=$(date +%s)
    if "$@" >"$logdir/$name.log" 2>&1; then
        passed=$((passed + 1))
        echo "PASS $name ($(( $(date +%s) - start ))s)"
    else
        failed=$((failed + 1))
        failures="$failures $name"
        echo "FAIL $name ($(( $(date +%s) - start ))s)"
        tail -n 40 "$logdir/$name.log" | sed 's/^/    /'
    fi
}

scripts=${FERRY_SCRIPTS:-tests/integration}
[ -n "$FERRY_SCRIPTS" ] && FERRY_UNIT_ONLY_BIN=1
for t in "$BUILD"/tests/test_*; do
    [ -n "$FERRY_UNIT_ONLY_BIN" ] && break
    case "$t" in *.o|*.d) continue ;; esac
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
if [ -z "$FERRY_UNIT_ONLY" ]; then
    for s in "$scripts"/*.sh; do
        [ -f "$s" ] || continue
        run_one "$(basename "$s" .sh)" sh "$s"
    done
fi
echo
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
