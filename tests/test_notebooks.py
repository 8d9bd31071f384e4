"""Pipeline notebooks run through papermill on tiny data and record the right numbers."""

from __future__ import annotations

import json

import pytest

from oncorwe.report.labels import label
from oncorwe.report.render import assert_no_cdn, visible_text

pytestmark = pytest.mark.notebook


def test_hypothesis_notebook_reports_the_stage_results(track1, rendered_reports):
    out, _ = track1
    report = rendered_reports[1]["01_hypothesis"]  # rendered by the report stage's code
    hyps = json.loads((out / "hypotheses.json").read_text())["hypotheses"]
    confirmed = [h for h in hyps if h["confirmed"]]
    assert report.metrics["confirmed"] == len(confirmed)
    assert report.metrics["drugs_with_confirmed"] == sorted({h["drug"] for h in confirmed})
    html = report.html.read_text()
    assert_no_cdn(html)
    assert "Bias audit" in html and "ranked hypotheses" in html
    assert "Signals the data cannot yet test" in html
    n_comp = len(json.loads((out / "summary.json").read_text())["overlap"]["comparisons"])
    assert f"of {n_comp} comparisons have poor overlap" in html
    # the confirmed safety hypotheses are listed under their own heading, with their q
    safety = json.loads((out / "hypotheses.json").read_text())["safety"]
    shown = [h for h in safety if h["confirmed"]]
    text = visible_text(html)
    section = text[text.index("Safety signals") : text.index("All ranked hypotheses")]
    assert shown, "the focused world confirms a safety signal (test_track)"
    for h in shown:
        assert label(h["drug"]) in section
        assert f"{100 * h['confirmation']['toxicity']['effect']:+.1f} points" in section
