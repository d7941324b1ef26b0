#!/usr/bin/env python3
"""Lists import circles between the source files of each crate in the workspace.

A file imports another when it names one of that file's items through a path: `use crate::a::b`,
`crate::a::b::f()`, `super::x`, `self::x`, or a child module declared in the file. Paths that
resolve to a crate root (lib.rs, main.rs) are not counted: a root only re-exports. Exits 1 and
prints each circle (a strongly connected set of two or more files) when there is one.
"""
import os
import re
import sys

ROOTS = ["src", "proxy/src", "loadgen/src", "replication/src"]
PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)::\{([^;]*)\};", re.S)
COMMENT = re.compile(r"//[^\n]*")


def modules(root):
    """Maps module paths (tuples) to files for one crate."""
    mods = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                parts = []
            mods[tuple(parts)] = os.path.join(dirpath, f)
    return mods


def resolve(mods, base, segs):
    """The file holding the longest module prefix of base + segs."""
    path = list(base)
    best = None
    for s in segs:
        if s == "super":
            path = path[:-1]
            continue
        if s == "self":
            continue
        path.append(s)
        if tuple(path) in mods:
            best = tuple(path)
        else:
            break
    return best


def edges(mods):
    out = {f: set() for f in mods.values()}
    for modpath, f in mods.items():
        text = COMMENT.sub("", open(f, encoding="utf-8").read())
        refs = []
        for m in USE_GROUP.finditer(text):
            for item in re.split(r",", m.group(2)):
                item = item.strip().split(" as ")[0]
                item = re.sub(r"[{}\s]", "", item)
                if item:
                    refs.append([m.group(1)] + [s for s in item.split("::") if s])
        for m in PATH.finditer(text):
            segs = [s for s in m.group(2).split("::") if s and s != "{"]
            refs.append([m.group(1)] + segs)
        for ref in refs:
            head, segs = ref[0], ref[1:]
            if head == "crate":
                base = []
            elif head == "super":
                base = list(modpath[:-1])
                # `super::super::x` climbs again
                while segs and segs[0] == "super":
                    base = base[:-1]
                    segs = segs[1:]
            else:
                base = list(modpath)
            target = resolve(mods, base, segs) if segs else (tuple(base) if head != "self" else None)
            if target is None or target == () or mods.get(target) == f:
                continue
            out[f].add(mods[target])
        # child modules named directly (`child::Item`) from the file that declares them
        for child in re.findall(r"\bmod\s+([a-z_0-9]+)\s*;", text):
            cpath = modpath + (child,)
            if cpath in mods and re.search(r"(?<![:\w])" + child + r"::", text):
                out[f].add(mods[cpath])
    return out


def sccs(graph):
    index, low, stack, on, res, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                res.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return res


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    found = 0
    for root in ROOTS:
        for comp in sccs(edges(modules(root))):
            found += 1
            print("circle: " + " <-> ".join(comp))
    if found:
        sys.exit(1)
    print("no import circles")


if __name__ == "__main__":
    main()
