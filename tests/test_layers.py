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
