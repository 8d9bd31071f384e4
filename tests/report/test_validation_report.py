"""The track 2 page rendered on small stage outputs: readable numbers, printable tables."""

from __future__ import annotations

import re

import pytest

from oncorwe.core.paths import project_root
from oncorwe.report import validation_view as vv
from oncorwe.report.render import render_report, visible_text

from . import stage_outputs as so


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    base = tmp_path_factory.mktemp("validation_report")
    dirs = so.write(base / "data")
    report = render_report(
        project_root() / "notebooks" / "02_validation.ipynb",
        "02_validation",
        {"validation_path": str(dirs["validation"]), "min_cell": 11},
        base / "reports",
        timeout=300,
    )
    return report.html.read_text(encoding="utf-8")


def test_durations_and_trial_sizes_read_without_trailing_zeros(page):
    table = vv.decision_table(so.validation())
    assert table["duration (months)"].tolist() == ["36.0", "30.5"]
    assert table["trial N (80% power)"].tolist() == ["420", "420"]
    assert not re.search(r"\d\.\d{6}\b", visible_text(page).split("<script")[0])


def test_the_page_shows_readable_names(page):
    assert "#2 osimertinib: cancer = NSCLC and EGFR status positive" in page
    assert "bm_egfr_status" not in visible_text(page).split("<script")[0]


def test_a_printed_page_keeps_every_table_column(page):
    rules = page[page.index("@media print") :]
    assert "landscape" in rules and "white-space: normal" in rules
    assert "overflow: visible" in rules


def test_the_decision_table_shows_each_emulations_e_values():
    from oncorwe.report import validation_view as vv

    res = {
        "hypotheses": [
            {
                "rank": 1,
                "drug": "d",
                "subgroup": "all",
                "decision": "go",
                "emulation": {"hazard_ratio": 0.56, "ci_low": 0.46, "ci_high": 0.69,
                              "e_value": 2.3495, "e_value_ci": 1.908},
            },
            {"rank": 2, "drug": "e", "subgroup": "all", "decision": "no-go", "emulation": {}},
        ]
    }  # fmt: skip
    table = vv.decision_table(res)
    assert table["E-value (CI)"].tolist() == ["2.35 (1.91)", ""]
