# tests/lib.sh: helpers for integration scripts (sourced, POSIX sh + bash).
#
# Every script runs with BUILD (build dir), FERRY (the binary), and
# TESTSERVER (the bundled datastream server) set by tests/run.sh, in its own
# temporary directory $T that is removed afterwards. Helpers start servers
# on free loopback ports and register them for cleanup.

: "${BUILD:=build}"
: "${FERRY:=$BUILD/ferry}"
: "${TESTSERVER:=$BUILD/tests/testserver}"
T=$(mktemp -d /tmp/ferry-test.XXXXXX)
CLEANUP_PIDS=""

cleanup() {
    for p in $CLEANUP_PIDS; do kill "$p" 2>/dev/null; done
    for p in $CLEANUP_PIDS; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do
            sleep 0.1; i=$((i + 1))
        done
        kill -9 "$p" 2>/dev/null
    done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# free_port: prints a TCP port nobody listens on.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for CMD...: retries CMD for up to WAIT_S (default 10) seconds.
wait_for() {
    i=0
    limit=$(( ${WAIT_S:-10} * 10 ))
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -ge $limit ] && return 1
        sleep 0.1
    done
    return 0
}

# start_redis [extra args]: starts redis-server on a free port in $T,
# exports REDIS_PORT and REDIS_PID.
start_redis() {
    REDIS_PORT=$(free_port)
    mkdir -p "$T/redis-$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --dir "$T/redis-$REDIS_PORT" --daemonize no "$@" \
        >"$T/redis-$REDIS_PORT.log" 2>&1 &
    REDIS_PID=$!
    CLEANUP_PIDS="$CLEANUP_PIDS $REDIS_PID"
    export REDIS_PORT REDIS_PID
    wait_for redis-cli -p "$REDIS_PORT" ping || fail "redis-server did not start"
}

rcli() {
    redis-cli -p "$REDIS_PORT" "$@"
}

# rss_kb PID: resident set size in kB.
rss_kb() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

# plugin_dir: the absolute plugin folder of $BUILD.
plugin_dir() {
    case $BUILD in /*) echo "$BUILD/plugins" ;; *) echo "$PWD/$BUILD/plugins" ;; esac
}

# start_testserver ARGS...: the bundled datastream server on a free port
# (log in $T/ts.log); sets TS_PORT.
start_testserver() {
    "$TESTSERVER" --port 0 --ready-file "$T/ts.ready" "$@" >"$T/ts.log" 2>&1 &
    CLEANUP_PIDS="$CLEANUP_PIDS $!"
    wait_for test -s "$T/ts.ready" || { cat "$T/ts.log"; fail "test server did not start"; }
    TS_PORT=$(cut -d' ' -f1 "$T/ts.ready")
}

# production_ini FILE HTTP_PORT: etc/ferry.ini itself, pointed at the test
# server ($TS_PORT) and redis-server ($REDIS_PORT) through an overlay, with
# cache version c0ffee01. Append overriding sections to FILE as needed.
production_ini() {
    cat >"$1" <<INI
[ferry]
include = $PWD/etc/ferry.ini
plugin_dir = $(plugin_dir)
http_listen = 127.0.0.1:$2
[source.datastream]
api_key = test-key
api_url = http://127.0.0.1:$TS_PORT
bulk_rate = 200
[sink.cache]
address = 127.0.0.1:$REDIS_PORT
cache_version = c0ffee01
INI
}
