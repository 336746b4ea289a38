#!/bin/sh
# The interior walls: file sizes, no core header from plugins/, no include
# circles (tests/support/layout.py), and the build itself keeps core/ off
# the include path of every plugin and plugin library.
. tests/lib.sh

python3 tests/support/layout.py . "$BUILD" >"$T/layout" ||
    { cat "$T/layout"; fail "the source layout breaks a rule above"; }

# The compile line of a plugin and of a plugin library must not see core/.
for obj in "$BUILD/plugins/sink_null/sink_null.o" \
    "$BUILD/plugins/lib/json/jsonscan.o"; do
    line=$(make -s -n -B BUILD="$BUILD" "$obj" 2>/dev/null | grep ' -c ')
    [ -n "$line" ] || fail "make -n printed no compile line for $obj"
    case "$line" in
    *core*) fail "a plugin compile line names core/: $line" ;;
    esac
done

# A plugin that includes a core header does not build: prove it with a
# throwaway plugin compiled exactly as the Makefile compiles plugins.
mkdir -p "$T/plugins/sink_bad"
cat >"$T/plugins/sink_bad/bad.c" <<'EOF'
#include "sched_int.h"
EOF
line=$(make -s -n -B BUILD="$BUILD" "$BUILD/plugins/sink_null/sink_null.o" |
    grep ' -c ' | sed "s| -o [^ ]*| -o $T/bad.o|; s| plugins/sink_null/sink_null.c| $T/plugins/sink_bad/bad.c|")
if sh -c "$line" >"$T/bad.log" 2>&1; then
    fail "a plugin including sched_int.h compiled: core/ is on the plugin include path"
fi
grep -q "sched_int.h" "$T/bad.log" || { cat "$T/bad.log"; fail "unexpected compiler error"; }

# The binary exports nothing for plugins to resolve (no -rdynamic).
n=$(nm -D --defined-only "$FERRY" | grep -c ' T ferry_' || true)
[ "$n" -eq 0 ] || fail "$FERRY exports $n ferry_ functions (-rdynamic?)"
echo ok
