#!/bin/sh
# Installs what ferry needs to build, test, bench and demo: Debian packages
# with apt-get, and the Node SDK the interop test runs (npm ci, from the
# committed package-lock.json). Idempotent: a no-op when all is there.
set -e
cd "$(dirname "$0")/.."
PKGS="build-essential pkg-config libwebsockets-dev libhiredis-dev libinih-dev
libcmocka-dev libjansson-dev libcurl4-openssl-dev libssl-dev openssl
redis-server redis-tools curl python3 time libsystemd-dev systemd"
# make test-image also needs a container engine and a way to build a base
# image from Debian's packages.
[ "${FERRY_DEPS_IMAGE:-0}" = 1 ] && PKGS="$PKGS podman runc debootstrap"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
# Node.js may come from another repository (nodesource): only install
# Debian's when there is none at all.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

if [ ! -d tests/interop/node_modules ]; then
    echo "deps: installing the Node SDK for the interop test (npm ci)"
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi
