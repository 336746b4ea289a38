#!/bin/sh
# promcheck_selftest: tests/support/promcheck.py accepts valid Prometheus
# text format 0.0.4 and rejects each kind of invalid exposition, naming
# the offending line.
. tests/lib.sh

PC="python3 tests/support/promcheck.py"
n=0

# valid NAME TEXT [promcheck args]: TEXT (printf format) must pass.
valid() {
    name=$1 text=$2
    shift 2
    n=$((n + 1))
    printf "$text" >"$T/in.$n"
    if ! $PC "$T/in.$n" "$@" 2>"$T/err.$n"; then
        cat "$T/err.$n" >&2
        fail "valid input '$name' was rejected"
    fi
}

# invalid NAME LINE TEXT [promcheck args]: TEXT must fail, and the report
# must name line LINE (0: a whole-text problem, no line number).
invalid() {
    name=$1 line=$2 text=$3
    shift 3
    n=$((n + 1))
    printf "$text" >"$T/in.$n"
    if $PC "$T/in.$n" "$@" 2>"$T/err.$n"; then
        fail "invalid input '$name' was accepted"
    fi
    if [ "$line" -gt 0 ]; then
        grep -q "^promcheck: line $line: " "$T/err.$n" ||
            fail "'$name': report does not name line $line: $(cat "$T/err.$n")"
    else
        grep -q "^promcheck: " "$T/err.$n" ||
            fail "'$name': no report: $(cat "$T/err.$n")"
    fi
}

H='# HELP ferry_x_total Things.\n# TYPE ferry_x_total counter\n'
HIST='# HELP ferry_lat_seconds Latency.\n# TYPE ferry_lat_seconds histogram\n'

# ---- valid ----------------------------------------------------------------
valid "empty exposition" ''
valid "counter with labels" \
    "${H}"'ferry_x_total{route="a",reason="full"} 3\nferry_x_total{route="b",reason="full"} 0\n'
valid "gauge without HELP, no labels" \
    '# TYPE ferry_up gauge\nferry_up 1\n'
valid "special values and exponent" \
    '# TYPE g gauge\ng{a="1"} NaN\ng{a="2"} +Inf\ng{a="3"} -Inf\ng{a="4"} -1.5e-3\ng{a="5"} .5\n'
valid "timestamp" '# TYPE g gauge\ng 1 1700000000000\n'
valid "escapes in label and HELP" \
    '# HELP g Line one\\nstill \\\\ help.\n# TYPE g gauge\ng{a="q\\"x\\\\y\\nz"} 1\n'
valid "trailing comma and empty label set" \
    '# TYPE g gauge\ng{a="1",} 1\ng{} 2\n'
valid "UTF-8 label value" '# TYPE g gauge\ng{a="caf\303\251"} 1\n'
valid "colon in metric name" '# TYPE ns:rate gauge\nns:rate 1\n'
valid "TYPE without samples" '# TYPE g gauge\n# TYPE h counter\nh 1\n'
valid "histogram" \
    "${HIST}"'ferry_lat_seconds_bucket{route="a",le="0.005"} 1\nferry_lat_seconds_bucket{route="a",le="0.1"} 4\nferry_lat_seconds_bucket{route="a",le="+Inf"} 5\nferry_lat_seconds_sum{route="a"} 0.75\nferry_lat_seconds_count{route="a"} 5\nferry_lat_seconds_bucket{route="b",le="1"} 0\nferry_lat_seconds_bucket{route="b",le="+Inf"} 0\nferry_lat_seconds_sum{route="b"} 0\nferry_lat_seconds_count{route="b"} 0\n'
valid "summary" \
    '# TYPE s summary\ns{quantile="0.5"} 1\ns{quantile="1"} 3\ns_sum 10\ns_count 4\n'
valid "untyped" '# TYPE u untyped\nu -3\n'
valid "--require present" "${H}"'ferry_x_total 1\n# TYPE ferry_y gauge\n' \
    --require ferry_x_total ferry_y
valid "--require-samples present" "${H}"'ferry_x_total 1\n' \
    --require-samples ferry_x_total

# ---- invalid: lines and syntax --------------------------------------------
invalid "no final newline" 2 '# TYPE g gauge\ng 1'
invalid "blank line" 2 '# TYPE g gauge\n\ng 1\n'
invalid "free comment" 1 '# just a comment\n# TYPE g gauge\ng 1\n'
invalid "carriage return" 2 '# TYPE g gauge\ng 1\r\n'
invalid "trailing space" 2 '# TYPE g gauge\ng 1 \n'
invalid "leading space" 2 '# TYPE g gauge\n g 1\n'
invalid "two spaces" 2 '# TYPE g gauge\ng  1\n'
invalid "tab separator" 2 '# TYPE g gauge\ng\t1\n'
invalid "bad metric name" 2 '# TYPE g gauge\n1g 1\n'
invalid "bad name in TYPE" 1 '# TYPE 1g gauge\n'
invalid "bad label name" 2 '# TYPE g gauge\ng{1a="x"} 1\n'
invalid "reserved label name" 2 '# TYPE g gauge\ng{__name__="x"} 1\n'
invalid "unquoted label value" 2 '# TYPE g gauge\ng{a=x} 1\n'
invalid "unterminated label value" 2 '# TYPE g gauge\ng{a="x} 1\n'
invalid "unterminated label set" 2 '# TYPE g gauge\ng{a="x" 1\n'
invalid "missing comma" 2 '# TYPE g gauge\ng{a="x"b="y"} 1\n'
invalid "bad escape in label" 2 '# TYPE g gauge\ng{a="\\t"} 1\n'
invalid "bad escape in HELP" 1 '# HELP g tab\\there\n# TYPE g gauge\n'
invalid "duplicate label" 2 '# TYPE g gauge\ng{a="1",a="2"} 1\n'
invalid "no value" 2 '# TYPE g gauge\ng\n'
invalid "bad value" 2 '# TYPE g gauge\ng one\n'
invalid "hex value" 2 '# TYPE g gauge\ng 0x10\n'
invalid "unsigned Inf" 2 '# TYPE g gauge\ng Inf\n'
invalid "bad timestamp" 2 '# TYPE g gauge\ng 1 1.5\n'
invalid "extra field" 2 '# TYPE g gauge\ng 1 2 3\n'
invalid "invalid UTF-8" 2 '# TYPE g gauge\ng{a="\377"} 1\n'

# ---- invalid: HELP and TYPE -----------------------------------------------
invalid "sample without TYPE" 1 'g 1\n'
invalid "HELP but no TYPE" 2 '# HELP g G.\ng 1\n'
invalid "unknown type" 1 '# TYPE g meter\n'
invalid "TYPE without type" 1 '# TYPE g\n'
invalid "second TYPE" 2 '# TYPE g gauge\n# TYPE g gauge\ng 1\n'
invalid "second HELP" 3 '# HELP g a\n# TYPE g gauge\n# HELP g b\ng 1\n'
invalid "TYPE after samples" 3 '# TYPE g gauge\ng 1\n# HELP g late\n'
invalid "family group split" 5 \
    '# TYPE g gauge\ng{a="1"} 1\n# TYPE h gauge\nh 1\ng{a="2"} 1\n'
invalid "TYPE again after group" 3 \
    '# TYPE g gauge\n# TYPE h gauge\n# TYPE g gauge\n'
invalid "sample of another name in group" 2 '# TYPE g gauge\ng_total 1\n'

# ---- invalid: series and values --------------------------------------------
invalid "duplicate series" 4 \
    "${H}"'ferry_x_total{a="1",b="2"} 1\nferry_x_total{b="2",a="1"} 2\n'
invalid "duplicate unlabelled series" 3 '# TYPE g gauge\ng 1\ng 2\n'
invalid "negative counter" 3 "${H}"'ferry_x_total -1\n'

# ---- invalid: histograms and summaries -------------------------------------
invalid "bucket without le" 3 "${HIST}"'ferry_lat_seconds_bucket 1\n'
invalid "le out of order" 4 \
    "${HIST}"'ferry_lat_seconds_bucket{le="1"} 1\nferry_lat_seconds_bucket{le="0.5"} 1\n'
invalid "le repeated" 4 \
    "${HIST}"'ferry_lat_seconds_bucket{le="1"} 1\nferry_lat_seconds_bucket{le="1.0"} 1\n'
invalid "counts not cumulative" 4 \
    "${HIST}"'ferry_lat_seconds_bucket{le="1"} 5\nferry_lat_seconds_bucket{le="+Inf"} 4\n'
invalid "no +Inf bucket" 0 \
    "${HIST}"'ferry_lat_seconds_bucket{le="1"} 1\nferry_lat_seconds_sum 1\nferry_lat_seconds_count 1\n'
invalid "+Inf bucket != _count" 0 \
    "${HIST}"'ferry_lat_seconds_bucket{le="+Inf"} 2\nferry_lat_seconds_sum 1\nferry_lat_seconds_count 3\n'
invalid "histogram without _count" 0 \
    "${HIST}"'ferry_lat_seconds_bucket{le="+Inf"} 2\nferry_lat_seconds_sum 1\n'
invalid "histogram without buckets" 0 \
    "${HIST}"'ferry_lat_seconds_sum 1\nferry_lat_seconds_count 0\n'
invalid "bare histogram sample" 3 "${HIST}"'ferry_lat_seconds 1\n'
invalid "le on _sum" 3 "${HIST}"'ferry_lat_seconds_sum{le="1"} 1\n'
invalid "fractional _count" 3 "${HIST}"'ferry_lat_seconds_count 1.5\n'
invalid "bad le" 3 "${HIST}"'ferry_lat_seconds_bucket{le="big"} 1\n'
invalid "summary quantile out of range" 2 \
    '# TYPE s summary\ns{quantile="1.5"} 1\ns_sum 1\ns_count 1\n'
invalid "summary without quantile" 2 '# TYPE s summary\ns 1\n'
invalid "summary without _sum" 0 \
    '# TYPE s summary\ns{quantile="0.5"} 1\ns_count 1\n'
invalid "bucket in a summary" 2 '# TYPE s summary\ns_bucket{le="1"} 1\n'

# ---- --require ------------------------------------------------------------
invalid "--require missing" 0 "${H}"'ferry_x_total 1\n' \
    --require ferry_x_total ferry_nope
invalid "--require-samples without samples" 0 '# TYPE g gauge\n' \
    --require-samples g

# Standard input works too.
printf '# TYPE g gauge\ng 1\n' | $PC || fail "stdin: valid input rejected"
printf 'g 1\n' | $PC 2>/dev/null && fail "stdin: invalid input accepted"

echo "promcheck: $n cases"
exit 0
