#!/bin/sh
# README.md's metric list is generated from the live registry (`make
# metrics-reference`, tests/gen-metrics.sh); this fails when the two have
# drifted apart: a metric added, renamed or removed, or its type, labels
# or help changed, without the README following.
. tests/lib.sh
BUILD="$BUILD" FERRY="$FERRY" TESTSERVER="$TESTSERVER" \
    sh tests/gen-metrics.sh >"$T/gen.md" || fail "tests/gen-metrics.sh failed"
awk '/^<!-- BEGIN generated metrics/ {on = 1; next}
     /^<!-- END generated metrics/ {on = 0}
     on' README.md >"$T/readme.md"
[ -s "$T/readme.md" ] || fail "README.md has no generated metrics markers"
diff -u "$T/readme.md" "$T/gen.md" >"$T/diff" ||
    { cat "$T/diff"; fail "README.md metric list differs from the registry: run make metrics-reference"; }
for n in ferry_build_info process_resident_memory_bytes ferry_ready \
    ferry_config_reloads_total ferry_source_messages_total; do
    grep -q "^| \`$n\` |" "$T/gen.md" || fail "$n not generated"
done
echo ok
