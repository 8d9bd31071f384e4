"""Plotly figure builders: the house template, no LaTeX, aggregates only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oncorwe.core.errors import OncorweError
from oncorwe.report import figures


@pytest.fixture
def forest_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": ["EGFR+ NSCLC", "TPS>=50 NSCLC", "MSI-H CRC"],
            "estimate": [0.46, 0.6, 1.05],
            "ci_low": [0.35, 0.45, 0.8],
            "ci_high": [0.6, 0.8, 1.4],
            "group": ["planted", "planted", "control"],
        }
    )


def _no_latex(fig) -> bool:
    return "$" not in fig.to_json()


def test_forest_plot_draws_rows_top_down_on_a_log_axis(forest_rows):
    fig = figures.forest_plot(forest_rows)
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.yaxis.categoryarray) == forest_rows["label"].tolist()[::-1]
    assert fig.layout.shapes[0].x0 == 1.0  # the no-effect line
    assert {t.name for t in fig.data} == {"planted", "control"}
    assert _no_latex(fig)


def test_forest_plot_of_differences_is_linear_around_zero(forest_rows):
    diffs = forest_rows.assign(estimate=[-0.1, 0.0, 0.1], ci_low=-0.3, ci_high=0.3)
    fig = figures.forest_plot(diffs, null_value=0.0, x_title="Risk difference")
    assert fig.layout.xaxis.type == "linear" and fig.layout.shapes[0].x0 == 0.0


def test_forest_plot_names_missing_columns():
    with pytest.raises(OncorweError, match="ci_high"):
        figures.forest_plot(pd.DataFrame({"label": [], "estimate": [], "ci_low": []}))


def test_km_plot_draws_step_curves_and_optional_bands():
    t = np.array([0.0, 1.0, 2.0])
    fig = figures.km_plot({"drug": (t, [1, 0.8, 0.5]), "control": (t, [1, 0.7, 0.4], t * 0, t)})
    lines = [tr for tr in fig.data if tr.showlegend is not False]
    assert [tr.name for tr in lines] == ["drug", "control"]
    assert all(tr.line.shape == "hv" for tr in fig.data)
    assert len(fig.data) == 4  # two curves + one band (two edges)
    with pytest.raises(OncorweError, match="must be"):
        figures.km_plot({"x": (t,)})


def test_calibration_plot_has_the_diagonal_and_one_trace_per_group():
    fig = figures.calibration_plot({"korean": ([0.1, 0.5], [0.12, 0.48]), "other": ([0.2], [0.3])})
    assert fig.data[0].name == "perfect calibration"
    assert [t.name for t in fig.data[1:]] == ["korean", "other"]


def test_bar_counts_refuses_an_unsuppressed_small_count():
    df = pd.DataFrame({"cancer": ["a", "b"], "lines": [120, 4]})
    with pytest.raises(OncorweError, match="under min_cell"):
        figures.bar_counts(df, x="cancer", y="lines", min_cell=11)


def test_bar_counts_shows_suppressed_cells_as_labelled_stubs():
    df = pd.DataFrame({"cancer": ["a", "b"], "lines": pd.array([120, pd.NA], dtype="Int64")})
    fig = figures.bar_counts(df, x="cancer", y="lines", min_cell=11)
    bar = fig.data[0]
    assert list(bar.text) == ["", "<11"]
    assert bar.marker.color[1] == figures.SUPPRESSED_COLOR
    assert 0 < bar.y[1] < 120 * 0.05


def test_bar_counts_facets_get_one_panel_each():
    df = pd.DataFrame(
        {
            "cancer": ["a", "a", "b"],
            "drug": ["x", "y", "z"],
            "share": [0.6, 0.4, 1.0],
            "line": ["1", "1", "2"],
        }
    )
    fig = figures.bar_counts(df, x="drug", y="share", color="line", facet="cancer", percent=True)
    assert [a.text for a in fig.layout.annotations] == ["a", "b"]
    assert fig.layout.yaxis.tickformat == ".0%"


def test_histogram_keeps_patient_values_off_the_page():
    rng = np.random.default_rng(0)
    ages = np.round(rng.normal(60, 10, 500), 3)
    fig = figures.histogram_by_group(ages, rng.choice(["F", "M"], 500), bins=10, min_cell=11)
    payload = fig.to_json()
    assert not any(f"{a:.3f}" in payload for a in ages[:50] if a % 1)
    for tr in fig.data:
        assert np.nansum(tr.y) <= 1.0 + 1e-9


def test_histogram_hides_small_bins():
    values = [1.0] * 30 + [9.5] * 3
    fig = figures.histogram_by_group(values, ["g"] * 33, bins=[0, 5, 10], min_cell=11)
    assert np.isnan(fig.data[0].y[1]) and fig.data[0].y[0] == pytest.approx(30 / 33)


def test_balance_plot_sorts_by_imbalance_and_draws_the_threshold():
    rows = pd.DataFrame(
        {
            "covariate": ["age", "ecog", "stage"],
            "smd_before": [0.05, -0.4, 0.2],
            "smd_after": [0.01, 0.05, -0.02],
        }
    )
    fig = figures.balance_plot(rows)
    assert list(fig.data[0].y) == ["age", "stage", "ecog"]  # bottom to top
    assert list(fig.data[0].x) == [0.05, 0.2, 0.4]
    assert fig.layout.shapes[0].x0 == 0.1


def test_every_figure_uses_the_house_template(forest_rows):
    fig = figures.forest_plot(forest_rows)
    assert tuple(fig.layout.template.layout.colorway) == figures.PALETTE
