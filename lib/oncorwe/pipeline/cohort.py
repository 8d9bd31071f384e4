"""Cohort sources behind the `cohort` stage: the synthetic world or an OMOP extract."""

from __future__ import annotations

import json
from pathlib import Path

from oncorwe.cohort.generator import OMOP_TABLES, copy_tree, generate
from oncorwe.cohort.spec import load_spec
from oncorwe.core.errors import OncorweError
from oncorwe.core.io import atomic_path, write_json
from oncorwe.core.paths import Catalog, resolve
from oncorwe.core.privacy import suppress
from oncorwe.pipeline.params import CohortParams, Params


def run(params: Params, catalog: Catalog) -> dict:
    """Stage ``cohort``: write ``catalog.omop`` and ``catalog.truth`` from the source
    ``cohort.source`` names, and the stage metrics; return the metrics."""
    base = catalog.omop.parent  # generate and the OMOP copy write omop/ and truth/ here
    if params.cohort.source == "synthetic":
        metrics = synthetic_cohort(params.cohort, params.privacy.min_cell_count, base)
    else:
        metrics = omop_cohort(params.cohort, base)
    write_json(catalog.metrics("cohort"), metrics)
    return json.loads(json.dumps(metrics))


def synthetic_cohort(params: CohortParams, min_cell: int, base: Path) -> dict:
    """Draw the synthetic world of ``params.spec`` into ``base`` (OMOP tables and the
    ground truth the tests check findings against); its metrics count drug lines with
    the small counts suppressed, as any output of the project."""
    spec_path = params.spec if params.spec == "default" else resolve(params.spec)
    spec = load_spec(spec_path)
    summary = generate(spec, params.n_patients, params.seed, base)
    return {
        "source": "synthetic",
        "spec": spec.name,
        "patients": summary.patients,
        "lines": summary.lines,
        "rows": summary.rows,
        "drug_lines": {d: suppress(c, min_cell) for d, c in sorted(summary.drug_lines.items())},
    }


def omop_cohort(params: CohortParams, base: Path) -> dict:
    """Copy an OMOP extract into ``base`` after checking every table is there (a missing
    one would otherwise fail a later stage, far from its cause); the truth folder
    says that real data has no ground truth."""
    src = resolve(params.omop_dir)
    # a table is one Parquet file or a folder of its parts (as the features stage reads it)
    missing = [t for t in OMOP_TABLES if not (src / f"{t}.parquet").exists()]
    if missing:
        raise OncorweError(
            f"params.yaml cohort.omop_dir={src}: missing OMOP tables "
            f"{[t + '.parquet' for t in missing]}"
        )
    copy_tree(src, base / "omop")
    with atomic_path(base / "truth") as tmp:
        tmp.mkdir(parents=True)
        (tmp / "README.txt").write_text("An OMOP extract has no ground truth.\n")
    return {"source": "omop"}
