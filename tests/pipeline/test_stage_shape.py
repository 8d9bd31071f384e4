"""The stage layer's shape (the architecture issue): a stage is named steps, each short
enough to read at once and saying why in its docstring."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parents[2] / "lib" / "oncorwe" / "pipeline"
# every stage module (params.py is the configuration, not a stage)
STAGES = sorted(p.name for p in PIPELINE.glob("*.py") if p.name not in ("__init__.py", "params.py"))
MAX_LINES = 80


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


@pytest.mark.parametrize("path", sorted(PIPELINE.glob("*.py")), ids=lambda p: p.name)
def test_no_function_is_over_80_lines(path):
    """From the def line to the body's last line, docstring included."""
    long = {
        f.name: f.end_lineno - f.lineno + 1
        for f in _functions(path)
        if f.end_lineno - f.lineno + 1 > MAX_LINES
    }
    assert not long, long


@pytest.mark.parametrize("name", STAGES)
def test_every_step_of_a_stage_says_why(name):
    tree = ast.parse((PIPELINE / name).read_text())
    bare = [
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.ClassDef) and not ast.get_docstring(n)
    ]
    assert not bare, bare
