#!/usr/bin/env python3
"""Compares a Redis cache with the test server's expected state.

    statecheck.py --port REDIS_PORT --expect FILE [--host 127.0.0.1]
                  [--prefix schematic] [--version c0ffee01] [--wait SECONDS]
                  [--password PW] [--db N] [--quiet]

FILE is what `testserver --expect FILE` writes: a JSON object
{redis key: exact string value}. Redis must hold exactly those keys under
{prefix}:flags:{version}:*, {prefix}:company:{version}:* and
{prefix}:user:{version}:*, each with exactly that value (byte for byte).
Keys of other versions or other namespaces are ignored.

Exit 0 when they match. Otherwise (after polling every 200 ms until --wait
seconds have passed) print the counts of missing, extra and different keys
and the first 10 of each, and exit 1. Exit 2 on usage or connection errors.

Python 3 standard library only: a minimal RESP client over a socket, SCAN
MATCH ... COUNT 1000 and MGET in chunks.
"""

import argparse
import json
import socket
import sys
import time

SHOW = 10
MGET_CHUNK = 500


class RespError(Exception):
    pass


class Redis:
    """Just enough RESP2 for AUTH, SELECT, SCAN and MGET."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.rf = self.sock.makefile("rb", buffering=1 << 16)

    def close(self):
        try:
            self.rf.close()
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def _encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode("utf-8", "surrogateescape")
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self):
        line = self.rf.readline()
        if not line.endswith(b"\r\n"):
            raise RespError("connection closed")
        return line[:-2]

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rf.read(n + 2)
            if len(data) != n + 2:
                raise RespError("connection closed")
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._reply() for _ in range(n)]
        raise RespError("unexpected reply %r" % line[:40])

    def call(self, *args):
        self.sock.sendall(self._encode(args))
        return self._reply()

    def pipeline(self, commands):
        self.sock.sendall(b"".join(self._encode(c) for c in commands))
        return [self._reply() for _ in commands]


def glob_escape(s):
    out = []
    for ch in s:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def read_cache(r, prefix, version):
    """Returns {key bytes: value bytes} for the three cache namespaces."""
    keys = []
    for ns in ("flags", "company", "user"):
        pattern = "%s:%s:%s:*" % (glob_escape(prefix), ns,
                                  glob_escape(version))
        cursor = b"0"
        while True:
            cursor, batch = r.call("SCAN", cursor, "MATCH", pattern,
                                   "COUNT", "1000")
            keys.extend(batch)
            if cursor == b"0":
                break
    keys = sorted(set(keys))
    cache = {}
    for i in range(0, len(keys), MGET_CHUNK):
        chunk = keys[i:i + MGET_CHUNK]
        values = r.call("MGET", *chunk)
        for k, v in zip(chunk, values):
            if v is not None:  # deleted between SCAN and MGET
                cache[k] = v
    return cache


def diff(expected, cache):
    missing = sorted(k for k in expected if k not in cache)
    extra = sorted(k for k in cache if k not in expected)
    different = sorted(k for k in expected
                       if k in cache and cache[k] != expected[k])
    return missing, extra, different


def show_value_diff(want, got):
    i = 0
    n = min(len(want), len(got))
    while i < n and want[i] == got[i]:
        i += 1
    lo = max(0, i - 40)
    return ("%d vs %d bytes, first difference at byte %d:\n"
            "      want ...%r\n      got  ...%r"
            % (len(want), len(got), i,
               want[lo:i + 80].decode("utf-8", "replace"),
               got[lo:i + 80].decode("utf-8", "replace")))


def report(missing, extra, different, expected, cache, out):
    print("statecheck: MISMATCH: %d missing, %d extra, %d different "
          "(expected %d keys, found %d)"
          % (len(missing), len(extra), len(different), len(expected),
             len(cache)), file=out)
    for k in missing[:SHOW]:
        print("  missing   %s" % k.decode("utf-8", "replace"), file=out)
    for k in extra[:SHOW]:
        v = cache[k]
        print("  extra     %s = %s%s" % (
            k.decode("utf-8", "replace"),
            v[:100].decode("utf-8", "replace"),
            "..." if len(v) > 100 else ""), file=out)
    for k in different[:SHOW]:
        print("  different %s: %s" % (k.decode("utf-8", "replace"),
                                      show_value_diff(expected[k], cache[k])),
              file=out)


def main():
    ap = argparse.ArgumentParser(
        description="Compare a Redis cache with testserver --expect output.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--prefix", default="schematic")
    ap.add_argument("--version", default="c0ffee01")
    ap.add_argument("--wait", type=float, default=0.0,
                    help="poll every 200 ms for up to this many seconds")
    ap.add_argument("--password")
    ap.add_argument("--db", type=int, default=0)
    ap.add_argument("--quiet", action="store_true",
                    help="print nothing on success")
    args = ap.parse_args()

    try:
        with open(args.expect, "rb") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        print("statecheck: cannot read %s: %s" % (args.expect, e),
              file=sys.stderr)
        return 2
    if not isinstance(raw, dict) or not all(
            isinstance(v, str) for v in raw.values()):
        print("statecheck: %s is not an object of strings" % args.expect,
              file=sys.stderr)
        return 2
    expected = {k.encode("utf-8", "surrogateescape"):
                v.encode("utf-8", "surrogateescape") for k, v in raw.items()}

    deadline = time.monotonic() + args.wait
    r = None
    while True:
        try:
            if r is None:
                r = Redis(args.host, args.port)
                if args.password is not None:
                    r.call("AUTH", args.password)
                if args.db:
                    r.call("SELECT", str(args.db))
            cache = read_cache(r, args.prefix, args.version)
            err = None
        except (OSError, RespError) as e:
            err = e
            if r is not None:
                r.close()
            r = None
        if err is None:
            missing, extra, different = diff(expected, cache)
            if not (missing or extra or different):
                if not args.quiet:
                    print("statecheck: OK: %d keys match" % len(expected))
                r.close()
                return 0
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if r is not None:
        r.close()
    if err is not None:
        print("statecheck: redis %s:%d: %s" % (args.host, args.port, err),
              file=sys.stderr)
        return 2
    report(missing, extra, different, expected, cache, sys.stdout)
    return 1


if __name__ == "__main__":
    sys.exit(main())
