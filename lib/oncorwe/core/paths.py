"""Project-root paths, independent of the working directory.

The project root is the nearest ancestor of the current directory (or of this file for an
editable install) that holds both ``params.yaml`` and ``dvc.yaml``; ``ONCORWE_ROOT``
overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path


def _looks_like_root(path: Path) -> bool:
    return (path / "params.yaml").is_file() and (path / "dvc.yaml").is_file()


def project_root() -> Path:
    """Return the project root (the folder with ``params.yaml`` and ``dvc.yaml``)."""
    env = os.environ.get("ONCORWE_ROOT")
    if env:
        return Path(env).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if _looks_like_root(candidate):
                return candidate
    raise FileNotFoundError(
        "no project root found: expected a folder holding params.yaml and dvc.yaml above "
        f"{Path.cwd()} (set ONCORWE_ROOT to point at one)"
    )


def resolve(path: str | os.PathLike[str]) -> Path:
    """Resolve ``path`` against the project root unless it is absolute."""
    p = Path(path)
    return p if p.is_absolute() else project_root() / p
