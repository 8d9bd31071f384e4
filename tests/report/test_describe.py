"""The cohort tables behind 00_world.ipynb: right numbers, small cells hidden."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oncorwe.core.errors import OncorweError
from oncorwe.report import describe

MIN_CELL = 11


def test_load_analysis_reads_every_site_partition(analysis):
    folder, table = analysis
    df, roles = describe.load_analysis(folder)
    assert len(df) == table.num_rows
    assert df["site"].nunique() == len(list(folder.glob("site=*")))
    assert roles["id"] == "person_key"


def test_load_analysis_names_a_missing_stage_output(tmp_path):
    with pytest.raises(OncorweError, match="dvc repro features"):
        describe.load_analysis(tmp_path)


def test_km_curves_start_at_one_and_read_lifelines_on_the_grid(analysis_frame):
    from lifelines import KaplanMeierFitter

    curves = describe.km_by(analysis_frame, "cancer", MIN_CELL)
    assert curves
    for name, (grid, surv) in curves.items():
        part = analysis_frame[analysis_frame["cancer"] == name]
        km = KaplanMeierFitter().fit(part["pfs_months"], part["pfs_event"])
        assert grid[0] == 0.0 and surv[0] == 1.0
        expected = km.survival_function_at_times(grid).to_numpy()
        np.testing.assert_allclose(surv, expected, rtol=1e-12, atol=0)


def test_km_curves_stop_before_fewer_than_min_cell_are_at_risk(analysis_frame):
    curves = describe.km_by(analysis_frame, "cancer", MIN_CELL)
    for name, (grid, surv) in curves.items():
        part = analysis_frame[analysis_frame["cancer"] == name]
        at_risk_at_end = (part["pfs_months"] >= grid[-1]).sum()
        assert at_risk_at_end >= MIN_CELL
        assert np.allclose(np.diff(grid), 0.5)
        assert np.all(np.diff(surv) <= 0)


def test_km_groups_under_min_cell_are_left_out(analysis_frame):
    few = analysis_frame.head(5).assign(cancer="rare")
    curves = describe.km_by(pd.concat([analysis_frame, few]), "cancer", MIN_CELL)
    assert "rare" not in curves


def test_counts_by_hides_small_groups_and_their_share(analysis_frame):
    out = describe.counts_by(analysis_frame, ["site"], MIN_CELL)
    raw = analysis_frame["site"].value_counts()
    small = set(raw[raw < MIN_CELL].index)
    assert small  # the tiny world has small hospitals
    hidden = out[out["site"].isin(small)]
    assert hidden["lines"].isna().all() and hidden["share_of_lines"].isna().all()
    shown = out.dropna(subset=["lines"])
    assert (shown["lines"] >= MIN_CELL).all()
    assert dict(zip(shown["site"], shown["lines"], strict=True)) == raw[raw >= MIN_CELL].to_dict()


def test_drug_use_shares_sum_to_one_within_cancer_and_line(analysis_frame):
    out = describe.drug_use(analysis_frame, min_cell=1)
    sums = out.groupby(["cancer", "line_group"])["share_in_line"].sum()
    np.testing.assert_allclose(sums.to_numpy(float), 1.0)


def test_biomarker_testing_rates_match_the_table(analysis_frame):
    out = describe.biomarker_testing(analysis_frame, MIN_CELL)
    row = out[(out["cancer"] == "nsclc") & (out["biomarker"] == "EGFR")].iloc[0]
    nsclc = analysis_frame[analysis_frame["cancer"] == "nsclc"]
    assert row["tested_share"] == pytest.approx((nsclc["bm_egfr_status"] != "not_tested").mean())
    assert not ((out["cancer"] == "colorectal") & (out["biomarker"] == "EGFR")).any()


def test_outcome_completeness_counts_known_outcomes(analysis_frame):
    out = describe.outcome_completeness(analysis_frame, MIN_CELL)
    row = out[(out["cancer"] == "breast") & (out["outcome"] == "response assessed")].iloc[0]
    breast = analysis_frame[analysis_frame["cancer"] == "breast"]
    assert row["known"] == breast["response"].notna().sum()


def test_cohort_summary_suppresses_a_small_cohort(analysis_frame):
    small = analysis_frame.head(4)
    summary = describe.cohort_summary(small, MIN_CELL)
    assert summary["lines"] is None and summary["patients"] is None


def test_for_display_reads_like_a_report():
    df = pd.DataFrame(
        {
            "cancer": ["a", "b"],
            "lines": pd.array([1234, pd.NA], dtype="Int64"),
            "share": [0.5, None],
        }
    )
    out = describe.for_display(df, MIN_CELL, percent=["share"])
    assert out["lines"].tolist() == ["1,234", "<11"]
    assert out["share"].tolist() == ["50.0%", "-"]
