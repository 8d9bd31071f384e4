"""Project-root paths, independent of the working directory.

The project root is the nearest ancestor of the current directory (or of this file for an
editable install) that holds both ``params.yaml`` and ``dvc.yaml``; ``ONCORWE_ROOT``
overrides it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Catalog:
    """Every stage's inputs and outputs, in one place: the data folders' only spelling.

    ``dvc.yaml`` declares the same paths as each stage's deps and outs; the stages read
    and write through this catalog, never through a path literal of their own.
    """

    root: Path

    @property
    def omop(self) -> Path:
        """``cohort`` writes the OMOP tables here; ``features`` reads them."""
        return self.root / "data" / "cohort" / "omop"

    @property
    def truth(self) -> Path:
        """The synthetic world's planted truth: written by ``cohort``, read by no stage."""
        return self.root / "data" / "cohort" / "truth"

    @property
    def analysis(self) -> Path:
        """One row per treated line, from ``features``."""
        return self.root / "data" / "features" / "analysis"

    @property
    def hypothesis(self) -> Path:
        """Track 1's folder: hypotheses.json, summary.json, splits.parquet, models/."""
        return self.root / "data" / "hypothesis"

    @property
    def validation(self) -> Path:
        """Track 2's result file."""
        return self.root / "data" / "validation" / "validation.json"

    @property
    def reports(self) -> Path:
        """Rendered reports (HTML) and their executed notebooks."""
        return self.root / "reports"

    def metrics(self, stage: str) -> Path:
        """A stage's DVC metrics file (aggregates only)."""
        return self.root / "metrics" / f"{stage}.json"

    def plot(self, name: str) -> Path:
        """A DVC plot's data (``dvc plots show``): a small CSV of aggregates."""
        return self.root / "metrics" / "plots" / f"{name}.csv"

    def resources(self, stage: str) -> Path:
        """A stage's wall time, CPU time, peak memory and rows: read by no stage, tracked
        by neither DVC nor git, so timings never change a hashed output."""
        return self.root / "logs" / "resources" / f"{stage}.json"


def catalog(root: str | os.PathLike[str] | None = None) -> Catalog:
    """The catalog of the project at ``root`` (default: :func:`project_root`).

    >>> catalog("/p").analysis.as_posix(), catalog("/p").metrics("features").as_posix()
    ('/p/data/features/analysis', '/p/metrics/features.json')
    """
    return Catalog(Path(root) if root is not None else project_root())
