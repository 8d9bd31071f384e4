"""A stage's cost record: written where no stage and no DVC output looks."""

from __future__ import annotations

import json

import numpy as np

from oncorwe.core.paths import catalog
from oncorwe.pipeline.resources import measured, resource_table


def test_a_stage_record_measures_its_block(tmp_path):
    cat = catalog(tmp_path)
    with measured("features", cat) as rec:
        x = np.ones(64 * 2**20 // 8)  # 64 MiB held while the block runs
        total = float(sum(range(2_000_000)))
        rec["rows"] = 1234
    r = json.loads(cat.resources("features").read_text())
    assert r["stage"] == "features" and r["rows"] == 1234
    assert r["wall_s"] >= 0 and r["cpu_s"] > 0
    assert r["peak_rss_gib"] >= 64 / 1024  # the array counted in the peak
    assert total > 0 and x.size
    table = resource_table(cat)
    assert "| features |" in table and "1234" in table and "| cohort |" not in table


def test_a_failed_stage_writes_no_record(tmp_path):
    cat = catalog(tmp_path)
    try:
        with measured("hypothesis", cat):
            raise RuntimeError("stage failed")
    except RuntimeError:
        pass
    assert not cat.resources("hypothesis").exists()


def test_the_records_are_outside_every_dvc_output_and_git():
    from oncorwe.core.paths import project_root

    root = project_root()
    dvc = (root / "dvc.yaml").read_text()
    assert "logs/" not in dvc
    rel = catalog(root).resources("cohort").relative_to(root).as_posix()
    assert rel.startswith("logs/")
