"""What each pipeline stage cost: wall time, CPU time, peak memory and rows.

A stage runs inside :func:`measured`, which writes ``logs/resources/<stage>.json``
(:meth:`~oncorwe.core.paths.Catalog.resources`). No stage reads these files and DVC does
not track them, so a rerun that changes only its timings stays a no-op downstream and the
data and metrics files stay byte-identical between runs. ``make resources`` prints the
table (``python -m oncorwe.pipeline.resources``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Iterator
from typing import Any

from oncorwe.core.io import write_json
from oncorwe.core.paths import Catalog, catalog

__all__ = ["STAGES", "measured", "resource_table"]

STAGES = ("cohort", "features", "hypothesis", "validation", "report")


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def measured(stage: str, where: Catalog) -> Iterator[dict[str, Any]]:
    """Measure the stage run inside the block and write its record when it ends well.

    Yields a dict the stage fills with its row counts (``rows``). CPU time counts this
    process and its finished children (site processes, Dask workers, notebook kernels);
    peak RSS is the larger of this process's and its largest finished child's
    (``getrusage``: Linux reports KiB).
    """
    t0, c0 = time.perf_counter(), _cpu_seconds()
    counts: dict[str, Any] = {}
    yield counts
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    write_json(
        where.resources(stage),
        {
            "stage": stage,
            "wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(_cpu_seconds() - c0, 1),
            "peak_rss_gib": round(max(own, kids) / 2**20, 2),
            **counts,
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        },
    )


def resource_table(where: Catalog) -> str:
    """The stages' records as a Markdown table (stages never run are left out)."""
    rows = [
        "| stage | wall (s) | CPU (s) | peak RSS (GiB) | rows | finished |",
        "|---|---|---|---|---|---|",
    ]
    for stage in STAGES:
        path = where.resources(stage)
        if path.is_file():
            r = json.loads(path.read_text())
            rows.append(
                f"| {stage} | {r['wall_s']:,} | {r['cpu_s']:,} | {r['peak_rss_gib']} "
                f"| {r.get('rows', '')} | {r['finished']} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - make resources
    sys.stdout.write(resource_table(catalog()) + "\n")
