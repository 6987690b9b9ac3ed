#!/usr/bin/env python3
"""check-layers.py: checks that msgsock's layers stay one-way.

Two views of the same rule, "a layer knows nothing of the ones above it":
- includes: each #include in src/, include/msgsock/ and cli/ is resolved the
  way the compiler does (the file's folder, then -Iinclude, then -Isrc) and
  must not name a header of a higher layer; cli/ includes nothing from src/;
- links: `nm` on the objects in BUILD/obj/src/<folder>/*.o and BUILD/obj/cli/
  resolves each undefined symbol to the object defining it; no folder may use
  a higher folder's symbols, the folder graph may have no cycle, and cli/ may
  use only public (ms_) symbols.

Usage: scripts/check-layers.py [--root DIR] [--build DIR] [--graph] [--files]
Prints one line per violation and exits 1 if there is any, 0 if none, 2 if
there are no objects to read (build first: make).
--graph prints the folder graph (who uses whom, with the symbols' count);
--files prints the largest strongly connected component of the file graph
(objects that reach each other through their symbols).
"""
import argparse
import os
import re
import subprocess
import sys

# The layers, bottom up: a layer's index is its level. Each names its folders
# and the public section headers (include/msgsock/) it owns. Several folders
# may share a level; then only the cycle check keeps them apart.
LAYERS = [
    ("common", ["src/common"], ["common.h"]),
    ("codec", ["src/codec"], ["frame.h", "proxy.h"]),
    ("net", ["src/net"], ["net.h"]),
    ("loop", ["src/loop"], ["loop.h"]),
    ("transport", ["src/transport"], ["tls.h"]),
    ("conn", ["src/conn"], ["conn.h"]),
    ("server", ["src/server"], ["server.h"]),
    ("cli", ["cli"], []),
]
# The umbrella header belongs to the top: the command, tests and examples.
UMBRELLA = "include/msgsock.h"
TOP = len(LAYERS) - 1
SECTION_DIR = "include/msgsock"

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def level_name(level):
    return f"layer {level} {LAYERS[level][0]}"


class Table:
    def __init__(self):
        self.folder = {}    # "src/net" -> level
        self.section = {}   # "include/msgsock/net.h" -> level
        for level, (_, folders, sections) in enumerate(LAYERS):
            for f in folders:
                self.folder[f] = level
            for s in sections:
                self.section[f"{SECTION_DIR}/{s}"] = level

    def folder_of(self, rel):
        """The declared folder holding rel ("src/net/io.c" -> "src/net"), or None."""
        d = os.path.dirname(rel)
        return d if d in self.folder else None

    def level_of(self, rel):
        """(level, what) of a file of the tree, or (None, why it has none)."""
        if rel == UMBRELLA:
            return TOP, "the umbrella, top level only"
        if os.path.dirname(rel) == SECTION_DIR:
            if rel in self.section:
                return self.section[rel], "public section"
            return None, "a public section the layer table does not list"
        f = self.folder_of(rel)
        if f is not None:
            return self.folder[f], "internal" if f.startswith("src/") else "command"
        return None, "a folder the layer table does not list"


def sources(root):
    """Every file the include check reads, relative to root, sorted."""
    out = []
    for top in ("src", "cli", SECTION_DIR):
        base = os.path.join(root, top)
        for dirpath, _, names in os.walk(base):
            for n in names:
                if n.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def resolve(root, rel, quote, name):
    """Where the compiler finds #include name from rel (relative to root), or None
    for a header outside the tree (libc, jansson, OpenSSL...)."""
    dirs = ([os.path.dirname(rel)] if quote == '"' else []) + ["include", "src"]
    for d in dirs:
        cand = os.path.normpath(os.path.join(d, name))
        if not cand.startswith("..") and os.path.isfile(os.path.join(root, cand)):
            return cand
    return None


def check_includes(root, table):
    bad = []
    files = sources(root)
    for rel in files:
        level, why = table.level_of(rel)
        if level is None:
            bad.append(f"{rel}:1: is in {why}; add it to LAYERS in scripts/check-layers.py")
            continue
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                target = resolve(root, rel, m.group(1), m.group(2))
                if target is None:
                    continue
                inc = f"{m.group(1)}{m.group(2)}{'>' if m.group(1) == '<' else chr(34)}"
                if rel.startswith("cli/") and target.startswith("src/"):
                    bad.append(f"{rel}:{lineno}: includes {inc} ({target}) from {level_name(level)}:"
                               " the command uses the public header only")
                    continue
                tlevel, twhy = table.level_of(target)
                if tlevel is None:
                    bad.append(f"{rel}:{lineno}: includes {inc} ({target}), {twhy}")
                elif tlevel > level:
                    bad.append(f"{rel}:{lineno}: includes {inc} ({target}, {twhy}, "
                               f"{level_name(tlevel)}) from {level_name(level)}")
    return bad, len(files)


def objects(root, build, table):
    """{object path relative to the obj folder: folder} for every object of a
    declared folder whose source still exists (a stale object is left out)."""
    obj_root = os.path.join(build, "obj")
    out = {}
    for folder in table.folder:
        d = os.path.join(obj_root, folder)
        if not os.path.isdir(d):
            continue
        for n in sorted(os.listdir(d)):
            if n.endswith(".o") and os.path.isfile(os.path.join(root, folder, n[:-2] + ".c")):
                out[f"{folder}/{n}"] = folder
    return obj_root, out


def read_symbols(obj_root, objs):
    """({obj: set of undefined symbols}, {symbol: defining obj}) from nm."""
    nm = os.environ.get("NM", "nm")
    names = sorted(objs)
    p = subprocess.run([nm, "-P", "-A", *[os.path.join(obj_root, o) for o in names]],
                       capture_output=True, text=True, check=True)
    prefix = {os.path.join(obj_root, o): o for o in names}
    undef = {o: set() for o in names}
    defined = {}
    for line in p.stdout.splitlines():
        path, _, rest = line.partition(": ")
        fields = rest.split()
        if path not in prefix or len(fields) < 2:
            continue
        obj, sym, kind = prefix[path], fields[0], fields[1]
        if kind in ("U", "w", "v"):
            undef[obj].add(sym)
        elif kind.isupper():
            defined.setdefault(sym, obj)
    return undef, defined


def file_graph(undef, defined):
    """{user obj: {provider obj: set of symbols}}, each other object it uses."""
    g = {o: {} for o in undef}
    for o, syms in undef.items():
        for s in syms:
            d = defined.get(s)
            if d is not None and d != o:
                g[o].setdefault(d, set()).add(s)
    return g


def folder_graph(fg, objs):
    """{(user folder, provider folder): set of symbols}, between different folders."""
    out = {}
    for o, uses in fg.items():
        for d, syms in uses.items():
            a, b = objs[o], objs[d]
            if a != b:
                out.setdefault((a, b), set()).update(syms)
    return out


def sccs(nodes, edges):
    """Strongly connected components (Tarjan, iterative), each sorted."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def check_links(fg, fold, objs, table):
    bad = []
    for o in sorted(fg):
        ulevel = table.folder[objs[o]]
        for d in sorted(fg[o]):
            dlevel = table.folder[objs[d]]
            for s in sorted(fg[o][d]):
                if dlevel > ulevel:
                    bad.append(f"{o}: uses {s} of {d} ({level_name(dlevel)}) from {level_name(ulevel)}")
                elif objs[o] == "cli" and objs[d] != "cli" and not s.startswith("ms_"):
                    bad.append(f"{o}: uses {s} of {d}, not public: the command uses ms_ symbols only")
    edges = {}
    for a, b in fold:
        edges.setdefault(a, set()).add(b)
    for comp in sccs(set(objs.values()), edges):
        if len(comp) > 1:
            inner = ", ".join(f"{a} -> {b} ({len(fold[(a, b)])})" for a, b in sorted(fold)
                              if a in comp and b in comp)
            bad.append(f"cycle between folders {' '.join(comp)}: {inner}")
    return bad


def print_graph(fold, table):
    print("folder graph (user -> provider: symbols used):")
    order = sorted(fold, key=lambda e: (-table.folder[e[0]], e[0], -table.folder[e[1]], e[1]))
    for a, b in order:
        print(f"  {a:<13} -> {b:<13} {len(fold[(a, b)]):4}")


def print_files(fg):
    comps = sorted((c for c in sccs(set(fg), {o: set(u) for o, u in fg.items()}) if len(c) > 1),
                   key=lambda c: (-len(c), c))
    if not comps:
        print("largest strongly connected component of the file graph: none (no cycle)")
        return
    big = comps[0]
    print(f"largest strongly connected component of the file graph: {len(big)} files")
    for o in big:
        print(f"  {o}")
    for c in comps[1:]:
        print(f"other component: {len(c)} files: {' '.join(c)}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="checks that msgsock's layers stay one-way")
    ap.add_argument("--root", default=os.path.dirname(here), help="the source tree (default: this script's)")
    ap.add_argument("--build", default="build", help="the build folder, relative to --root (default: build)")
    ap.add_argument("--graph", action="store_true", help="print the folder graph")
    ap.add_argument("--files", action="store_true",
                    help="print the largest strongly connected component of the file graph")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    build = os.path.join(root, a.build)
    table = Table()

    bad, nfiles = check_includes(root, table)
    obj_root, objs = objects(root, build, table)
    if not any(f.startswith("src/") for f in objs.values()):
        print(f"check-layers: no objects under {obj_root}/src (build first: make)", file=sys.stderr)
        return 2
    undef, defined = read_symbols(obj_root, objs)
    fg = file_graph(undef, defined)
    fold = folder_graph(fg, objs)
    bad += check_links(fg, fold, objs, table)

    if a.graph:
        print_graph(fold, table)
    if a.files:
        print_files({o: u for o, u in fg.items() if objs[o] != "cli"})
    for line in bad:
        print(line)
    if bad:
        print(f"check-layers: {len(bad)} violation(s)")
        return 1
    print(f"check-layers: ok ({nfiles} files' includes, {len(objs)} objects' symbols)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
