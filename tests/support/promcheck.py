#!/usr/bin/env python3
"""promcheck.py: a strict checker of Prometheus text exposition format 0.0.4.

Usage: promcheck.py [FILE|-] [--require NAME ...] [--require-samples NAME ...]

Reads FILE (default: standard input) and exits 0 when every line is valid,
or prints "promcheck: line N: <reason>" and the offending line to stderr and
exits 1. Rules (https://prometheus.io/docs/instrumenting/exposition_formats/):

* every line is a "# HELP name doc", a "# TYPE name type" or a sample; the
  text is UTF-8 and ends with a newline. Stricter than Prometheus on purpose
  (ferry's renderer must emit the canonical form): no blank lines, no other
  comments, no carriage returns, single spaces between fields, no leading
  or trailing blanks;
* metric and label names follow the grammar, label names do not start with
  "__", label values use only the escapes \\\\ \\" \\n, HELP text only \\\\
  and \\n;
* every family has exactly one TYPE line, before its first sample, and at
  most one HELP line, also before its samples; all lines of a family form
  one group;
* a sample belongs to the family its TYPE announced (name, or name_bucket /
  name_sum / name_count for a histogram, name / name_sum / name_count for a
  summary); values are decimal floats, NaN, +Inf or -Inf; an optional
  timestamp is an integer; no series (name and label set) appears twice;
* counters are not negative; histogram buckets carry "le", are in strictly
  increasing "le" order per label set, their counts are cumulative
  (non-decreasing), the last bucket is le="+Inf" and equals _count, and
  every label set has _sum and _count; summaries carry "quantile" in [0, 1]
  and _sum and _count.

--require NAME: the family NAME must be declared (a TYPE line).
--require-samples NAME: the family NAME must have at least one sample.
"""
import argparse
import math
import re
import sys

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
METRIC_RE = re.compile(METRIC_NAME + r"\Z")
LABEL_RE = re.compile(LABEL_NAME + r"\Z")
FLOAT_RE = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
INT_RE = re.compile(r"-?[0-9]+\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class Invalid(Exception):
    pass


def parse_float(s, what="value"):
    if s in ("NaN", "+Inf", "-Inf"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not FLOAT_RE.match(s):
        raise Invalid("invalid %s %r" % (what, s))
    return float(s)


def unescape(s, allowed, what):
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in allowed:
                raise Invalid("invalid escape in %s" % what)
            out.append("\n" if s[i + 1] == "n" else s[i + 1])
            i += 2
            continue
        if c == "\n":
            raise Invalid("raw newline in %s" % what)
        out.append(c)
        i += 1
    return "".join(out)


def parse_labels(s, i):
    """Parses {...} starting at s[i] == '{'; returns (labels, index)."""
    labels = {}
    i += 1
    need_close = False
    while True:
        if i >= len(s):
            raise Invalid("unterminated label set")
        if s[i] == "}":
            return labels, i + 1
        if need_close:
            raise Invalid("expected ',' or '}' in label set")
        m = re.compile(LABEL_NAME).match(s, i)
        if not m:
            raise Invalid("invalid label name at column %d" % (i + 1))
        name = m.group(0)
        if name.startswith("__"):
            raise Invalid("reserved label name %r" % name)
        i = m.end()
        if s[i:i + 2] != '="':
            raise Invalid("expected =\"value\" after label %r" % name)
        i += 2
        start = i
        while i < len(s) and s[i] != '"':
            i += 2 if s[i] == "\\" else 1
        if i >= len(s):
            raise Invalid("unterminated value of label %r" % name)
        value = unescape(s[start:i], '\\"n', "label value")
        i += 1
        if name in labels:
            raise Invalid("duplicate label %r" % name)
        labels[name] = value
        if i < len(s) and s[i] == ",":
            i += 1  # a trailing comma is allowed by the format
        else:
            need_close = True


class Family:
    def __init__(self, name, lineno):
        self.name = name
        self.type = None
        self.help = None
        self.samples = 0
        self.first_line = lineno
        # histogram/summary: label set (without le/quantile) -> state
        self.groups = {}


class Checker:
    def __init__(self):
        self.families = {}
        self.current = None
        self.closed = set()
        self.series = set()

    def family(self, name, lineno, what):
        """The family a HELP/TYPE line names; opens it if new."""
        if self.current is not None and self.current.name == name:
            return self.current
        if name in self.families:
            raise Invalid("%s for %s after its group ended" % (what, name))
        self.close_current()
        fam = Family(name, lineno)
        self.families[name] = fam
        self.current = fam
        return fam

    def close_current(self):
        fam = self.current
        if fam is None:
            return
        self.closed.add(fam.name)
        self.current = None
        for key, g in fam.groups.items():
            shown = fam.name + format_labels(dict(key))
            if fam.type == "histogram":
                if not g["buckets"]:
                    raise Invalid("%s has no buckets" % shown)
                if g["buckets"][-1][0] != math.inf:
                    raise Invalid("%s has no le=\"+Inf\" bucket" % shown)
                if g["count"] is None or g["sum"] is None:
                    raise Invalid("%s lacks _sum or _count" % shown)
                if g["buckets"][-1][1] != g["count"]:
                    raise Invalid("%s: +Inf bucket %r != _count %r" %
                                  (shown, g["buckets"][-1][1], g["count"]))
            elif fam.type == "summary":
                if g["count"] is None or g["sum"] is None:
                    raise Invalid("%s lacks _sum or _count" % shown)

    def line(self, lineno, text):
        if text == "":
            raise Invalid("blank line")
        if text != text.strip(" \t"):
            raise Invalid("leading or trailing blanks")
        if "\r" in text:
            raise Invalid("carriage return")
        if text.startswith("#"):
            self.comment(lineno, text)
        else:
            self.sample(lineno, text)

    def comment(self, lineno, text):
        parts = text.split(" ", 3)
        if len(parts) < 3 or parts[0] != "#" or parts[1] not in ("HELP",
                                                                 "TYPE"):
            raise Invalid("comment is neither HELP nor TYPE")
        kind, name = parts[1], parts[2]
        if not METRIC_RE.match(name):
            raise Invalid("invalid metric name %r" % name)
        fam = self.family(name, lineno, kind)
        if fam.samples:
            raise Invalid("%s for %s after its samples" % (kind, name))
        if kind == "HELP":
            if fam.help is not None:
                raise Invalid("second HELP for %s" % name)
            fam.help = unescape(parts[3] if len(parts) > 3 else "", "\\n",
                                "HELP text")
        else:
            if fam.type is not None:
                raise Invalid("second TYPE for %s" % name)
            if len(parts) != 4 or parts[3] not in TYPES:
                raise Invalid("invalid TYPE line")
            fam.type = parts[3]

    def owner(self, name):
        """(family, suffix) the sample name belongs to, by the current
        family's TYPE."""
        fam = self.current
        if fam is None or fam.type is None:
            return None, None
        if name == fam.name and fam.type != "histogram":
            return fam, ""
        if fam.type in ("histogram", "summary"):
            for suffix in ("_bucket", "_sum", "_count"):
                if (name == fam.name + suffix and
                        (suffix != "_bucket" or fam.type == "histogram")):
                    return fam, suffix
        return None, None

    def sample(self, lineno, text):
        m = re.compile(METRIC_NAME).match(text)
        if not m:
            raise Invalid("invalid metric name")
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(text) and text[i] == "{":
            labels, i = parse_labels(text, i)
        if text[i:i + 1] != " ":
            raise Invalid("expected one space before the value")
        rest = text[i + 1:].split(" ")
        if len(rest) not in (1, 2) or "" in rest:
            raise Invalid("expected 'value [timestamp]' after the name")
        value = parse_float(rest[0])
        if len(rest) == 2 and not INT_RE.match(rest[1]):
            raise Invalid("invalid timestamp %r" % rest[1])

        fam, suffix = self.owner(name)
        if fam is None:
            cur = self.current
            if cur is not None and cur.type and name.startswith(cur.name):
                raise Invalid("sample %s does not fit %s family %s" %
                              (name, cur.type, cur.name))
            for known in self.closed:
                if name == known or (name.startswith(known) and name[
                        len(known):] in ("_bucket", "_sum", "_count")):
                    raise Invalid("sample %s outside its family's group" %
                                  name)
            raise Invalid("sample %s without a TYPE line before it" % name)
        key = (name, frozenset(labels.items()))
        if key in self.series:
            raise Invalid("duplicate series %s%s" %
                          (name, format_labels(labels)))
        self.series.add(key)
        fam.samples += 1
        if fam.type == "counter" and not value >= 0:
            raise Invalid("counter %s is negative or NaN" % name)
        if fam.type == "histogram":
            self.histogram(fam, suffix, labels, value)
        elif fam.type == "summary":
            self.summary(fam, suffix, labels, value)

    def group(self, fam, labels, drop):
        key = frozenset((k, v) for k, v in labels.items() if k != drop)
        return fam.groups.setdefault(key, {"buckets": [], "sum": None,
                                           "count": None})

    def histogram(self, fam, suffix, labels, value):
        if suffix == "_bucket":
            if "le" not in labels:
                raise Invalid("bucket without le label")
            le = parse_float(labels["le"], "le")
            if math.isnan(le):
                raise Invalid("le is NaN")
            g = self.group(fam, labels, "le")
            if g["buckets"]:
                prev_le, prev_v = g["buckets"][-1]
                if le <= prev_le:
                    raise Invalid("bucket le=%s not above le=%s" %
                                  (labels["le"], fmt(prev_le)))
                if value < prev_v:
                    raise Invalid("bucket le=%s count %s below previous %s"
                                  % (labels["le"], fmt(value), fmt(prev_v)))
            if value < 0 or math.isnan(value):
                raise Invalid("negative or NaN bucket count")
            g["buckets"].append((le, value))
            return
        if "le" in labels:
            raise Invalid("le label on %s%s" % (fam.name, suffix))
        g = self.group(fam, labels, "le")
        if suffix == "_sum":
            g["sum"] = value
        else:
            if value < 0 or math.isnan(value) or value != int(value):
                raise Invalid("_count is not a non-negative integer")
            g["count"] = value

    def summary(self, fam, suffix, labels, value):
        if suffix == "":
            if "quantile" not in labels:
                raise Invalid("summary sample without quantile label")
            q = parse_float(labels["quantile"], "quantile")
            if not 0 <= q <= 1:
                raise Invalid("quantile %s outside [0, 1]" %
                              labels["quantile"])
            self.group(fam, labels, "quantile")
            return
        if "quantile" in labels:
            raise Invalid("quantile label on %s%s" % (fam.name, suffix))
        g = self.group(fam, labels, "quantile")
        g["sum" if suffix == "_sum" else "count"] = value


def fmt(v):
    return "+Inf" if v == math.inf else repr(v)


def format_labels(labels):
    if not labels:
        return ""
    return "{" + ",".join('%s="%s"' % kv for kv in sorted(labels.items())) \
        + "}"


def check(data, require=(), require_samples=()):
    """Returns None when data (bytes) is valid, else (lineno, reason,
    line)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return (data[:e.start].count(b"\n") + 1, "invalid UTF-8", "")
    if text and not text.endswith("\n"):
        n = text.count("\n") + 1
        return (n, "missing final newline", text.rsplit("\n", 1)[-1])
    lines = text.split("\n")[:-1] if text else []
    c = Checker()
    for n, line in enumerate(lines, 1):
        try:
            c.line(n, line)
        except Invalid as e:
            return (n, str(e), line)
    try:
        c.close_current()
    except Invalid as e:
        return (len(lines), str(e), lines[-1] if lines else "")
    for name in require:
        fam = c.families.get(name)
        if fam is None or fam.type is None:
            return (0, "required metric %s is missing" % name, "")
    for name in require_samples:
        fam = c.families.get(name)
        if fam is None or fam.samples == 0:
            return (0, "required metric %s has no samples" % name, "")
    return None


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Strict Prometheus text format 0.0.4 checker.")
    p.add_argument("file", nargs="?", default="-")
    p.add_argument("--require", nargs="+", default=[], metavar="NAME")
    p.add_argument("--require-samples", nargs="+", default=[],
                   metavar="NAME")
    a = p.parse_args(argv)
    if a.file == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(a.file, "rb") as f:
            data = f.read()
    bad = check(data, a.require, a.require_samples)
    if bad is None:
        return 0
    n, reason, line = bad
    if n:
        sys.stderr.write("promcheck: line %d: %s\n  %s\n" % (n, reason,
                                                             line))
    else:
        sys.stderr.write("promcheck: %s\n" % reason)
    return 1


if __name__ == "__main__":
    sys.exit(main())
