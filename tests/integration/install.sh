#!/bin/sh
# make install lays out the binary, the plugins, the headers,
# ferry-plugin.pc, the configuration and the systemd unit under PREFIX, and
# pkg-config finds the headers. The installed binary finds its plugins from
# its own location (no -d, no FERRY_PLUGIN_DIR, no rebuild for PREFIX), and
# checks the installed etc/ferry/ferry.ini.
. tests/lib.sh
make --no-print-directory -s install BUILD="$BUILD" PREFIX="$T/prefix" \
    >"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "make install failed"; }
for f in bin/ferry include/ferry/plugin.h include/ferry/host.h \
    include/ferry/message.h include/ferry/options.h include/ferry/status.h \
    lib/ferry/plugins/sink_redis.so lib/ferry/plugins/source_websocket.so \
    lib/pkgconfig/ferry-plugin.pc etc/ferry/ferry.ini \
    lib/systemd/system/ferry.service; do
    [ -f "$T/prefix/$f" ] || fail "make install did not install $f"
done
cflags=$(PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig" pkg-config --cflags ferry-plugin) ||
    fail "pkg-config does not know ferry-plugin"
[ "$(echo $cflags)" = "-I$T/prefix/include" ] || fail "ferry-plugin cflags: $cflags"
"$T/prefix/bin/ferry" plugins -d "$T/prefix/lib/ferry/plugins" | grep -q "sink    redis" ||
    fail "the installed binary does not list the installed plugins"
unset FERRY_PLUGIN_DIR
(cd / && "$T/prefix/bin/ferry" plugins) >"$T/plugins.out" 2>&1 ||
    { cat "$T/plugins.out"; fail "ferry plugins without -d failed"; }
grep -q "sink    redis" "$T/plugins.out" ||
    { cat "$T/plugins.out"; fail "the installed binary does not find its plugins by itself"; }
grep -q "^refused" "$T/plugins.out" && { cat "$T/plugins.out"; fail "an installed plugin is refused"; }
(cd / && SCHEMATIC_API_KEY=dummy-key "$T/prefix/bin/ferry" check \
    -c "$T/prefix/etc/ferry/ferry.ini") >"$T/check.out" 2>&1 ||
    { cat "$T/check.out"; fail "ferry check on the installed ferry.ini failed"; }
grep -q "configuration OK" "$T/check.out" || { cat "$T/check.out"; fail "no OK line"; }
# The unit runs the installed binary with the installed configuration.
grep -q "^ExecStart=$T/prefix/bin/ferry run -c $T/prefix/etc/ferry/ferry.ini\$" \
    "$T/prefix/lib/systemd/system/ferry.service" ||
    fail "the installed unit does not point at the installed files"
# A second install keeps an edited ferry.ini.
echo "# edited" >>"$T/prefix/etc/ferry/ferry.ini"
make --no-print-directory -s install BUILD="$BUILD" PREFIX="$T/prefix" \
    >"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "second make install failed"; }
grep -q "^# edited" "$T/prefix/etc/ferry/ferry.ini" || fail "make install overwrote ferry.ini"
[ -f "$T/prefix/etc/ferry/ferry.ini.dist" ] || fail "no ferry.ini.dist beside a kept ferry.ini"
echo ok
