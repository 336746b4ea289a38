#!/bin/sh
# tests/image/base.sh IMAGE: builds a Debian 12 (bookworm) base image named
# IMAGE with debootstrap from this machine's own apt configuration, and
# imports it into podman or docker ($ENGINE). For machines that reach
# Debian's mirror but no container registry. The mirror is read from
# /etc/apt/sources.list and /etc/apt/sources.list.d/ at run time; none is
# written into the repository.
set -e
IMAGE=$1
: "${ENGINE:=podman}"

# The first Debian archive (not the security one) in the apt sources, in
# either the one-line or the deb822 format.
mirror() {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        sed -n -e 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' \
            -e 's/^URIs: *\([^ ]*\).*/\1/p' "$f"
    done | grep -v -e security -e '^$' | head -n 1
}

M=$(mirror)
[ -n "$M" ] || { echo "base.sh: no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }
command -v debootstrap >/dev/null 2>&1 || {
    echo "base.sh: debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 1
}
ROOT=$(mktemp -d /tmp/ferry-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "base.sh: debootstrap bookworm from $M"
debootstrap --variant=minbase bookworm "$ROOT" "$M" >"$ROOT.log" 2>&1 ||
    { tail -n 20 "$ROOT.log" >&2; rm -f "$ROOT.log"; exit 1; }
rm -f "$ROOT.log"
# A slim image: no apt lists or caches, as debian:bookworm-slim ships.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin \
    "$ROOT"/var/cache/apt/archives/*.deb
tar -C "$ROOT" -c . | "$ENGINE" import - "$IMAGE" >/dev/null
echo "base.sh: imported $IMAGE"
