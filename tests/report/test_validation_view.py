"""The track 2 notebook's tables and figures, from ``validation.json``."""

from __future__ import annotations

import re

from oncorwe.report import validation_view as vv
from oncorwe.report.labels import label

from . import stage_outputs as so


def _no_go():
    return next(h for h in so.validation()["hypotheses"] if h["decision"] == "no-go")


def _deciding(h) -> str:
    reason = next(r for r in h["reasons"] if "worst:" in r)
    return re.search(r"\(worst: ([^)]+)\)", reason).group(1)


def test_the_balance_plot_of_a_no_go_holds_the_covariate_that_decided_it():
    h = _no_go()
    rows = h["emulation"]["balance"]
    worst = _deciding(h)
    assert [r["covariate"] for r in rows].index(worst) >= 40  # past the file's first 40
    fig = vv.balance_figure(h, top=40)
    shown = set(fig.data[0].y)
    assert len(shown) == 40 and label(worst) in shown


def test_balance_rows_keep_every_failing_covariate_then_the_largest_imbalances():
    h = {
        "emulation": {
            "balance": [
                {"covariate": "a", "smd_before": 0.50, "smd_after": 0.02},
                {"covariate": "b", "smd_before": 0.01, "smd_after": 0.30},
                {"covariate": "c", "smd_before": 0.20, "smd_after": 0.01},
                {"covariate": "d", "smd_before": 0.03, "smd_after": None},
                {"covariate": "e", "smd_before": 0.04, "smd_after": float("inf")},
            ]
        }
    }
    assert vv.balance_rows(h, 2)["covariate"].tolist() == ["b", "e"]
    assert vv.balance_rows(h, 3)["covariate"].tolist() == ["a", "b", "e"]
    assert len(vv.balance_rows(h)) == 5 and len(vv.balance_rows(h, 10)) == 5
    assert vv.balance_rows({}, 3).empty
