"""The report stage's command line (rendering itself is the notebooks' smoke tests)."""

from __future__ import annotations

from oncorwe.core.paths import Catalog
from oncorwe.pipeline.report import PARAMETERS, main, parser


def test_the_default_is_every_report():
    assert parser().parse_args([]).names == sorted(PARAMETERS)


def test_an_unknown_report_exits_2_and_names_the_known_ones(capsys, tmp_path):
    assert main(["no_such_report", "--reports-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown report 'no_such_report'" in err and "00_world" in err
    assert not any(tmp_path.iterdir())  # refused before anything was rendered or indexed


def test_the_index_overview_gives_provenance_even_before_the_stages_ran(monkeypatch, tmp_path):
    from oncorwe.pipeline import report
    from oncorwe.pipeline.params import read_params

    monkeypatch.setattr("oncorwe.core.paths.catalog", lambda root=None: Catalog(tmp_path))
    block = report.index_overview(read_params())
    assert "Synthetic data." in block and "Provenance" in block and "seed 20261129" in block
    assert "Headline" not in block  # no stage output to read a headline from
