"""The package's shape as tests: no private name crosses a module boundary.

The layers themselves (``[tool.importlinter]`` in pyproject.toml) are checked by
``lint-imports`` in ``make lint``; this test covers what import-linter does not: a name
that starts with ``_`` is its module's own, and importing it elsewhere couples two
modules through a detail neither documents.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib" / "oncorwe"


def private_imports(root: Path = LIB) -> list[str]:
    """``file:line name`` for every ``from oncorwe.x import _name`` under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("oncorwe"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root)}:{node.lineno} {alias.name}")
    return found


def test_the_scan_finds_a_private_import(tmp_path):
    (tmp_path / "a.py").write_text("from oncorwe.x import _helper, public\n")
    assert private_imports(tmp_path) == ["a.py:1 _helper"]


def test_no_private_name_is_imported_across_modules():
    assert private_imports() == []


def backend_forks(root: Path = LIB) -> list[str]:
    """``file:line`` for every test of a trainer against None that branches (``if trainer
    is None`` / ``... if trainer is not None ...`` deciding what to fit). A default
    (``EstimatorTrainer() if trainer is None else trainer``) is not a fork: every model
    goes through the trainer either way."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.If | ast.IfExp | ast.BoolOp):
                continue
            test = node.test if not isinstance(node, ast.BoolOp) else node
            for cmp in ast.walk(test):
                if (
                    isinstance(cmp, ast.Compare)
                    and isinstance(cmp.left, ast.Name)
                    and "trainer" in cmp.left.id
                    and isinstance(cmp.ops[0], ast.Is | ast.IsNot)
                ):
                    is_default = (
                        isinstance(node, ast.IfExp)
                        and isinstance(node.orelse, ast.Name)
                        and node.orelse.id == cmp.left.id
                    )
                    if not is_default:
                        found.append(f"{path.relative_to(root)}:{node.lineno}")
    return sorted(set(found))


def test_the_fork_scan_finds_a_fork_and_passes_a_default(tmp_path):
    (tmp_path / "a.py").write_text(
        "def f(trainer=None):\n"
        "    trainer = T() if trainer is None else trainer\n"
        "    if trainer is not None:\n"
        "        pass\n"
    )
    assert backend_forks(tmp_path) == ["a.py:3"]


def test_no_analysis_branches_on_its_backend():
    """Every model goes through the stage's trainer (pooled is one too): no analysis asks
    whether it has one."""
    assert backend_forks() == []
