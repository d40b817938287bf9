"""Structure facts of a Python package (issue 23), measured with the standard library's ``ast`` only.

Usage: python benchmarks/structure.py [PACKAGE_DIR] [--out FILE] [--commit SHA] [--quiet]
(default src/miaudit and benchmarks/results/structure.json; --commit names the tree measured when PACKAGE_DIR
is not in a git checkout, e.g. one written by ``git archive``).

What is counted (nothing is imported or run):
- top level: the modules directly in the package folder (``__init__.py`` not counted) and its sub-packages;
- lines: ``len(text.splitlines())`` per module, those over 400 listed;
- imports: one per ``import`` alias or ``from ... import`` statement. Internal = naming a module of the package.
  Scope: ``module`` (run at import time, class bodies included), ``function`` (inside a def or lambda),
  ``type-checking`` (under ``if TYPE_CHECKING:``, never run; kept out of the graph);
- the import graph: an edge from the importer to the deepest module of the package it names (``from p import m``
  with ``p.m`` a module: to ``p.m``; a package's ``__init__`` is its own node, parents are not implied);
  cycles are its strongly connected components of two or more modules (and the mutual pairs a <-> b among them),
  over module-scope edges alone, over module + function-scope edges, and over all edges (TYPE_CHECKING too);
  ``stages`` collapses every module to its top-level entry (``p.models.x`` -> ``models``), runtime edges;
- heavy imports: function-scope imports of the optional / heavy packages in HEAVY; on-demand imports: calls of
  ``require``, ``import_module`` or ``__import__`` whose first argument is a string naming a module (by package);
- isinstance on model classes: ``isinstance(x, C)`` outside ``p.models`` where C names a class defined in
  ``p.models`` (imported by name, or reached through an imported module);
- function-local internal imports, justified or not: one is justified when the module it loads reaches, through
  module-scope imports (parent packages included), a package in HEAVY that the importing module does not
  already load at module scope (it keeps torch / an extra off the import path); the others are listed;
- private imports: ``from q import _name`` (not dunder) where q or ``q._name`` is another module of the package;
- string-resolved functions: string constants "module:function" naming a top-level function of a package module
  (the module looked up from the string's own package upwards); dynamic imports: calls of ``import_module``
  and ``__import__``.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

LONG_MODULE = 400
HEAVY = ("torch", "torchvision", "numba", "sklearn", "onnxruntime", "onnx", "ray", "zarr", "skops", "fastapi",
         "uvicorn", "httpx", "opacus", "pyarrow", "pandas", "matplotlib", "jinja2", "art", "skl2onnx")
ON_DEMAND = ("require", "import_module", "__import__")
MODULE_FUNCTION = re.compile(r"^([A-Za-z_][\w.]*):([A-Za-z_]\w*)$")


@dataclass(frozen=True)
class Import:
    """One import: where (module, line, scope), what it names (base module, from-names), which package
    modules it loads (targets; empty for an outside package) and the names it binds (local, dotted origin)."""

    importer: str
    line: int
    scope: str
    base: str
    names: tuple[str, ...]
    targets: tuple[str, ...]
    bound: tuple[tuple[str, str], ...] = ()


def discover(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the package folder ``root``."""
    mods = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            continue
        parts = [root.name, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def is_package(mods: dict[str, Path], name: str) -> bool:
    return name in mods and mods[name].name == "__init__.py"


def deepest(mods: dict[str, Path], dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is a module of the package, or None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in mods:
            return ".".join(parts[:i])
    return None


class _Walker(ast.NodeVisitor):
    """Collects one module's imports, isinstance calls, string constants and dynamic-import calls."""

    def __init__(self, module: str, mods: dict[str, Path]):
        self.module, self.mods, self.top = module, mods, module.split(".")[0]
        self.package = module if is_package(mods, module) else module.rpartition(".")[0]
        self.depth, self.type_checking = 0, 0
        self.imports: list[Import] = []
        self.isinstance_calls: list[tuple[int, ast.expr]] = []
        self.strings: list[tuple[int, str]] = []
        self.dynamic: list[int] = []
        self.on_demand: list[tuple[int, str]] = []

    @property
    def scope(self) -> str:
        return "type-checking" if self.type_checking else "function" if self.depth else "module"

    def _nested(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        guarded = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
        self.visit(test)
        self.type_checking += guarded
        for stmt in node.body:
            self.visit(stmt)
        self.type_checking -= guarded
        for stmt in node.orelse:
            self.visit(stmt)

    def _internal(self, base: str) -> bool:
        return base == self.top or base.startswith(self.top + ".")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            target = deepest(self.mods, alias.name) if self._internal(alias.name) else None
            bound = (alias.asname, alias.name) if alias.asname else (alias.name.split(".")[0],) * 2
            self.imports.append(Import(self.module, node.lineno, self.scope, alias.name, (),
                                       (target,) if target else (), (bound,)))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        names = tuple(a.name for a in node.names)
        targets: list[str] = []
        if self._internal(base):
            for n in names:
                t = f"{base}.{n}" if f"{base}.{n}" in self.mods else deepest(self.mods, base)
                if t and t not in targets:
                    targets.append(t)
        bound = tuple((a.asname or a.name, f"{base}.{a.name}") for a in node.names)
        self.imports.append(Import(self.module, node.lineno, self.scope, base, names, tuple(targets), bound))

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if name == "isinstance" and len(node.args) == 2:
            cls = node.args[1]
            for c in cls.elts if isinstance(cls, ast.Tuple) else [cls]:
                self.isinstance_calls.append((node.lineno, c))
        if name in ("import_module", "__import__"):
            self.dynamic.append(node.lineno)
        first = node.args[0] if node.args else None
        if name in ON_DEMAND and isinstance(first, ast.Constant) and isinstance(first.value, str):
            self.on_demand.append((node.lineno, first.value))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            self.strings.append((node.lineno, node.value))


def dotted(node: ast.expr) -> str | None:
    """"a.b.C" for a Name / Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def strongly_connected(nodes, edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of two or more nodes, each sorted, sorted by first node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sorted(out)


def cycles(nodes, edges: dict[str, set[str]]) -> dict:
    """{"components": strongly connected components, "pairs": [a, b] with a -> b and b -> a, a < b}."""
    pairs = sorted([a, b] for a, dsts in edges.items() for b in dsts if a < b and a in edges.get(b, ()))
    return {"components": strongly_connected(nodes, edges), "pairs": pairs}


def _graph(imports: list[Import], scopes: tuple[str, ...]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if imp.scope in scopes:
            edges[imp.importer].update(t for t in imp.targets if t != imp.importer)
    return edges


def _stage(pkg: str, module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else pkg


def _site(module: str, line: int, **more) -> dict:
    return {"module": module, "line": line, **more}


def analyse(root: str | Path) -> dict:
    """The structure facts of the package folder ``root`` as a JSON-ready dict (see the module docstring)."""
    root = Path(root)
    pkg = root.name
    mods = discover(root)
    models_pkg = f"{pkg}.models"
    walkers, lines, classes, functions = {}, {}, defaultdict(set), defaultdict(set)
    for name, path in mods.items():
        text = path.read_text(encoding="utf-8")
        lines[name] = len(text.splitlines())
        tree = ast.parse(text, filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                classes[name].add(node.name)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions[name].add(node.name)
        w = _Walker(name, mods)
        w.visit(tree)
        walkers[name] = w
    imports = [imp for w in walkers.values() for imp in w.imports]
    internal = [imp for imp in imports if imp.targets]
    model_classes = {c for m, cs in classes.items() if m == models_pkg or m.startswith(models_pkg + ".")
                     for c in cs}

    def in_models(m: str) -> bool:
        return m == models_pkg or m.startswith(models_pkg + ".")

    # isinstance on model classes, outside models/
    isinstance_sites = []
    for name, w in walkers.items():
        if in_models(name):
            continue
        bound = {local: origin for imp in w.imports if imp.targets for local, origin in imp.bound}
        for line, cls in w.isinstance_calls:
            d = dotted(cls)
            head, _, rest = (d or "").partition(".")
            if head not in bound:
                continue
            owner, _, cls_name = ".".join(filter(None, [bound[head], rest])).rpartition(".")
            if in_models(owner) and cls_name in model_classes:
                isinstance_sites.append(_site(name, line, cls=cls_name))

    private = [_site(imp.importer, imp.line, source=imp.base, name=n, scope=imp.scope)
               for imp in internal for n in imp.names
               if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))
               and (f"{imp.base}.{n}" if f"{imp.base}.{n}" in mods else imp.base) != imp.importer]

    strings = []
    for name, w in walkers.items():
        anchors = w.package.split(".")
        for line, s in w.strings:
            m = MODULE_FUNCTION.match(s)
            if not m:
                continue
            mod, fn = m.groups()
            candidates = [".".join(anchors[:i] + [mod]) for i in range(len(anchors), 0, -1)] + [mod]
            found = next((c for c in candidates if c in mods), None)
            if found and fn in functions[found]:
                strings.append(_site(name, line, resolves_to=f"{found}:{fn}"))

    function_local = [imp for imp in imports if imp.scope == "function"]
    on_demand = [(n, ln, m) for n, w in walkers.items() for ln, m in w.on_demand]
    heavy = Counter(imp.base.split(".")[0] for imp in function_local if imp.base.split(".")[0] in HEAVY)
    module_edges = _graph(internal, ("module",))
    runtime_edges = _graph(internal, ("module", "function"))
    all_edges = _graph(internal, ("module", "function", "type-checking"))
    stage_edges: dict[str, set[str]] = defaultdict(set)
    for src, dsts in runtime_edges.items():
        stage_edges[_stage(pkg, src)].update(_stage(pkg, d) for d in dsts if _stage(pkg, d) != _stage(pkg, src))
    top_modules = sorted(p.stem for p in root.glob("*.py") if p.name != "__init__.py")
    folders = sorted(p.name for p in root.iterdir()
                     if p.is_dir() and not p.name.startswith((".", "__")) and any(p.rglob("*.py")))
    long_modules = sorted(({"module": m, "lines": n} for m, n in lines.items() if n > LONG_MODULE),
                          key=lambda r: (-r["lines"], r["module"]))
    scope_counts = Counter(imp.scope for imp in internal)
    justified, unjustified = local_import_reasons(mods, imports, module_edges)
    return {
        "package": pkg,
        "modules": len(mods),
        "lines": sum(lines.values()),
        "top_level": {"modules": top_modules, "folders": folders, "n_modules": len(top_modules),
                      "n_folders": len(folders)},
        "long_modules": long_modules,
        "imports": {"internal": len(internal), "internal_module_scope": scope_counts["module"],
                    "internal_function_scope": scope_counts["function"],
                    "internal_type_checking": scope_counts["type-checking"],
                    "edges_module_scope": sum(len(v) for v in module_edges.values()),
                    "edges_module_and_function_scope": sum(len(v) for v in runtime_edges.values()),
                    "edges_all_scopes": sum(len(v) for v in all_edges.values())},
        "cycles": {"module_scope": cycles(mods, module_edges),
                   "module_and_function_scope": cycles(mods, runtime_edges),
                   "all_scopes": cycles(mods, all_edges),
                   "stages": cycles(stage_edges, stage_edges)},
        "function_local_imports": {
            "total": len(function_local), "internal": sum(1 for imp in function_local if imp.targets),
            "heavy": sum(heavy.values()), "heavy_by_package": dict(sorted(heavy.items())),
            "other": sum(1 for imp in function_local if not imp.targets and imp.base.split(".")[0] not in HEAVY),
            "internal_keeping_heavy_off": len(justified), "internal_unjustified": len(unjustified),
            "keeping_heavy_off_sites": justified, "unjustified_sites": unjustified},
        "on_demand_imports": {
            "count": len(on_demand),
            "by_package": dict(sorted(Counter(m.split(".")[0] for _, _, m in on_demand).items())),
            "sites": [_site(n, ln, imports=m) for n, ln, m in on_demand]},
        "isinstance_on_model_classes": {"count": len(isinstance_sites),
                                        "by_class": dict(sorted(Counter(s["cls"] for s in isinstance_sites).items())),
                                        "sites": isinstance_sites},
        "private_imports": {"count": len(private), "sites": private},
        "string_resolved_functions": {"count": len(strings), "sites": strings},
        "dynamic_imports": {"count": sum(len(w.dynamic) for w in walkers.values()),
                            "sites": [_site(n, ln) for n, w in walkers.items() for ln in w.dynamic]},
        "import_list": [f"{imp.importer}:{imp.line} {imp.scope} -> {', '.join(imp.targets)}" for imp in internal],
    }


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def heavy_reach(mods: dict[str, Path], imports: list[Import], module_edges: dict[str, set[str]]) -> dict[str, set]:
    """module -> the HEAVY packages its import loads (module-scope imports, parent packages included)."""
    own: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if imp.scope == "module" and not imp.targets and imp.base.split(".")[0] in HEAVY:
            own[imp.importer].add(imp.base.split(".")[0])
    reach: dict[str, set[str]] = {}
    for start in mods:
        seen, todo = set(), [start, *_parents(start)]
        while todo:
            m = todo.pop()
            if m in seen or m not in mods:
                continue
            seen.add(m)
            todo.extend(module_edges.get(m, ()))
            todo.extend(_parents(m))
        reach[start] = set().union(*(own[m] for m in seen))
    return reach


def local_import_reasons(mods, imports: list[Import], module_edges) -> tuple[list[dict], list[dict]]:
    """(justified, unjustified) function-local internal imports (see the module docstring)."""
    reach = heavy_reach(mods, imports, module_edges)
    justified, unjustified = [], []
    for imp in imports:
        if imp.scope != "function" or not imp.targets:
            continue
        kept_off = set().union(*(reach.get(t, set()) for t in imp.targets)) - reach.get(imp.importer, set())
        site = _site(imp.importer, imp.line, imports=imp.base, keeps_off=sorted(kept_off))
        (justified if kept_off else unjustified).append(site)
    return justified, unjustified


def summary(facts: dict) -> str:
    """The facts in a dozen plain lines."""
    t, imp, fl = facts["top_level"], facts["imports"], facts["function_local_imports"]
    cyc = facts["cycles"]

    def circles(c):
        comps = "; ".join(" <-> ".join(x) for x in c["components"]) or "none"
        pairs = ", ".join(" <-> ".join(x) for x in c["pairs"]) or "none"
        return f"{len(c['components'])} components ({comps}); mutual pairs: {pairs}"

    return "\n".join([
        f"{facts['package']}: {facts['modules']} modules, {facts['lines']} lines",
        f"top level: {t['n_modules']} modules beside {t['n_folders']} folders ({', '.join(t['folders'])})",
        f"modules over {LONG_MODULE} lines: {len(facts['long_modules'])} "
        f"({', '.join(str(r['module']) + ' ' + str(r['lines']) for r in facts['long_modules'])})",
        f"internal imports: {imp['internal']} ({imp['internal_module_scope']} module scope, "
        f"{imp['internal_function_scope']} inside functions, {imp['internal_type_checking']} TYPE_CHECKING)",
        f"cycles, module-scope imports: {circles(cyc['module_scope'])}",
        f"cycles, module + function-scope imports: {circles(cyc['module_and_function_scope'])}",
        f"cycles, all imports (TYPE_CHECKING too): {circles(cyc['all_scopes'])}",
        f"cycles between top-level entries (module + function scope): {circles(cyc['stages'])}",
        f"function-local imports: {fl['total']} ({fl['internal']} internal, {fl['heavy']} heavy "
        f"{fl['heavy_by_package']}, {fl['other']} other); internal ones keeping a heavy package off the import "
        f"path: {fl.get('internal_keeping_heavy_off')}, not: {fl.get('internal_unjustified')}",
        f"on-demand imports (require / import_module with a module name): {facts['on_demand_imports']['count']} "
        f"{facts['on_demand_imports']['by_package']}",
        f"isinstance on model classes outside models/: {facts['isinstance_on_model_classes']['count']} "
        f"{facts['isinstance_on_model_classes']['by_class']}",
        f"private names imported across modules: {facts['private_imports']['count']}",
        f"functions resolved from 'module:function' strings: {facts['string_resolved_functions']['count']}; "
        f"dynamic import calls: {facts['dynamic_imports']['count']}",
    ])


def _commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=str(here.parent / "src" / "miaudit"), help="the package folder")
    ap.add_argument("--out", default=str(here / "results" / "structure.json"), help="JSON file to write")
    ap.add_argument("--commit", default=None, help="the commit measured (default: git rev-parse HEAD there)")
    ap.add_argument("--quiet", action="store_true", help="print nothing")
    args = ap.parse_args(argv)
    root = Path(args.root)
    if not root.is_dir():
        print(f"structure: {root} is not a folder", file=sys.stderr)
        return 2
    facts = {"commit": args.commit or _commit(root), **analyse(root)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
    if not args.quiet:
        print(summary(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
