#!/bin/sh
# README.md's configuration reference is generated from the option tables
# (`make reference`); this fails when the two have drifted apart.
. tests/lib.sh
BUILD="$BUILD" sh tests/gen-reference.sh >"$T/gen.md"
awk '/^<!-- BEGIN generated reference/ {on = 1; next}
     /^<!-- END generated reference/ {on = 0}
     on' README.md >"$T/readme.md"
diff -u "$T/readme.md" "$T/gen.md" >"$T/diff" ||
    { cat "$T/diff"; fail "README.md reference differs from the option tables: run make reference"; }
grep -q '### sink.redis' "$T/gen.md" || fail "no sink.redis section generated"
echo ok
