"""Every exit of the stages is aggregate: no small count, and no patient id of a user's table.

The pipeline's own outputs (track 1 and track 2 on the focused world) are scanned file
by file for counts under the threshold, by key name and by structure
(:func:`oncorwe.core.privacy.find_small_counts`), and so is every page the report stage
renders from them, table cells, figures and text
(:func:`oncorwe.core.privacy.find_small_counts_in_html`); the outputs of ``discover``,
``emulate`` and ``transport`` on a user's table with distinctive ids are grepped byte
for byte for those ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
import yaml

from oncorwe.core.privacy import (
    Finding,
    Sum,
    find_small_counts,
    find_small_counts_in_html,
    html_tables,
    is_count_label,
    plotly_figures,
    suppress_related,
    suppress_table,
)
from oncorwe.core.roles import read_table
from oncorwe.report import describe, figures
from oncorwe.report.render import visible_text

from .test_cli import oncorwe

MIN_CELL = 11


def scan_output_files(folder: Path, min_cell: int) -> tuple[int, list[Finding]]:
    """Scan every JSON and Parquet file under ``folder`` for counts under ``min_cell``;
    returns how many files were scanned and what was found. Other files (XGBoost
    models are JSON too and are scanned; the optuna study is SQLite) are counted only
    when they are read."""
    scanned, found = 0, []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".json":
            obj = json.loads(path.read_text())
        elif path.suffix == ".parquet":
            obj = pd.read_parquet(path)
        else:
            continue
        scanned += 1
        found += find_small_counts(obj, min_cell, str(path.relative_to(folder)))
    return scanned, found


# ------------------------------------------------------------------ the scanner
def test_the_scanner_finds_a_planted_small_count_in_json_and_parquet(tmp_path):
    (tmp_path / "a").mkdir()
    summary = {
        "models": {"response": {"by_hospital": [{"group": "H1", "n": 12, "events": 2}]}},
        "effect_distribution": [{"counts": [None, 40, 3]}],
        "screen": {"discovery_arms": [{"treatments": {"drug_a": 7}}]},
        "n_trials": 2,  # tuning trials, not patients
    }
    (tmp_path / "a" / "summary.json").write_text(json.dumps(summary))
    pd.DataFrame({"group": ["x", "y"], "n_patients": [40, 4]}).to_parquet(
        tmp_path / "a" / "t.parquet"
    )
    scanned, found = scan_output_files(tmp_path, MIN_CELL)
    assert scanned == 2
    assert sorted(f.value for f in found) == ["2", "3", "4", "7"]


def test_the_scanner_passes_suppressed_and_large_counts():
    clean = {"by_site": [{"n": 40, "events": None}], "counts": [None, 25], "n_go": 1}
    assert find_small_counts(clean, MIN_CELL) == []


# ------------------------------------------------------------------ derived counts
def test_events_are_withheld_when_the_rows_without_one_are_few():
    sums = [Sum("n", ("events",))]
    assert suppress_related({"n": 12, "events": 2}, sums, MIN_CELL)["events"] is None
    assert suppress_related({"n": 30, "events": 25}, sums, MIN_CELL)["events"] is None
    assert suppress_related({"n": 60, "events": 25}, sums, MIN_CELL)["events"] == 25


def test_a_lone_withheld_part_of_a_shown_total_takes_a_second_with_it():
    arms = [Sum("n", ("a", "b", "c"), exhaustive=True)]
    out = suppress_related({"n": 100, "a": 5, "b": 40, "c": 55}, arms, MIN_CELL)
    assert out == {"n": 100, "a": None, "b": None, "c": 55}


def test_suppression_follows_a_chain_of_sums():
    """The treated arm's events are few: the total events would give them back with the
    control arm's, so the control arm's events go too."""
    sums = [
        Sum("events", ("events_treated", "events_control"), exhaustive=True),
        Sum("n_treated", ("events_treated",)),
    ]
    counts = {"events": 60, "events_treated": 4, "events_control": 56, "n_treated": 50}
    out = suppress_related(counts, sums, MIN_CELL)
    assert out["events_treated"] is None and out["events_control"] is None


# ------------------------------------------------------------------ the pipeline
def test_track_outputs_hold_no_count_under_the_threshold(track1, track2):
    out, _ = track1
    n_hyp, found_hyp = scan_output_files(out, MIN_CELL)
    n_val, found_val = scan_output_files(track2, MIN_CELL)
    assert n_hyp >= 6 and n_val == 1  # hypotheses, summary, splits, 3 models (+ features)
    assert found_hyp + found_val == [], [str(f) for f in found_hyp + found_val]


# ------------------------------------------------------------------ the rendered pages
def _page(*parts) -> str:
    """A page as the reports hold them: pandas Styler tables and plotly figures."""
    html = []
    for part in parts:
        if isinstance(part, go.Figure):
            html.append(part.to_html(include_plotlyjs=False, full_html=False))
        else:
            html.append(part.to_html())
    return "\n".join(html)


def test_the_html_scanner_finds_a_planted_small_count_in_a_table_cell():
    rows = pd.DataFrame(
        {"cancer": ["a", "b", "c"], "lines": [120, 7, 40], "share": [0.7, 0.1, 0.2]}
    )
    page = _page(describe.table(rows, MIN_CELL, percent=["share"]))
    found = find_small_counts_in_html(page, MIN_CELL)
    assert [(f.value, "'lines' row 1" in f.where) for f in found] == [("7", True)]
    hidden = suppress_table(rows, ["lines"], MIN_CELL, derived={"share": "lines"})
    assert find_small_counts_in_html(_page(describe.table(hidden, MIN_CELL)), MIN_CELL) == []


def test_the_html_scanner_finds_a_planted_small_count_in_a_figures_hover_text():
    rows = pd.DataFrame({"site": ["H1", "H2", "H3"], "lines": [120, 4, 40]})
    bars = figures.bar_counts(rows, x="site", y="lines", title="Lines per hospital")
    found = find_small_counts_in_html(_page(bars), MIN_CELL)
    assert {f.value for f in found} == {"4"} and "point 1" in found[0].where
    hidden = suppress_table(rows, ["lines"], MIN_CELL)
    # the stub a hidden bar is drawn with is no count: the scan reads its "<11" label
    drawn = figures.bar_counts(hidden, x="site", y="lines", min_cell=MIN_CELL)
    assert find_small_counts_in_html(_page(drawn), MIN_CELL) == []
    # a count in the hover text of a trace that is not itself a count
    forest = figures.forest_plot(
        pd.DataFrame({"label": ["x"], "estimate": [0.8], "ci_low": [0.6], "ci_high": [1.0]})
    )
    forest.update_traces(hovertext=["korean, n = 6"])
    assert [f.value for f in find_small_counts_in_html(_page(forest), MIN_CELL)] == ["n = 6"]


def test_every_rendered_page_holds_no_count_under_the_threshold(rendered_reports):
    reports, rendered, _ = rendered_reports
    pages = sorted(reports.glob("*.html"))
    assert [p.stem for p in pages] == sorted([*rendered, "index"])
    found, seen = [], {}
    for path in pages:
        page = visible_text(path.read_text(encoding="utf-8"))
        found += find_small_counts_in_html(page, MIN_CELL, path.name)
        count_cells = sum(
            sum(map(is_count_label, headers)) * len(rows) for headers, rows in html_tables(page)
        )
        count_bars = sum(
            t.get("type") == "bar" and is_count_label(t.get("name", ""))
            for fig in plotly_figures(page)
            for t in fig["data"]
        )
        seen[path.stem] = (count_cells, count_bars)
    # the scan read what the pages show: each report has count cells or count bars
    assert all(cells + bars > 0 for name, (cells, bars) in seen.items() if name != "index"), seen
    assert found == [], [str(f) for f in found]


# ------------------------------------------------------------------ a user's table
PREFIX = "PAT-"


@pytest.fixture(scope="module")
def byo_cohort(track1, tmp_path_factory):
    """First-line NSCLC from the focused world as a user's table whose ids are
    distinctive ('PAT-000123'), with a roles file."""
    out, _ = track1
    t = read_table(out.parent / "analysis")
    t = t[(t["cancer"] == "nsclc") & (t["line"] == 1)]
    # a sample is enough: the ids, not the fit, are tested (and the suite has a budget)
    t = t.sample(n=min(len(t), 4000), random_state=0).copy()
    codes = {k: f"{PREFIX}{i:06d}" for i, k in enumerate(t["person_key"].unique())}
    t["patient"] = t["person_key"].map(codes)
    cols = ["patient", "treatment", "pfs_months", "pfs_event", "response", "site"]
    cols += ["population", "bm_pdl1_tps_status", "bm_egfr_status", "lab_ecog", "age", "stage"]
    d = tmp_path_factory.mktemp("byo_ids")
    t[cols].to_csv(d / "cohort.csv", index=False)
    roles = {
        "id": "patient",
        "treatment": "treatment",
        "comparator": "platinum_doublet",
        "treated": "pembrolizumab",
        "time": "pfs_months",
        "event": "pfs_event",
        "response": "response",
        "hospital": "site",
        "population": "population",
        "covariates": ["lab_ecog", "age", "stage", "bm_pdl1_tps_status", "bm_egfr_status"],
        "categorical": ["stage", "bm_pdl1_tps_status", "bm_egfr_status", "population"],
        "subgroups": ["bm_pdl1_tps_status", "bm_egfr_status", "population"],
    }
    (d / "roles.yaml").write_text(yaml.safe_dump(roles))
    return d, sorted(codes.values()), sorted(codes)


def _holding(folder: Path, needles: list[bytes]) -> dict[str, int]:
    """File -> how many of ``needles`` its bytes hold (files holding none left out).
    A Parquet file's columns are read too: its pages are compressed, and a compressed
    run of ids need not hold each id's bytes."""
    hits = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            data += "\n".join(frame[c].astype(str).str.cat(sep="\n") for c in frame).encode()
        n = sum(needle in data for needle in needles)
        if n:
            hits[str(path.relative_to(folder))] = n
    return hits


def test_no_output_of_a_users_table_holds_a_patient_id_or_a_small_count(byo_cohort, tmp_path):
    d, ids, source_keys = byo_cohort
    cohort, roles = d / "cohort.csv", d / "roles.yaml"
    t = pd.read_csv(cohort)
    t[t["population"] == "korean"].to_csv(tmp_path / "a.csv", index=False)
    t[t["population"] != "korean"].to_csv(tmp_path / "b.csv", index=False)
    small = tmp_path / "params.yaml"  # two tuning trials: the ids, not the fit, are tested
    small.write_text(yaml.safe_dump({"hypothesis": {"tuning_trials": 2}}))
    runs = {
        "discover": ("--cohort", cohort, "--roles", roles, "--params", small),
        "emulate": ("--cohort", cohort, "--roles", roles),
        "transport": ("--train", tmp_path / "a.csv", "--test", tmp_path / "b.csv"),
    }
    runs["transport"] += ("--roles", roles)
    needles = [i.encode() for i in ids] + [k.encode() for k in source_keys]
    n_files = 0
    for cmd, args in runs.items():
        res = oncorwe(cmd, *args, "--out", tmp_path / cmd, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert PREFIX not in res.stdout + res.stderr
        files = [p for p in (tmp_path / cmd).rglob("*") if p.is_file()]
        assert files, cmd
        n_files += len(files)
        assert _holding(tmp_path / cmd, needles) == {}, cmd
        _, small = scan_output_files(tmp_path / cmd, MIN_CELL)
        for page in (tmp_path / cmd).glob("*.html"):
            small += find_small_counts_in_html(page.read_text(), MIN_CELL, page.name)
        assert small == [], [str(f) for f in small]
    assert not (tmp_path / "discover" / "splits.parquet").exists()
    assert n_files >= 8


def test_the_id_grep_finds_planted_ids_in_compressed_parquet(tmp_path):
    ids = [f"{PREFIX}{i:06d}" for i in range(5000)]
    pd.DataFrame({"id": ids, "part": "validation"}).to_parquet(tmp_path / "splits.parquet")
    (tmp_path / "log.txt").write_text(f"patient {ids[3]}")
    needles = [i.encode() for i in ids]
    assert _holding(tmp_path, needles) == {"log.txt": 1, "splits.parquet": 5000}
