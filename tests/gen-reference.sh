#!/bin/sh
# Prints the configuration reference from the option tables themselves:
# the core's [ferry] and [route.NAME] keys, then every shipped plugin.
# `make reference` writes it into README.md; tests/integration/
# readme_reference.sh fails when README.md and the tables differ.
set -e
: "${BUILD:=build}"
"$BUILD/ferry" inspect --markdown core
for kind in source sink policy; do
    for so in "$BUILD"/plugins/${kind}_*.so; do
        [ -f "$so" ] || continue
        printf '\n'
        "$BUILD/ferry" inspect --markdown "$so"
    done
done
