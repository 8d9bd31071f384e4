"""Descriptive tables of the analysis table for the cohort report (``00_world.ipynb``).

Every function returns aggregates with counts under ``min_cell`` suppressed (and shares
computed from them), ready to show; no patient-level value leaves this module except
:func:`load_analysis`.

Example
-------
>>> table, roles = load_analysis("data/features/analysis")      # doctest: +SKIP
>>> counts_by(table, ["cancer"], min_cell=11)                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from oncorwe.core.errors import OncorweError
from oncorwe.core.paths import resolve
from oncorwe.core.privacy import COUNT_NAME, suppress_table, suppressed_label
from oncorwe.models.kaplan_meier import weighted_kaplan_meier
from oncorwe.report.render import METRICS_KEY

STATUS_SUFFIX = "_status"


def load_analysis(analysis_dir: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict]:
    """Read the feature stage's output: every ``site=NAME/part-0.parquet`` and ``roles.json``.

    ``analysis_dir`` is resolved against the project root when relative.
    """
    folder = resolve(analysis_dir)
    parts = sorted(folder.glob("site=*/part-*.parquet"))
    if not parts:
        raise OncorweError(
            f"{folder}: no site=NAME/part-0.parquet files (run `dvc repro features` first)"
        )
    roles_path = folder / "roles.json"
    if not roles_path.is_file():
        raise OncorweError(f"{roles_path} is missing (the feature stage writes it)")
    # Read files one by one: hive partitioning would add a second 'site' column.
    table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
    return table.to_pandas(), json.loads(roles_path.read_text())


def line_group(line: pd.Series) -> pd.Series:
    """Line of therapy as ``"line 1"``, ``"line 2"``, ``"line 3+"``."""
    n = pd.to_numeric(line).astype(int)
    return pd.Series(
        np.where(n >= 3, "line 3+", "line " + n.clip(upper=3).astype(str)), index=line.index
    )


def cohort_summary(table: pd.DataFrame, min_cell: int) -> dict:
    """Headline numbers: lines, patients, sites, cancers, populations (counts suppressed)."""

    def cell(k: int) -> int | None:
        return int(k) if k >= min_cell else None

    return {
        "lines": cell(len(table)),
        "patients": cell(table["person_key"].nunique()),
        "sites": int(table["site"].nunique()),
        "cancers": int(table["cancer"].nunique()),
        "populations": int(table["population"].nunique()),
        "treatments": int(table["treatment"].nunique()),
        "index_years": [int(table["index_year"].min()), int(table["index_year"].max())],
        "lines_per_cancer": {
            str(k): cell(v) for k, v in table["cancer"].value_counts().sort_index().items()
        },
        "min_cell": int(min_cell),
    }


def show_summary(summary: dict, *, title: str = "At a glance"):
    """Display the headline numbers as a short list and record them in the output metadata.

    The numbers travel with the executed notebook (``metadata["oncorwe.metrics"]`` of the
    output), so a test or a pipeline reads them back without scraping text.
    """
    from IPython.display import Markdown, display

    label = suppressed_label(summary.get("min_cell", 11))

    def n(v) -> str:
        return label if v is None else f"{v:,}"

    lo, hi = summary["index_years"]
    text = "\n".join(
        [
            f"**{title}**",
            "",
            f"- **{n(summary['lines'])}** treated lines of therapy in "
            f"**{n(summary['patients'])}** patients",
            f"- **{summary['sites']}** hospitals, **{summary['cancers']}** cancer types, "
            f"**{summary['populations']}** populations, **{summary['treatments']}** treatments",
            f"- lines started between **{lo}** and **{hi}**",
        ]
    )
    display(Markdown(text), metadata={METRICS_KEY: summary})


def counts_by(table: pd.DataFrame, by: Sequence[str], min_cell: int) -> pd.DataFrame:
    """Lines and distinct patients per group, with each group's share of all lines."""
    by = list(by)
    g = table.groupby(by, observed=True, dropna=False)
    out = pd.DataFrame({"lines": g.size(), "patients": g["person_key"].nunique()}).reset_index()
    out["share_of_lines"] = out["lines"] / len(table)
    out = out.sort_values("lines", ascending=False, kind="stable").reset_index(drop=True)
    return suppress_table(
        out,
        ["lines", "patients"],
        min_cell,
        derived={"share_of_lines": "lines"},
    )


def drug_use(table: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """Treatments per cancer and line group (1, 2, 3+): lines and share within the group."""
    df = table.assign(line_group=line_group(table["line"]))
    g = df.groupby(["cancer", "line_group", "treatment"], observed=True)
    out = g.size().rename("lines").reset_index()
    totals = out.groupby(["cancer", "line_group"])["lines"].transform("sum")
    out["share_in_line"] = out["lines"] / totals
    out = out.sort_values(
        ["cancer", "line_group", "lines"], ascending=[True, True, False], kind="stable"
    ).reset_index(drop=True)
    return suppress_table(
        out,
        ["lines"],
        min_cell,
        derived={"share_in_line": "lines"},
        complement_within=["cancer", "line_group"],
    )


def biomarkers(table: pd.DataFrame) -> list[str]:
    """Biomarker names present in the table (from the ``bm_<name>_status`` columns)."""
    return [
        c[len("bm_") : -len(STATUS_SUFFIX)]
        for c in table.columns
        if c.startswith("bm_") and c.endswith(STATUS_SUFFIX)
    ]


def biomarker_testing(table: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """Per cancer and biomarker: lines, lines tested before the index date, share tested.

    Pairs in which the marker was never tested (not part of that cancer's work-up) are
    left out. ``positive`` counts positive results (for a TPS marker: TPS >= 50 %);
    ``positive_share`` is among the tested lines.
    """
    rows = []
    for cancer, part in table.groupby("cancer", observed=True):
        for bm in biomarkers(table):
            status = part[f"bm_{bm}{STATUS_SUFFIX}"]
            tested = int((status != "not_tested").sum())
            if tested == 0:
                continue
            positive = int(status.isin(["positive", ">=50"]).sum())
            rows.append(
                {
                    "cancer": cancer,
                    "biomarker": bm.upper(),
                    "lines": len(part),
                    "tested": tested,
                    "tested_share": tested / len(part),
                    "positive": positive,
                    "positive_share": positive / tested,
                }
            )
    cols = ["cancer", "biomarker", "lines", "tested", "tested_share", "positive", "positive_share"]
    out = pd.DataFrame(rows, columns=cols)
    return suppress_table(
        out,
        ["lines", "tested", "positive"],
        min_cell,
        derived={"tested_share": ["tested", "lines"], "positive_share": ["positive", "tested"]},
    )


OUTCOMES = {
    "response": "response assessed",
    "toxicity": "toxicity window covered",
    "pfs_event": "progression or death seen",
    "os_event": "death seen",
}


def outcome_completeness(table: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """Per cancer and outcome: lines, lines with the outcome known (or the event seen), share.

    ``response`` and ``toxicity`` are known when not null; for PFS and OS the count is
    of observed events (the rest are censored).
    """
    rows = []
    for cancer, part in table.groupby("cancer", observed=True):
        for col, label in OUTCOMES.items():
            known = (
                int(part[col].notna().sum())
                if col in ("response", "toxicity")
                else int((part[col] == 1).sum())
            )
            rows.append(
                {
                    "cancer": cancer,
                    "outcome": label,
                    "lines": len(part),
                    "known": known,
                    "known_share": known / len(part),
                }
            )
    out = pd.DataFrame(rows, columns=["cancer", "outcome", "lines", "known", "known_share"])
    return suppress_table(
        out, ["lines", "known"], min_cell, derived={"known_share": ["known", "lines"]}
    )


def km_by(
    table: pd.DataFrame,
    group: str,
    min_cell: int,
    *,
    time: str = "pfs_months",
    event: str = "pfs_event",
    grid_months: float = 0.5,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Kaplan-Meier curves per group, coarsened so that no single patient can be read off.

    Groups with fewer than ``min_cell`` lines are left out; each curve
    (:func:`~oncorwe.models.kaplan_meier.weighted_kaplan_meier`, unit weights) is read on a
    grid of ``grid_months`` from 0 (where it is 1) and stops at the last time with at least
    ``min_cell`` lines at risk.
    """
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, part in table.groupby(group, observed=True, sort=True):
        if len(part) < min_cell:
            continue
        curve = weighted_kaplan_meier(part[event].to_numpy(), part[time].to_numpy(float))
        # time 0 has all len(part) >= min_cell lines at risk, so a curve has its origin
        enough = curve.times[curve.at_risk >= min_cell]
        t_max = enough.max() if enough.size else 0.0
        grid = np.arange(0.0, t_max + 1e-9, grid_months)
        curves[str(name)] = (grid, curve.at(grid))
    return curves


def km_medians(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Median time per curve (first grid time with survival <= 0.5; NA if not reached)."""
    rows = []
    for name, (t, s) in curves.items():
        below = np.flatnonzero(np.asarray(s) <= 0.5)
        rows.append({"group": name, "median_months": float(t[below[0]]) if len(below) else None})
    return pd.DataFrame(rows, columns=["group", "median_months"])


def for_display(
    df: pd.DataFrame,
    min_cell: int,
    *,
    percent: Sequence[str] = (),
    decimals: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Format a suppressed table for a reader: ``1,234``, ``12.5%``, ``<11`` for hidden cells.

    Count columns (named like counts: ``lines``, ``patients``, ``tested``...) get thousands
    separators and ``<min_cell`` where suppressed; ``percent`` columns read ``12.5%`` (``-``
    where suppressed: the count beside it says why); ``decimals`` fixes other numbers.
    """
    out = df.copy()
    label = suppressed_label(min_cell)
    decimals = decimals or {}
    for col in out.columns:
        s = out[col]
        if col in percent:
            out[col] = ["-" if pd.isna(v) else f"{v:.1%}" for v in s]
        elif col in decimals:
            out[col] = ["-" if pd.isna(v) else f"{v:.{decimals[col]}f}" for v in s]
        elif COUNT_NAME.search(str(col)) and pd.api.types.is_numeric_dtype(s):
            out[col] = [label if pd.isna(v) else f"{int(v):,}" for v in s]
    out.columns = [str(c).replace("_", " ") for c in out.columns]
    return out.reset_index(drop=True)


def table(
    df: pd.DataFrame,
    min_cell: int,
    *,
    percent: Sequence[str] = (),
    decimals: dict[str, int] | None = None,
):
    """:func:`for_display` as a styled table without the row index (for notebooks)."""
    shown = for_display(df, min_cell, percent=percent, decimals=decimals)
    return shown.style.hide(axis="index")


__all__ = [
    "METRICS_KEY",
    "OUTCOMES",
    "biomarker_testing",
    "biomarkers",
    "cohort_summary",
    "counts_by",
    "drug_use",
    "for_display",
    "km_by",
    "km_medians",
    "line_group",
    "load_analysis",
    "outcome_completeness",
    "show_summary",
    "table",
]
