"""dvc.yaml's code deps cover every ``oncorwe`` file each stage runs.

DVC reruns a stage only when one of its declared deps changes, so a module the stage
imports but does not declare serves stale results when it is edited. For each stage this
finds the code its ``cmd`` runs (``oncorwe <subcommand>``: the imports of that
subcommand's function in ``cli.py``; ``python -m oncorwe.x``: that module; a notebook,
``notebooks/NAME.ipynb`` named as ``python -m oncorwe.x NAME`` or run by ``papermill``:
the notebook and its code cells' ``oncorwe`` imports), follows the static imports within
the package with :mod:`ast`, and names every file of that closure no dep covers (a
folder dep covers the files under it).

Static imports only: module- and function-level ``import`` / ``from ... import`` (a name
imported from a package counts as its submodule when one exists), relative imports, the
``__init__.py`` of every package on the way (importing ``oncorwe.a.b`` runs
``oncorwe/a/__init__.py``), and ``"-m", "oncorwe.x"`` argv pairs (child processes, as the
federated server starts its sites). Imports under ``if TYPE_CHECKING:`` do not run and
are skipped. ``cli.py`` itself is not required, only what a stage's subcommand imports
from it: editing another subcommand there must not rerun every stage.
"""

from __future__ import annotations

import ast
import json
import shlex
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"  # the folder holding the ``oncorwe`` package
PACKAGE = "oncorwe"
CLI_MODULE = "oncorwe.cli"
NOTEBOOKS = "notebooks"  # ``python -m oncorwe.x NAME`` renders notebooks/NAME.ipynb


# --- the import closure ------------------------------------------------------------------


def module_file(name: str, lib: Path = LIB) -> Path | None:
    """The file of module ``name`` under ``lib`` (a package's ``__init__.py``), or None."""
    base = lib.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` except the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _run_nodes(other)
            continue
        yield child
        yield from _run_nodes(child)


def imported_modules(tree: ast.AST, module: str, is_package: bool, lib: Path = LIB) -> set[str]:
    """The ``oncorwe`` modules that code ``tree`` (of ``module``) imports or launches."""
    found: set[str] = set()
    for node in _run_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if _in_package(a.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not _in_package(base):
                continue
            found.add(base)
            for alias in node.names:  # ``from oncorwe.x import y``: y may be a submodule
                if module_file(f"{base}.{alias.name}", lib) is not None:
                    found.add(f"{base}.{alias.name}")
        elif isinstance(node, ast.List | ast.Tuple):  # argv: [..., "-m", "oncorwe.x", ...]
            for flag, target in zip(node.elts, node.elts[1:], strict=False):
                if (
                    isinstance(flag, ast.Constant)
                    and flag.value == "-m"
                    and isinstance(target, ast.Constant)
                    and isinstance(target.value, str)
                    and _in_package(target.value)
                ):
                    found.add(target.value)
    return found


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(roots: Iterable[str], lib: Path = LIB) -> set[Path]:
    """Files of the ``oncorwe`` modules ``roots`` and everything they import, transitively
    (with the ``__init__.py`` of each package on the way)."""
    seen: set[str] = set()
    todo = [p for r in roots for p in _with_parents(r)]
    files: set[Path] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, lib)
        if path is None:
            continue
        files.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for imported in imported_modules(tree, name, path.name == "__init__.py", lib):
            todo.extend(_with_parents(imported))
    return files


# --- what a stage's cmd runs ---------------------------------------------------------------


def _command_name(fn: ast.FunctionDef) -> str | None:
    """The typer command name of a function decorated ``@app.command(...)``, else None."""
    for deco in fn.decorator_list:
        call = deco if isinstance(deco, ast.Call) else None
        func = call.func if call else deco
        if not (isinstance(func, ast.Attribute) and func.attr == "command"):
            continue
        if call and call.args and isinstance(call.args[0], ast.Constant):
            return str(call.args[0].value)
        for kw in call.keywords if call else []:
            if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                return str(kw.value.value)
        return fn.name.replace("_", "-")
    return None


def cli_roots(subcommand: str, lib: Path = LIB) -> set[str]:
    """The ``oncorwe`` modules ``oncorwe <subcommand>`` imports: those at ``cli.py``'s top
    level, in the subcommand's function, and in the ``cli.py`` helpers it calls."""
    path = module_file(CLI_MODULE, lib)
    assert path is not None, f"{CLI_MODULE} not found under {lib}"
    tree = ast.parse(path.read_text(), filename=str(path))
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    commands = {_command_name(f): f for f in helpers.values() if _command_name(f)}
    if subcommand not in commands:
        raise AssertionError(f"`oncorwe {subcommand}`: no such command in {path}")
    top = ast.Module(body=[n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)])
    roots = imported_modules(top, CLI_MODULE, False, lib)
    todo, done = [commands[subcommand]], set()
    while todo:
        fn = todo.pop()
        if fn.name in done:
            continue
        done.add(fn.name)
        roots |= imported_modules(fn, CLI_MODULE, False, lib)
        for node in _run_nodes(fn):
            if isinstance(node, ast.Name) and node.id in helpers:
                todo.append(helpers[node.id])
    return roots


def notebook_roots(notebook: Path, lib: Path = LIB) -> set[str]:
    """The ``oncorwe`` modules a notebook's code cells import (IPython magics removed)."""
    from IPython.core.inputtransformer2 import TransformerManager

    to_python = TransformerManager().transform_cell
    roots: set[str] = set()
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        tree = ast.parse(to_python(src), filename=str(notebook))
        roots |= imported_modules(tree, "__main__", False, lib)
    return roots


def _default_notebooks(module: str, lib: Path) -> list[str]:
    """The notebooks ``python -m module`` renders when given no names: the keys of its
    ``PARAMETERS`` dict (NAME -> parameters of notebooks/NAME.ipynb), if it has one."""
    files = [module_file(f"{module}.__main__", lib), module_file(module, lib)]
    for file in (f for f in files if f is not None):
        for node in ast.parse(file.read_text()).body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "PARAMETERS" for t in targets):
                    return [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
    return []


def stage_code(cmd: str | list[str], root: Path = ROOT, lib: Path = LIB) -> set[Path]:
    """The files a stage's ``cmd`` runs: ``oncorwe`` modules and notebooks."""
    modules: set[str] = set()
    notebooks: set[Path] = set()
    for line in [cmd] if isinstance(cmd, str) else cmd:
        argv = shlex.split(line)
        if argv[:1] == ["oncorwe"]:
            sub = next(a for a in argv[1:] if not a.startswith("-"))
            modules |= cli_roots(sub, lib)
        elif argv[:1] and argv[0].startswith("python") and argv[1:2] == ["-m"]:
            target, rest = argv[2], argv[3:]
            modules |= {target, f"{target}.__main__"}
            names = [a for a in rest if not a.startswith("-")] or _default_notebooks(target, lib)
            for name in names:  # the module's arguments that name a notebook
                nb = root / name if name.endswith(".ipynb") else root / NOTEBOOKS / f"{name}.ipynb"
                if nb.is_file():
                    notebooks.add(nb)
        elif argv[:1] == ["papermill"]:
            notebooks.add(root / next(a for a in argv[1:] if a.endswith(".ipynb")))
        else:
            raise AssertionError(f"cannot tell which oncorwe code `{line}` runs")
    for nb in notebooks:
        modules |= notebook_roots(nb, lib)
    return import_closure(modules, lib) | notebooks


# --- coverage ------------------------------------------------------------------------------


def uncovered(files: Iterable[Path], deps: Iterable[str], root: Path = ROOT) -> list[str]:
    """The files (as paths from ``root``) that no dep names or holds (a folder dep)."""
    dep_paths = [(root / d).resolve() for d in deps]
    return sorted(
        f.resolve().relative_to(root).as_posix()
        for f in files
        if not any(f.resolve() == d or d in f.resolve().parents for d in dep_paths)
    )


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _deps(stage: dict) -> list[str]:
    wdir = stage.get("wdir", ".")
    return [str(Path(wdir) / d) for d in stage.get("deps", [])]


# --- the checker on a package written for the test -----------------------------------------


@pytest.fixture
def tiny_lib(tmp_path) -> Path:
    """A fake ``oncorwe`` package using every import form the closure must follow."""
    files = {
        "oncorwe/__init__.py": "",
        "oncorwe/cli.py": (
            "from oncorwe.top import E\n"
            "def _helper():\n    from oncorwe import helped\n"
            "@app.command()\ndef run_it():\n    _helper()\n    from oncorwe.a import b\n"
            "@app.command('other')\ndef other():\n    import oncorwe.unused\n"
        ),
        "oncorwe/top.py": "E = 1\n",
        "oncorwe/helped.py": "",
        "oncorwe/unused.py": "",
        "oncorwe/a/__init__.py": "from .c import x\n",
        "oncorwe/a/b.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from oncorwe import typing_only\n"
            "def f():\n    from ..d import y\n    return ['-m', 'oncorwe.child']\n"
        ),
        "oncorwe/a/c.py": "x = 1\n",
        "oncorwe/d.py": "y = 1\n",
        "oncorwe/child.py": "",
        "oncorwe/typing_only.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_closure_follows_function_level_relative_submodule_and_child_imports(tiny_lib):
    got = {p.relative_to(tiny_lib).as_posix() for p in stage_code("oncorwe run-it", lib=tiny_lib)}
    assert got == {
        "oncorwe/__init__.py",
        "oncorwe/top.py",  # cli.py's top level
        "oncorwe/helped.py",  # a cli.py helper the command calls
        "oncorwe/a/__init__.py",  # the package of a.b, which imports .c
        "oncorwe/a/b.py",  # ``from oncorwe.a import b``: b is a submodule
        "oncorwe/a/c.py",
        "oncorwe/d.py",  # relative import inside a function
        "oncorwe/child.py",  # launched as ``python -m oncorwe.child``
    }  # not unused.py (another command's) nor typing_only.py (TYPE_CHECKING)


def test_a_notebook_counts_with_the_imports_of_its_code_cells(tiny_lib):
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "import oncorwe.unused"},
        {"cell_type": "code", "metadata": {}, "source": ["%matplotlib inline\n", "x = 1"]},
        {"cell_type": "code", "metadata": {}, "source": "!ls\nfrom oncorwe import d"},
    ]
    (tiny_lib / "nb.ipynb").write_text(json.dumps({"cells": cells, "nbformat": 4}))
    got = stage_code("papermill nb.ipynb out.ipynb -p n 1", root=tiny_lib, lib=tiny_lib)
    assert {p.relative_to(tiny_lib).as_posix() for p in got} == {
        "nb.ipynb",
        "oncorwe/__init__.py",
        "oncorwe/d.py",
    }


@pytest.mark.parametrize("cmd", ["python -m oncorwe.rep nb --timeout 9", "python -m oncorwe.rep"])
def test_a_module_counts_with_the_notebooks_it_is_told_or_defaults_to_render(tiny_lib, cmd):
    (tiny_lib / "oncorwe/rep.py").write_text("PARAMETERS = {'nb': None}\n")
    (tiny_lib / "notebooks").mkdir()
    cell = {"cell_type": "code", "metadata": {}, "source": "from oncorwe import d"}
    (tiny_lib / "notebooks/nb.ipynb").write_text(json.dumps({"cells": [cell], "nbformat": 4}))
    got = stage_code(cmd, root=tiny_lib, lib=tiny_lib)
    assert {p.relative_to(tiny_lib).as_posix() for p in got} == {
        "notebooks/nb.ipynb",
        "oncorwe/__init__.py",
        "oncorwe/rep.py",
        "oncorwe/d.py",
    }


def test_a_folder_dep_covers_the_files_under_it_and_a_file_dep_only_itself(tiny_lib):
    files = [tiny_lib / "oncorwe/a/b.py", tiny_lib / "oncorwe/d.py", tiny_lib / "oncorwe/e.py"]
    assert uncovered(files, ["oncorwe/a", "oncorwe/d.py"], root=tiny_lib) == ["oncorwe/e.py"]


def test_an_unknown_command_is_refused_rather_than_passed():
    with pytest.raises(AssertionError, match="cannot tell"):
        stage_code("bash run.sh")


# --- dvc.yaml ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(_stages()))
def test_stage_deps_cover_the_code_it_runs(name):
    stage = _stages()[name]
    missing = uncovered(stage_code(stage["cmd"]), _deps(stage))
    assert not missing, (
        f"dvc.yaml stage {name!r} runs {len(missing)} file(s) its deps do not cover, so "
        f"editing them would not rerun it: {missing}"
    )


@pytest.mark.parametrize("name", sorted(_stages()))
def test_dropping_any_code_dep_of_a_stage_is_caught(name):
    """Each code dep is needed: without it the check above names the files it covered."""
    stage = _stages()[name]
    code = stage_code(stage["cmd"])
    deps = _deps(stage)
    for dep in deps:
        covered = uncovered(code, [dep]) != uncovered(code, [])
        if covered:
            assert uncovered(code, [d for d in deps if d != dep]), (name, dep)
