"""The reproduction check compares every stage output's hash but the reports', and names
each output a run did not reproduce."""

from __future__ import annotations

import importlib.util

from .conftest import ROOT

_spec = importlib.util.spec_from_file_location("check", ROOT / "tools" / "check_reproduced.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


def _lock(**md5: str) -> dict:
    stages = {
        "features": {"outs": [{"path": "data/features/analysis", "md5": md5["features"]}]},
        "hypothesis": {"outs": [{"path": "metrics/hypothesis.json", "md5": md5["metrics"]}]},
        "report": {"outs": [{"path": "reports/index.html", "md5": md5["report"]}]},
    }
    return {"schema": "2.0", "stages": stages}


def test_a_report_made_at_another_time_is_no_difference():
    then = check.outputs(_lock(features="a", metrics="b", report="c"))
    now = check.outputs(_lock(features="a", metrics="b", report="d"))
    assert set(then) == {"data/features/analysis", "metrics/hypothesis.json"}
    assert check.differences(then, now) == []


def test_a_changed_metrics_file_and_a_missing_output_are_named():
    then = check.outputs(_lock(features="a", metrics="b", report="c"))
    now = check.outputs(_lock(features="a", metrics="x", report="c"))
    del now["data/features/analysis"]
    assert check.differences(then, now) == [
        "data/features/analysis: committed a, this run (absent)",
        "metrics/hypothesis.json: committed b, this run x",
    ]
