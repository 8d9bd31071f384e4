"""Atomic file writes (a temporary sibling, then rename) and the one JSON encoder.

A failed stage therefore never leaves a half-written output behind; every result that
becomes JSON goes through :func:`jsonable` (NumPy and pandas scalars to Python, NaN and
missing to null) and :func:`write_json`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    Works for files and directories. On an exception the temporary path is removed and
    ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    work = tmp / target.name
    try:
        yield work
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(work, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: NumPy / pandas scalars to Python, arrays and tuples
    to lists, keys to text, a dataclass to its fields, NaN, infinity and missing values
    (``None``, ``pd.NA``, ``NaT``) to None. Booleans stay booleans.

    >>> import numpy as np
    >>> jsonable({1: np.float32(0.5), "b": [np.int64(2), float("nan")], "c": np.bool_(True)})
    {'1': 0.5, 'b': [2, None], 'c': True}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "ndim") and value.ndim > 0:
        return jsonable(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "item") and not isinstance(value, int | float | str | bool):
        value = value.item()  # a NumPy scalar
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def rounded(obj: Any, digits: int = 6) -> Any:
    """``obj`` with every float rounded to ``digits`` significant digits (NaN -> None)."""
    if isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            return None
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return obj


def write_json(target: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON (floats to 6 digits), atomically."""
    with atomic_path(target) as tmp:
        text = json.dumps(rounded(payload), indent=2, sort_keys=True, allow_nan=False)
        tmp.write_text(text + "\n")
