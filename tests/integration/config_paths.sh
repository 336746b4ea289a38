#!/bin/sh
# Path options (FERRY_OPT_PATH) are relative to the configuration file
# that set them, not to the working directory: a configuration in one
# folder, run from another, reads its source_file path and writes its
# sink_file path beside itself (a key set in an included file, beside
# that file). `ferry check` prints the resolved paths.
. tests/lib.sh
case $BUILD in /*) PD=$BUILD/plugins ;; *) PD=$PWD/$BUILD/plugins ;; esac
case $FERRY in /*) F=$FERRY ;; *) F=$PWD/$FERRY ;; esac

mkdir -p "$T/conf/data" "$T/conf/out" "$T/shared/in" "$T/elsewhere"
for n in 1 2 3; do
    echo "{\"id\":\"u$n\",\"type\":\"user\",\"n\":$n}"
done >"$T/conf/data/in.jsonl"
echo '{"id":"t1","type":"team"}' >"$T/shared/in/teams.jsonl"

cat >"$T/shared/base.ini" <<INI
[source.teams]
plugin = file
format = jsonl
path = in/teams.jsonl
INI
cat >"$T/conf/ferry.ini" <<INI
[ferry]
include = ../shared/base.ini
plugin_dir = $PD
http_listen =
metrics_interval = 0
[source.users]
plugin = file
format = jsonl
path = data/in.jsonl
[sink.out]
plugin = file
path = out/users.jsonl
[sink.stdout]
plugin = file
path = -
[route.users]
from = users
to = out
[route.teams]
from = teams
to = out
INI

cd "$T/elsewhere" || fail "cd"
"$F" check -c ../conf/ferry.ini >"$T/check" 2>"$T/check.err" ||
    { cat "$T/check.err"; fail "ferry check refused the configuration"; }
# The effective configuration shows each path resolved against the folder
# of the file that set it, as the working directory sees it.
grep -qxF "path = ../conf/data/in.jsonl" "$T/check" ||
    { cat "$T/check"; fail "source_file path not resolved against its file"; }
grep -qxF "path = ../conf/out/users.jsonl" "$T/check" ||
    { cat "$T/check"; fail "sink_file path not resolved against its file"; }
grep -qxF "path = ../conf/../shared/in/teams.jsonl" "$T/check" ||
    { cat "$T/check"; fail "a path set in an include is not beside the include"; }
grep -qxF "path = -" "$T/check" || { cat "$T/check"; fail "'-' must stay '-'"; }
grep -qxF "plugin_dir = $PD" "$T/check" ||
    { cat "$T/check"; fail "an absolute plugin_dir must stay as it is"; }

# An absolute configuration path gives absolute paths.
"$F" check -c "$T/conf/ferry.ini" >"$T/check.abs" 2>&1 ||
    { cat "$T/check.abs"; fail "ferry check (absolute -c)"; }
grep -qxF "path = $T/conf/data/in.jsonl" "$T/check.abs" ||
    { cat "$T/check.abs"; fail "absolute -c: source path"; }

"$F" run -c ../conf/ferry.ini 2>"$T/run.err" ||
    { cat "$T/run.err"; fail "ferry run exited non-zero"; }
[ ! -e "$T/elsewhere/out" ] && [ ! -e "$T/elsewhere/data" ] ||
    fail "ferry wrote or read relative to the working directory"
[ -f "$T/conf/out/users.jsonl" ] || { cat "$T/run.err"; fail "no output beside the configuration"; }
n=$(grep -c '"user' "$T/conf/out/users.jsonl")
[ "$n" -eq 3 ] || { cat "$T/conf/out/users.jsonl"; fail "expected 3 users in the output, got $n"; }
grep -q '"t1"' "$T/conf/out/users.jsonl" ||
    { cat "$T/conf/out/users.jsonl"; fail "the included source's file was not read"; }
echo ok
