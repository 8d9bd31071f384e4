"""Refuse notebooks with outputs: source notebooks are committed stripped (executed
copies are pipeline outputs under ``reports/``).

A code cell with outputs or an execution count is refused, and so is a ``.ipynb`` that is
not notebook JSON. Usage: ``python3 tools/hooks/check_notebook_outputs.py NOTEBOOK...``;
exit status 1 names each notebook and its cells. ``nbstripout NOTEBOOK`` strips one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def refusal(path: Path) -> str | None:
    """Why notebook ``path`` may not be committed, or None."""
    if not path.is_file():
        return None
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [(i, c) for i, c in enumerate(cells) if c["cell_type"] == "code"]
    except (ValueError, KeyError, TypeError) as err:
        return f"{path}: not a notebook ({type(err).__name__}: {err})"
    dirty = [i for i, c in code if c.get("outputs") or c.get("execution_count") is not None]
    if dirty:
        shown = ", ".join(map(str, dirty[:10])) + (" ..." if len(dirty) > 10 else "")
        return f"{path}: {len(dirty)} code cell(s) with outputs or an execution count ({shown})"
    return None


def main(argv: list[str]) -> int:
    found = [r for r in map(refusal, map(Path, argv)) if r]
    for r in found:
        print(r)
    if found:
        print("Commit notebooks without outputs: run `nbstripout` on them, then add them again.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
