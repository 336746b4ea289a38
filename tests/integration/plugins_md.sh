#!/bin/sh
# PLUGINS.md: its complete example is plugins/sink_null/sink_null.c
# verbatim, builds on its own with the documented flags against the
# headers as `make install` lays them out (found with pkg-config through
# ferry-plugin.pc), exports only `ferry_plugin`, and loads with
# `ferry inspect`. The `ferry plugins` lines the guide shows are what ferry
# prints.
. tests/lib.sh

md=PLUGINS.md
src=plugins/sink_null/sink_null.c

# The ```c block right after the BEGIN marker, up to its closing fence.
awk -v begin="<!-- BEGIN $src -->" '
    $0 == begin { found = 1; next }
    found && !open && $0 == "```c" { open = 1; next }
    open && $0 == "```" { exit }
    open { print }
' "$md" >"$T/example.c"
[ -s "$T/example.c" ] || fail "$md: no \`\`\`c block after <!-- BEGIN $src -->"
diff -u "$src" "$T/example.c" >"$T/diff" ||
    fail "$md: the example differs from $src: $(cat "$T/diff")"

# A stand-in for `make install`: the same substitution as the Makefile's
# install recipe, and the headers where it puts them.
prefix="$T/prefix"
mkdir -p "$prefix/include/ferry" "$prefix/lib/pkgconfig"
cp include/ferry/*.h "$prefix/include/ferry/"
sed -e "s|@PREFIX@|$prefix|g" -e 's|@VERSION@|0.0.0-test|g' \
    ferry-plugin.pc.in >"$prefix/lib/pkgconfig/ferry-plugin.pc"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cflags=$(pkg-config --cflags ferry-plugin) || fail "pkg-config ferry-plugin"
cflags=$(echo $cflags) # pkg-config ends the line with a blank
[ "$cflags" = "-I$prefix/include" ] || fail "Cflags: got '$cflags'"
plugindir=$(pkg-config --variable=plugindir ferry-plugin)
[ "$plugindir" = "$prefix/lib/ferry/plugins" ] ||
    fail "plugindir: got '$plugindir'"

# Build outside the tree, as PLUGINS.md says, with strict warnings.
cd "$T" || fail "cd $T"
cc -std=c11 -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes \
    -Wmissing-prototypes -Wformat=2 -Wvla -Wno-unused-parameter -Werror \
    -shared -fPIC -fvisibility=hidden -Wl,-z,defs $cflags \
    -o sink_null.so example.c 2>cc.log || fail "example does not build: $(cat cc.log)"
cd "$OLDPWD" || fail "cd back"
syms=$(nm -D --defined-only "$T/sink_null.so" | awk '{ print $3 }')
[ "$syms" = "ferry_plugin" ] || fail "exported symbols: $syms"

"$FERRY" inspect "$T/sink_null.so" >"$T/inspect.txt" 2>&1 ||
    fail "ferry inspect failed: $(cat "$T/inspect.txt")"
grep -q '^name: *null$' "$T/inspect.txt" || fail "inspect: $(cat "$T/inspect.txt")"
grep -q '^kind: *sink$' "$T/inspect.txt" || fail "inspect: $(cat "$T/inspect.txt")"
grep -q '^  delay  *duration  *0  *0ms\.\.10s ' "$T/inspect.txt" ||
    fail "inspect: no delay option: $(cat "$T/inspect.txt")"
"$FERRY" inspect --markdown "$T/sink_null.so" >"$T/inspect.md" ||
    fail "ferry inspect --markdown failed"
grep -q '^| `delay` | duration | `0` | sleep this long in every write' \
    "$T/inspect.md" || fail "inspect --markdown: $(cat "$T/inspect.md")"

# The `ferry plugins` lines shown in the guide.
"$FERRY" plugins -d "$BUILD/plugins" >"$T/plugins.txt" ||
    fail "ferry plugins failed"
for name in file null; do
    line=$(grep "^sink    $name " "$md")
    [ -n "$line" ] || fail "$md: no 'ferry plugins' line for sink $name"
    grep -qxF "$line" "$T/plugins.txt" ||
        fail "'ferry plugins' does not print: $line; it prints: $(cat "$T/plugins.txt")"
done
"$FERRY" plugins -d "$T/no-such-dir" >/dev/null 2>&1
[ $? -eq 2 ] || fail "ferry plugins on a missing directory should exit 2"
echo "PLUGINS.md example matches $src, builds out of tree and loads"
