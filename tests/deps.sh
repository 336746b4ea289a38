#!/bin/sh
# Installs the Debian packages ferry needs to build, test, bench and demo.
# Idempotent: does nothing when everything is there.
set -e
PKGS="build-essential pkg-config libwebsockets-dev libhiredis-dev libinih-dev
libcmocka-dev libjansson-dev libcurl4-openssl-dev libssl-dev openssl
redis-server redis-tools curl python3 nodejs npm"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
