"""Layering contracts over Stratos' own imports (the job import-linter does, as a plain test).

Every `import stratos...` in the package counts, including the ones inside functions (a lazy
import still ties two modules together). The contracts:
  1. no import cycle between packages (stratos.<pkg>, or a top-level module such as stratos.config);
  2. no module imports another stage's `stage` module: stages exchange files and manifests only,
     and the pipeline loads them by name (importlib);
  3. lower layers never import higher ones (foundation -> domain -> stages -> applications).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "stratos"
STAGES = ("plan", "data", "distill", "evaluate", "export", "report")
LAYERS = {  # package -> layer; a module may import its own layer and the ones below
    "errors": 0, "artifacts": 0, "config": 0,  # foundation: schemas, errors, artifact I/O
    "tasks": 1, "models": 1, "resilience": 1,  # domain: what is learnt, the models, fault tolerance
    "launch": 1,  # starting the pipeline on another machine (Slurm, SkyPilot): only errors below it
    **{s: 2 for s in STAGES}, "serve": 2,  # the stages' packages and the server
    "pipeline": 3, "execute": 3, "checks": 3, "sweep": 3, "cli": 3, "__main__": 3, "acme": 3,  # applications
}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        if "conf" in rel.parts:  # the YAML package (a link to conf/)
            continue
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(path: pathlib.Path) -> set[str]:
    """Every stratos module `path` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m in MODULES and m != "stratos"}


GRAPH = {m: _imports(p) for m, p in MODULES.items()}


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _package_graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        for d in deps:
            if package(m) != package(d):
                g.setdefault(package(m), set()).add(package(d))
    return g


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one node are the cycles."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_scan_sees_real_edges():
    """Guards the scanner itself: known edges must be found, or the contracts below prove nothing."""
    assert "stratos.artifacts" in GRAPH["stratos.pipeline"]
    assert "stratos.tasks" in GRAPH["stratos.data.stage"]
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_no_import_cycles_between_packages():
    assert strongly_connected(_package_graph()) == []


def test_no_module_imports_another_stages_stage_module():
    bad = [(m, d) for m, deps in GRAPH.items() for d in deps
           if d.endswith(".stage") and package(d) in STAGES and package(m) != package(d)]
    assert bad == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_lower_layers_never_import_higher_ones(module):
    assert package(module) in LAYERS or module == "stratos", f"{module}: add its package to LAYERS"
    if module == "stratos":
        return
    up = sorted(d for d in GRAPH[module] if LAYERS[package(d)] > LAYERS[package(module)])
    assert up == [], f"{module} (layer {LAYERS[package(module)]}) imports higher layers: {up}"
