#!/bin/sh
# Replaces the generated configuration reference in README.md.
set -e
: "${BUILD:=build}"
gen=$(mktemp)
BUILD="$BUILD" sh tests/gen-reference.sh >"$gen"
awk -v gen="$gen" '
    /^<!-- BEGIN generated reference/ { print; while ((getline l < gen) > 0) print l; skip = 1; next }
    /^<!-- END generated reference/ { skip = 0 }
    !skip { print }
' README.md >README.md.new
mv README.md.new README.md
rm -f "$gen"
