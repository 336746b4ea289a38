#!/bin/sh
# make install lays out the binary, the plugins, the headers and
# ferry-plugin.pc under PREFIX, and pkg-config finds the headers.
. tests/lib.sh
make --no-print-directory -s install BUILD="$BUILD" PREFIX="$T/prefix" \
    >"$T/install.log" 2>&1 || { cat "$T/install.log"; fail "make install failed"; }
for f in bin/ferry include/ferry/plugin.h include/ferry/host.h \
    include/ferry/message.h include/ferry/options.h include/ferry/status.h \
    lib/ferry/plugins/sink_redis.so lib/ferry/plugins/source_websocket.so \
    lib/pkgconfig/ferry-plugin.pc; do
    [ -f "$T/prefix/$f" ] || fail "make install did not install $f"
done
cflags=$(PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig" pkg-config --cflags ferry-plugin) ||
    fail "pkg-config does not know ferry-plugin"
[ "$(echo $cflags)" = "-I$T/prefix/include" ] || fail "ferry-plugin cflags: $cflags"
"$T/prefix/bin/ferry" plugins -d "$T/prefix/lib/ferry/plugins" | grep -q "sink    redis" ||
    fail "the installed binary does not list the installed plugins"
echo ok
