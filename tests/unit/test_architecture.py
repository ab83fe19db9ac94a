"""The package's shape, checked: no import loops in condorkit/, arrows only from the backends and
the report down to the shared job model, and worker-side code importing only the standard
library (it runs on whatever Python a worker has, without condorkit installed).

Layers: ``errors``/``version`` (base) < ``model`` (the job every backend shares) < ``local``,
``condor`` (the two backends) and ``report`` < ``cli``, ``api`` and the package's lazy public
names (top). ``demo`` (the photodemo generator) only uses the errors."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "condorkit"

# layer of each top-level part of condorkit, and the layers each may import
LAYER = {"errors": "base", "version": "base", "__init__": "top", "model": "model", "local": "local",
         "condor": "condor", "report": "report", "demo": "example", "cli": "top", "api": "top",
         "__main__": "top", "wrappers": "worker"}
ALLOWED = {
    "base": {"base"},
    "worker": {"worker"},
    "model": {"base", "worker", "model"},
    "local": {"base", "worker", "model", "local"},
    "condor": {"base", "worker", "model", "condor"},
    "report": {"base", "worker", "model", "report"},
    "example": {"base"},
    "top": {"base", "worker", "model", "local", "condor", "report", "example", "top"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (never imported at run time)."""
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
            for child in node.body for n in ast.walk(child)}
    return [n for n in ast.walk(tree) if id(n) not in skip]


def imports(path: Path) -> set[str]:
    """Every condorkit module ``path`` imports at run time, at the top or inside a function."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("condorkit"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("condorkit"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path}: relative import; write `from condorkit.X import ...`")
    return found


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in PKG.rglob("*.py")}
    mods["condorkit.wrappers.ckjob"] = REPO / "wrappers" / "ckjob.py"
    return {m: {i for i in imports(p) if i in mods and i != m} for m, p in mods.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return LAYER[parts[1] if len(parts) > 1 else "__init__"]


def test_arrows_only_go_down_to_the_shared_model() -> None:
    bad = [f"{m} ({layer(m)}) imports {i} ({layer(i)})"
           for m, deps in graph().items() for i in sorted(deps)
           if layer(i) not in ALLOWED[layer(m)]]
    assert not bad, "\n".join(bad)


def test_no_import_loops() -> None:
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    loops: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g[m]):
            if state.get(d) == 1:
                loops.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not loops, "\n".join(loops)


def test_every_module_is_in_a_layer_and_under_500_lines() -> None:
    for m in graph():
        layer(m)  # KeyError: a new top-level part needs a layer above
    long = [f"{p.relative_to(REPO)}: {n}" for p in PKG.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 560]
    assert not long, long


def _top_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


WORKER_FILES = sorted((REPO / "wrappers").glob("*.py"))
JOB_PROGRAMS = sorted(p for p in (REPO / "examples").glob("*/*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", WORKER_FILES, ids=lambda p: p.name)
def test_worker_side_files_import_only_the_standard_library(path: Path) -> None:
    siblings = {p.stem for p in WORKER_FILES}  # shipped together (ckworker uses ckstate)
    extra = _top_imports(path) - set(sys.stdlib_module_names) - {"__future__"} - siblings
    assert not extra, f"{path.name} imports {sorted(extra)}: workers have only the stdlib"


@pytest.mark.parametrize("path", JOB_PROGRAMS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_job_programs_do_not_import_condorkit(path: Path) -> None:
    assert "condorkit" not in _top_imports(path), (
        f"{path} imports condorkit: a job program gets ckjob.py, not the library")
