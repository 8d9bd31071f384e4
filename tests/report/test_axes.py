"""Every figure the report views build reads well: no axis whose ticks read the same."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from oncorwe.report import figures
from oncorwe.report import hypothesis_view as hv
from oncorwe.report import validation_view as vv

from . import stage_outputs as so

MIN_CELL = 11


def _view_figures() -> dict[str, go.Figure]:
    hyps, summary, res = so.hypotheses(), so.summary(), so.validation()
    out = {f"forest {e}": hv.forest_figure(hyps, e) for e in ("pfs", "response", "toxicity")}
    out |= {f"shap {i}": f for i, f in enumerate(hv.shap_figures(summary))}
    out["observed / expected"] = hv.observed_expected_figure(summary)
    out["AUC by hospital"] = hv.auc_by_hospital_figure(summary)
    out["effect distribution"] = hv.effect_distribution_figure(summary, MIN_CELL)
    out |= {f"population {i}": f for i, f in enumerate(hv.population_figures(hyps))}
    out["hazard ratios"] = vv.hr_figure(res)
    out["adaptive"] = vv.adaptive_figure(res)
    for h in res["hypotheses"]:
        out[f"km #{h['rank']}"] = vv.km_figure(h)
        out[f"balance #{h['rank']}"] = vv.balance_figure(h)
    return out


VIEW_FIGURES = _view_figures()


def test_the_fixture_builds_a_figure_for_every_view():
    assert all(isinstance(f, go.Figure) for f in VIEW_FIGURES.values())
    assert len(VIEW_FIGURES) == 17


@pytest.mark.parametrize("name", sorted(VIEW_FIGURES))
def test_no_axis_of_a_view_figure_has_ticks_that_read_the_same(name):
    assert figures.unreadable_axes(VIEW_FIGURES[name]) == []


def test_the_check_catches_shares_formatted_as_whole_numbers():
    fig = go.Figure(go.Bar(y=["a", "b"], x=[0.02, 0.31], orientation="h"))
    fig.update_xaxes(tickformat=",.0f")
    bad = figures.unreadable_axes(fig)
    assert len(bad) == 1 and bad[0].startswith("xaxis: ticks read ['0', '0'")
    fig.update_xaxes(tickformat=".0%", range=[0, 0.02], dtick=0.005)
    assert figures.unreadable_axes(fig)  # 0%, 1%, 1%, 2%, 2%


def test_the_check_computes_ticks_from_range_and_step_as_plotly_does():
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1])).update_yaxes(
        range=[0, 1], dtick=0.25, tick0=0, tickformat=".0%"
    )
    assert figures.tick_labels(fig)["yaxis"] == [["0%", "25%", "50%", "75%", "100%"]]


@pytest.mark.parametrize(
    ("values", "percent"),
    [([0.004, 0.31], False), ([0.97, 1.03], False), ([1, 2, 3], False), ([0.001, 0.012], True)],
)
def test_bar_counts_formats_its_value_axis_by_the_data_scale(values, percent):
    df = pd.DataFrame({"k": [f"c{i}" for i in range(len(values))], "v": values})
    for horizontal in (False, True):
        fig = figures.bar_counts(df, "k", "v", percent=percent, horizontal=horizontal)
        assert figures.unreadable_axes(fig) == []


def test_a_suppressed_stub_is_never_taller_than_a_real_bar_of_its_panel():
    df = pd.DataFrame(
        {
            "bin": ["a", "b", "a", "b"],
            "lines": pd.array([5000, pd.NA, 12, pd.NA], dtype="Int64"),
            "panel": ["big", "big", "small", "small"],
        }
    )
    fig = figures.bar_counts(df, "bin", "lines", facet="panel", min_cell=11)
    for tr in fig.data:
        real = [
            h for h, c in zip(tr.y, tr.marker.color, strict=True) if c != figures.SUPPRESSED_COLOR
        ]
        stubs = [
            h for h, c in zip(tr.y, tr.marker.color, strict=True) if c == figures.SUPPRESSED_COLOR
        ]
        assert stubs and max(stubs) < min(real)


def test_effect_by_population_draws_one_panel_per_unit():
    figs = hv.population_figures(so.hypotheses())
    titles = sorted(f.layout.xaxis.title.text for f in figs)
    assert titles == [hv.ENDPOINT_LABEL["pfs"], hv.ENDPOINT_LABEL["response"]]
