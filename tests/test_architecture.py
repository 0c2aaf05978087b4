"""The house rules: imports point one way (library -> experiments -> report -> cli), no
import cycles, the report is rebuilt from JSON alone, the README's layout matches the tree."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
#: The rooms, in the order the arrows point: a module may import its own room and the
#: rooms before it, never one after it.
ROOMS = (
    ("cnninv._version", "cnninv._checks", "cnninv.io", "cnninv.metrics", "cnninv.training"),
    ("cnninv.operators",),
    ("cnninv.sparsity",),
    ("cnninv.recovery",),
    ("cnninv.theory",),
    ("cnninv.data",),
    ("cnninv.models",),
    ("cnninv.analysis",),
    ("cnninv.inversion", "cnninv.classify"),
    ("cnninv.experiments",),
    ("cnninv.report",),
    ("cnninv.reproduce",),
    ("cnninv.cli",),
)


def _modules() -> dict[str, Path]:
    out = {}
    for p in (SRC / "cnninv").rglob("*.py"):
        rel = p.relative_to(SRC).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The cnninv modules ``name`` imports (top level and inside functions)."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in known and m != name}


def _room(module: str) -> int:
    for i, prefixes in enumerate(ROOMS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no room of ROOMS: add it where it belongs")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, set(mods)) for m, p in mods.items()}


def test_imports_point_one_way(graph):
    bad = [
        f"{m} -> {d}"
        for m, deps in graph.items()
        if m != "cnninv"  # the package root re-exports the public API
        for d in deps
        if _room(d) > _room(m) and not d.startswith(m + ".")
    ]
    assert not bad, "imports against the arrows:\n" + "\n".join(sorted(bad))


def test_no_import_cycles(graph):
    # top-level imports only: a cycle through a function-level import is still a smell,
    # but a package importing its own submodules is not a cycle
    def deps(m):
        return {d for d in graph[m] if not d.startswith(m + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in deps(m):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d) :], d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_report_rebuild_imports_no_experiment(tmp_path):
    """`cnninv report DIR` renders the JSONs without importing any experiment module."""
    (tmp_path / "prop1.json").write_text(
        '{"experiment": "prop1", "title": "Proposition 1", "max_relative_error": 1e-16,'
        ' "max_relative_error_dense_basis": 1e-16, "max_relative_error_orthonormal_conv": 1e-16,'
        ' "control_relu_without_negative_pair": 0.7, "control_crelu_gaussian_conv": 0.5,'
        ' "machine_epsilon": 2.2e-16, "paper": {"max_relative_error": 0.0, "note": "exact"},'
        ' "config": {}}'
    )
    code = (
        "import sys; from cnninv.report import build_report; "
        f"build_report({str(tmp_path)!r}); "
        "print(sorted(m for m in sys.modules if m.startswith('cnninv.experiments')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "Proposition 1" in (tmp_path / "report.html").read_text()


def test_readme_layout_matches_the_tree():
    """Every package and top-level module of src/cnninv is in the README's layout section,
    and everything the layout names exists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"^  ([a-z_]+(?:\.py|/))", block, flags=re.M))
    pkg = SRC / "cnninv"
    present = {
        p.name + ("/" if p.is_dir() else "")
        for p in pkg.iterdir()
        if not p.name.startswith(("_", ".")) and (p.is_dir() or p.suffix == ".py")
    }
    present.discard("__pycache__/")
    assert named == present
