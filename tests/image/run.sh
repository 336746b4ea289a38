#!/bin/sh
# tests/image/run.sh (make test-image): builds the Dockerfile with podman or
# docker and runs the demo pipeline in it: ferry in the container with
# /etc/ferry/ferry.ini and the Go service's variables (docker run -e), a
# redis-server and the bundled datastream test server outside it on
# loopback (--network=host). Passes when Redis holds the test server's
# expected final state and /health, /ready answer 200 from the container.
#
# The base image is debian:bookworm-slim when the engine has it (or can
# pull it, with IMAGE_PULL=1); otherwise tests/image/base.sh builds one from Debian's packages
# with debootstrap and this machine's apt configuration. Prints SKIP and
# exits 0 only when no engine can run a container here.
#
#   ENGINE=podman|docker   the engine (default: the first that answers)
#   IMAGE_REV=HEAD         build that commit instead of the work tree
: "${BUILD:=build}"
: "${FERRY:=$BUILD/ferry}"
: "${TESTSERVER:=$BUILD/tests/testserver}"
. tests/lib.sh
IMAGE=${FERRY_IMAGE:-localhost/ferry:test}
LOCAL_BASE=localhost/ferry-debian:bookworm
NAME=ferry-image-test-$$

skip() {
    echo "SKIP image test: $*"
    exit 0
}

ENGINE=${ENGINE:-}
if [ -z "$ENGINE" ]; then
    for e in podman docker; do
        command -v $e >/dev/null 2>&1 && $e info >/dev/null 2>&1 &&
            { ENGINE=$e; break; }
    done
fi
[ -n "$ENGINE" ] || skip "neither podman nor docker can reach a container engine" \
    "(apt-get install podman, or start dockerd)"
"$ENGINE" info >"$T/info.log" 2>&1 ||
    skip "$ENGINE cannot reach its engine: $(tail -n 1 "$T/info.log")"
export ENGINE
exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

# The base: the real one if the engine has it (or, with IMAGE_PULL=1, can
# pull it), else a local build. No registry is asked by default: a test
# machine may reach Debian's mirror and nothing else.
BASE=debian:bookworm-slim
if ! exists "$BASE" && { [ "${IMAGE_PULL:-0}" != 1 ] ||
    ! "$ENGINE" pull -q "docker.io/library/$BASE" >"$T/pull.log" 2>&1; }; then
    echo "image: no $BASE here (IMAGE_PULL=1 pulls it); using $LOCAL_BASE"
    BASE=$LOCAL_BASE
    exists "$BASE" || sh tests/image/base.sh "$BASE" ||
        fail "cannot build a local Debian 12 base image"
fi
# Sandboxes (a VM without a systemd host, cgroups v1 and v2 mixed, a
# capped RLIMIT_NPROC) may refuse podman's defaults: crun's "cgroups in
# hybrid mode not supported" and the default rlimits podman sets. Retry
# with runc and limits this host allows before giving up.
if ! "$ENGINE" run --rm --network=host "$BASE" true >"$T/run.log" 2>&1 &&
    [ "$ENGINE" = podman ] && command -v runc >/dev/null 2>&1; then
    echo "image: podman's defaults fail here ($(tail -n 1 "$T/run.log"));" \
        "retrying with runc and host-sized rlimits"
    cat >"$T/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
    CONTAINERS_CONF="$T/containers.conf"
    export CONTAINERS_CONF
fi
"$ENGINE" run --rm --network=host "$BASE" true >"$T/run.log" 2>&1 ||
    skip "$ENGINE cannot run a container here: $(tail -n 1 "$T/run.log")"

# The build context: the work tree, or with IMAGE_REV=<rev> that commit
# (git archive), which other people's uncommitted edits cannot break.
CTX=.
if [ -n "${IMAGE_REV:-}" ]; then
    mkdir -p "$T/ctx"
    git archive "$IMAGE_REV" | tar -x -C "$T/ctx" || fail "git archive $IMAGE_REV"
    CTX="$T/ctx"
fi
start=$(date +%s)
echo "image: $ENGINE build --build-arg BASE=$BASE -t $IMAGE ${IMAGE_REV:-.}"
# podman's default OCI format drops HEALTHCHECK; the docker format keeps
# it.
FMT=""
[ "$ENGINE" = podman ] && FMT="--format docker"
"$ENGINE" build $FMT --network=host --build-arg BASE="$BASE" -t "$IMAGE" "$CTX" \
    >"$T/build.log" 2>&1 || { tail -n 40 "$T/build.log"; fail "image build failed"; }
echo "image: built in $(( $(date +%s) - start ))s"

# The image's contract.
[ "$("$ENGINE" run --rm --no-healthcheck --network=host --entrypoint id "$IMAGE" -u)" != 0 ] ||
    fail "the image runs as root"
"$ENGINE" image inspect "$IMAGE" >"$T/inspect.json" || fail "inspect failed"
python3 - "$T/inspect.json" <<'PY' || fail "image metadata"
import json, sys
img = json.load(open(sys.argv[1]))[0]
cfg = img.get("Config") or img.get("config") or {}
ports = cfg.get("ExposedPorts") or {}
assert any(p.startswith("8090") for p in ports), ports
labels = cfg.get("Labels") or {}
for k in ("title", "version", "source"):
    assert "org.opencontainers.image." + k in labels, labels
hc = cfg.get("Healthcheck") or img.get("Healthcheck") or {}
assert "/health" in " ".join(hc.get("Test") or []), hc
PY

# The demo pipeline: redis-server and the test server on loopback.
start_redis --appendonly no
start_testserver --seed 7 --base-ms now --companies 300 --users 300 \
    --flags 20 --messages 3000 --rate 2000 --cache-version c0ffee01 \
    --expect "$T/expect.json"
HP=$(free_port)
# --no-healthcheck: podman runs health checks from systemd timers, which a
# host without systemd lacks; the check's command runs below by hand.
"$ENGINE" run -d --no-healthcheck --name "$NAME" --network=host \
    -e SCHEMATIC_API_KEY=test-key \
    -e SCHEMATIC_API_URL="http://127.0.0.1:$TS_PORT" \
    -e REDIS_ADDR="127.0.0.1:$REDIS_PORT" \
    -e CACHE_VERSION=c0ffee01 \
    -e HEALTH_PORT="$HP" \
    -e LOG_LEVEL=info \
    "$IMAGE" >"$T/cid" 2>&1 || { cat "$T/cid"; fail "container did not start"; }
trap '"$ENGINE" logs "$NAME" >"$T/ferry.log" 2>&1; "$ENGINE" rm -f "$NAME" >/dev/null 2>&1; cleanup' EXIT

done=0
i=0
while [ $i -lt 90 ]; do
    [ "$("$ENGINE" inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ] ||
        { "$ENGINE" logs "$NAME" 2>&1 | tail -n 30; fail "ferry exited in the container"; }
    if python3 tests/support/statecheck.py --port "$REDIS_PORT" \
        --expect "$T/expect.json" --version c0ffee01 >/dev/null 2>&1; then
        done=1
        break
    fi
    sleep 1
    i=$((i + 1))
done
[ $done = 1 ] || {
    python3 tests/support/statecheck.py --port "$REDIS_PORT" \
        --expect "$T/expect.json" --version c0ffee01
    "$ENGINE" logs "$NAME" 2>&1 | tail -n 30
    fail "Redis did not reach the expected state within 90 s"
}
for p in health ready; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/$p")
    [ "$code" = 200 ] || fail "/$p answered $code"
done
"$ENGINE" exec "$NAME" curl -fsS -o /dev/null "http://127.0.0.1:$HP/health" ||
    fail "the HEALTHCHECK command fails inside the container"
"$ENGINE" stop -t 40 "$NAME" >/dev/null || fail "stop failed"
rc=$("$ENGINE" inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$rc" = 0 ] || { "$ENGINE" logs "$NAME" 2>&1 | tail -n 20; fail "ferry exited $rc on SIGTERM"; }
echo "image: ok ($(( $(date +%s) - start ))s from the build)"
