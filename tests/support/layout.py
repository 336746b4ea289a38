#!/usr/bin/env python3
"""The interior walls of the source tree, checked (tests/integration/layout.sh).

  1. No file under core/ or plugins/ is longer than MAX_LINES lines.
  2. No file under plugins/ includes a core header: a plugin reaches the
     core through the host table alone (include/ferry/), and plugin
     libraries live in plugins/lib/.
  3. No two product modules depend on each other, directly or through a
     longer circle. A module is a .c file with its .h of the same stem in
     the same folder; module A depends on module B when a file of A
     includes B's header, or (given the build folder) when A's object
     calls a function that B's object defines: a callback by name counts
     even when both sides share one header.

Prints one line per violation and exits 1 when there is any.
"""
import os
import re
import subprocess
import sys

MAX_LINES = 1200
ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
BUILD = sys.argv[2] if len(sys.argv) > 2 else None
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def product_files():
    for top in ("core", "plugins"):
        for d, _, names in os.walk(os.path.join(ROOT, top)):
            for n in sorted(names):
                if n.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, n), ROOT)


def includes(path):
    with open(os.path.join(ROOT, path), encoding="utf-8",
              errors="replace") as f:
        for line in f:
            m = INCLUDE.match(line)
            if m:
                yield m.group(1) == '"', m.group(2)


def resolve(path, inc):
    """The repository file an include names, or None (a system header)."""
    here = os.path.dirname(path)
    cands = [os.path.join(here, inc)]
    if path.startswith("core/"):
        cands.append(os.path.join("core", inc))
    cands += [os.path.join("include", inc), os.path.join("plugins/lib", inc)]
    for c in cands:
        c = os.path.normpath(c)
        if os.path.isfile(os.path.join(ROOT, c)):
            return c
    return None


def module(path):
    return os.path.splitext(path)[0]


def symbols(obj):
    """(defined, undefined) global symbols of an object file."""
    out = subprocess.run(["nm", obj], capture_output=True, text=True,
                         check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBR":
            defined.add(parts[2])
    return defined, undefined


def link_deps(files, deps):
    """Adds the dependencies of calls between objects of one binary."""
    table = {}
    for f in files:
        if not f.endswith(".c"):
            continue
        obj = os.path.join(BUILD, os.path.splitext(f)[0] + ".o")
        if os.path.isfile(obj):
            table[f] = symbols(obj)
    owner = {}
    for f, (defined, _) in table.items():
        for s in defined:
            owner.setdefault(s, f)
    for f, (_, undefined) in table.items():
        for s in undefined:
            g = owner.get(s)
            if g and module(g) != module(f):
                deps.setdefault(module(f), set()).add(module(g))


def main():
    bad = []
    files = list(product_files())
    core_headers = {os.path.basename(f) for f in files
                    if f.startswith("core/") and f.endswith(".h")}
    deps = {}
    for f in files:
        with open(os.path.join(ROOT, f), encoding="utf-8",
                  errors="replace") as fh:
            n = sum(1 for _ in fh)
        if n > MAX_LINES:
            bad.append(f"{f}: {n} lines (at most {MAX_LINES})")
        for quoted, inc in includes(f):
            target = resolve(f, inc)
            if f.startswith("plugins/"):
                if (target and target.startswith("core/")) or (
                        target is None and quoted and "/" not in inc
                        and inc in core_headers):
                    bad.append(f"{f}: includes the core header '{inc}'")
            if target and target.startswith(("core/", "plugins/")) and \
                    module(target) != module(f):
                deps.setdefault(module(f), set()).add(module(target))
    if BUILD:
        link_deps(files, deps)
    # Circles between modules: depth-first search for a back edge.
    state = {}
    stack = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(deps.get(m, ())):
            if state.get(n) == 1:
                circle = stack[stack.index(n):] + [n]
                bad.append("include circle: " + " -> ".join(circle))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(deps):
        if m not in state:
            visit(m)
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
