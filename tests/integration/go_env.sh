#!/bin/sh
# The Go replicator's environment (issue 11): each of the 35 variables of
# its main.go, read by etc/ferry.ini, set to a valid value takes effect in
# the effective configuration `ferry check` prints (or prints its one
# notice line), and set to an invalid value fails `ferry check` with exit
# 2 and a message naming the variable. Then: secrets stay out of the
# output, and README's migration table lists exactly the variables
# etc/ferry.ini reads.
. tests/lib.sh

cat >"$T/go.ini" <<INI
[ferry]
include = $PWD/etc/ferry.ini
plugin_dir = $(plugin_dir)
INI

# Every variable etc/ferry.ini reads: ${VAR...}, ${!VAR...} and [env.VAR].
ini_vars() {
    {
        grep -v '^[[:space:]]*[#;]' etc/ferry.ini |
            grep -o '\${!\{0,1\}[A-Za-z_][A-Za-z0-9_]*' |
            sed 's/^\${!\{0,1\}//'
        sed -n 's/^\[env\.\([A-Za-z0-9_]*\)\].*/\1/p' etc/ferry.ini
    } | sort -u
}
UNSET=""
for v in $(ini_vars); do UNSET="$UNSET -u $v"; done

# check [VAR=VALUE]: `ferry check` on etc/ferry.ini with only that variable
# (and SCHEMATIC_API_KEY, which has no default) set; output in $T/out and
# $T/err, exit code in $rc.
check() {
    # shellcheck disable=SC2086
    env $UNSET SCHEMATIC_API_KEY=test-key "$@" \
        "$FERRY" check -c "$T/go.ini" >"$T/out" 2>"$T/err"
    rc=$?
}

# eff SECTION KEY: the effective value of KEY in [SECTION] in $T/out.
eff() {
    awk -v s="[$1]" -v k="$2" '
        $0 == s { on = 1; next }
        /^\[/ { on = 0 }
        on && $1 == k { sub(/^[^=]*= ?/, ""); print; exit }' "$T/out"
}

check
[ $rc -eq 0 ] || { cat "$T/err"; fail "etc/ferry.ini with no variable set exited $rc"; }
[ -s "$T/err" ] && { cat "$T/err"; fail "etc/ferry.ini alone logs something"; }
[ "$(eff ferry http_listen)" = "0.0.0.0:8090" ] ||
    fail "http_listen is $(eff ferry http_listen), not 0.0.0.0:8090 as in Go"

# VAR|valid value|section (or notice, or - for accepted silently)|key (or
# the notice's words)|expected effective value|invalid value (or - where
# every value is valid: the reason is in the comment above the row).
n=0
nbad=0
while IFS='|' read -r var good sec key want bad; do
    case $var in '' | '#'*) continue ;; esac
    n=$((n + 1))
    check "$var=$good"
    [ $rc -eq 0 ] || { cat "$T/err"; fail "$var=$good: ferry check exited $rc"; }
    case $sec in
    notice)
        [ "$(grep -c "WARN .*$var=$good: " "$T/err")" -eq 1 ] ||
            { cat "$T/err"; fail "$var=$good: no single notice line"; }
        grep -qF "$key" "$T/err" || { cat "$T/err"; fail "$var: notice lacks '$key'"; }
        ;;
    -)
        [ -s "$T/err" ] && { cat "$T/err"; fail "$var=$good is not silent"; }
        ;;
    *)
        got=$(eff "$sec" "$key")
        [ "$got" = "$want" ] ||
            fail "$var=$good: [$sec] $key is '$got', expected '$want'"
        ;;
    esac
    [ "$bad" = "-" ] && continue
    nbad=$((nbad + 1))
    check "$var=$bad"
    [ $rc -eq 2 ] || { cat "$T/err"; fail "$var=$bad: ferry check exited $rc, not 2"; }
    grep -q "$var" "$T/err" || { cat "$T/err"; fail "$var=$bad: the error does not name $var"; }
done <<'TABLE'
SCHEMATIC_API_KEY|sk-go-secret|source.datastream|api_key|***|
SCHEMATIC_API_URL|http://127.0.0.1:1|source.datastream|api_url|http://127.0.0.1:1|api.schematichq.com
SCHEMATIC_DATASTREAM_URL|ws://127.0.0.1:1/datastream|source.datastream|url|ws://127.0.0.1:1/datastream|ftp://x
CACHE_TTL|1.5h|sink.cache|ttl|1.5h|1d
CACHE_CLEANUP_INTERVAL|30m|sink.cache|cleanup_interval|30m|often
LOG_LEVEL|DEBUG|ferry|log_level|debug|loud
HEALTH_PORT|9000|ferry|http_listen|0.0.0.0:9000|http
WS_PING_INTERVAL|15s|source.datastream|ping_interval|15s|fast
WS_PONG_WAIT|1m2.5s|source.datastream|pong_wait|1m2.5s|40
REDIS_ADDR|redis.local:6380|sink.cache|address|redis.local:6380|redis.local
# REDIS_PASSWORD: any text is a password.
REDIS_PASSWORD|p4ss-go-secret|sink.cache|password|***|-
REDIS_DB|3|sink.cache|db|3|three
REDIS_TLS|false|-|||true
REDIS_CLUSTER_MODE|false|-|||TRUE
REDIS_CLUSTER_ADDRS||sink.cache|cluster_addrs||a:7000,b:7001
REDIS_ENABLE_MAINTENANCE_NOTIFICATIONS|true|notice|Redis Cloud client feature||sure
WRITER_LOCK_DISABLED|true|sink.cache|writer_lock|false|maybe
WRITER_LOCK_TTL|30s|sink.cache|lock_ttl|30s|1d
# WRITER_LOCK_KEY, REPLAY_CURSOR_KEY: any Redis key is valid.
WRITER_LOCK_KEY|app:writer_lock|sink.cache|lock_key|app:writer_lock|-
NUM_WORKERS|4|route.companies|workers|4|many
BATCH_SIZE|50|route.users|batch_size|50|0
BATCH_TIMEOUT|500us|route.flags|batch_timeout|500us|1d
COMPANY_CHANNEL_SIZE|2000|route.companies|channel_size|2000|-1
USER_CHANNEL_SIZE|3000|route.users|channel_size|3000|big
FLAGS_CHANNEL_SIZE|50|route.flags|channel_size|50|0
CIRCUIT_BREAKER_THRESHOLD|3|policy.breaker|threshold|3|x
CIRCUIT_BREAKER_TIMEOUT|15s|policy.breaker|timeout|15s|1d
USE_ASYNC_LOADING|false|notice|never blocks the stream||nope
ASYNC_LOADER_PAGE_SIZE|200|source.datastream|bulk_page_size|200|x
ASYNC_LOADER_MAX_CONCURRENT_REQUESTS|8|source.datastream|bulk_concurrency|8|0
ASYNC_LOADER_RATE_LIMIT_RPS|20|source.datastream|bulk_rate|20|fast
ASYNC_LOADER_CIRCUIT_BREAKER_THRESHOLD|7|notice|never skips one||0
ASYNC_LOADER_CIRCUIT_BREAKER_TIMEOUT|45s|notice|never skips one||1d
REPLAY_DISABLED|true|source.datastream|replay|false|maybe
REPLAY_CURSOR_KEY|app:cursor|sink.cache|cursor_key|app:cursor|-
TABLE
[ $n -eq 35 ] || fail "the table has $n variables, not the Go service's 35"

# SCHEMATIC_API_KEY has no default: unset or empty, it is an error naming it.
env $UNSET "$FERRY" check -c "$T/go.ini" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 2 ] && grep -q SCHEMATIC_API_KEY "$T/err" ||
    { cat "$T/err"; fail "unset SCHEMATIC_API_KEY: exit $rc"; }
check SCHEMATIC_API_KEY=
[ $rc -eq 2 ] && grep -q SCHEMATIC_API_KEY "$T/err" ||
    { cat "$T/err"; fail "empty SCHEMATIC_API_KEY: exit $rc"; }

# The TLS refusal says why, and never starts in plain text.
check REDIS_TLS=true
grep -q "REDIS_TLS=true: TLS to Redis is not supported yet" "$T/err" ||
    { cat "$T/err"; fail "REDIS_TLS=true message"; }

# The error for an invalid value names the file, the line and the key too.
check CACHE_TTL=1d
grep -q "etc/ferry.ini:[0-9]*: \[sink.cache\] ttl: '1d' is not a duration .*(from \$CACHE_TTL)" "$T/err" ||
    { cat "$T/err"; fail "CACHE_TTL=1d message"; }

# Secrets never appear, in the output or in errors.
check SCHEMATIC_API_KEY=sk-go-secret REDIS_PASSWORD=p4ss-go-secret CACHE_TTL=1d
if grep -q "go-secret" "$T/out" "$T/err"; then fail "a secret was printed"; fi

# Several variables together, as a Go deployment sets them.
check WRITER_LOCK_DISABLED=false REPLAY_DISABLED=false NUM_WORKERS=2 \
    USE_ASYNC_LOADING=true REDIS_TLS=false
[ $rc -eq 0 ] || { cat "$T/err"; fail "a Go deployment's variables"; }
[ "$(eff sink.cache writer_lock)" = true ] && [ "$(eff source.datastream replay)" = true ] &&
    [ "$(eff route.users workers)" = 2 ] || fail "combined variables"
[ "$(grep -c WARN "$T/err")" -eq 1 ] || { cat "$T/err"; fail "one notice for USE_ASYNC_LOADING"; }

# README's migration table lists exactly the variables etc/ferry.ini reads.
awk '/^### Migrating from schematic-replicator/ { on = 1; next }
     on && /^##/ { on = 0 }
     on && /^\| `[A-Z_0-9]*` / { sub(/^\| `/, ""); sub(/`.*/, ""); print }' README.md |
    sort -u >"$T/readme.vars"
ini_vars >"$T/ini.vars"
[ -s "$T/readme.vars" ] || fail "README has no migration table"
diff "$T/ini.vars" "$T/readme.vars" >"$T/vars.diff" ||
    { cat "$T/vars.diff"; fail "README's migration table differs from etc/ferry.ini (< ini, > README)"; }

echo "go_env: $n Go variables valid, $nbad invalid (the others take any text); README table matches"
