"""The report stage's command line and the warnings its pages carry (rendering itself is
the notebooks' smoke tests)."""

from __future__ import annotations

import pytest

from oncorwe.core.paths import Catalog
from oncorwe.pipeline.params import Params
from oncorwe.pipeline.report import PARAMETERS, index_overview, main, parser, report_warnings
from oncorwe.report.render import export_html, write_index

BANNER = 'class="banner oncorwe-warning"'
SMALL_CELLS = {"privacy": {"min_cell_count": 3, "allow_small_cells": True}}
NO_TLS = {"training": "federated", "federated": {"tls": False, "allow_insecure": True}}


def test_the_default_is_every_report():
    assert parser().parse_args([]).names == sorted(PARAMETERS)


def test_an_unknown_report_exits_2_and_names_the_known_ones(capsys, tmp_path):
    assert main(["no_such_report", "--reports-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown report 'no_such_report'" in err and "00_world" in err
    assert not any(tmp_path.iterdir())  # refused before anything was rendered or indexed


def test_the_index_overview_gives_provenance_even_before_the_stages_ran(tmp_path):
    from oncorwe.pipeline import report
    from oncorwe.pipeline.params import read_params

    block = report.index_overview(read_params(), Catalog(tmp_path))
    assert "Synthetic data." in block and "Provenance" in block and "seed 20261129" in block
    assert "Headline" not in block  # no stage output to read a headline from


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, []),
        (SMALL_CELLS, ["Small counts shown: the small-cell threshold is 3"]),
        ({"privacy": {"min_cell_count": 11, "allow_small_cells": True}}, []),  # not used
        ({"compute": NO_TLS}, ["Federation without TLS"]),
        ({"compute": {**NO_TLS, "training": "pooled"}}, []),  # no federated run
        ({**SMALL_CELLS, "compute": NO_TLS}, ["Small counts shown", "Federation without TLS"]),
    ],
)
def test_the_warnings_follow_the_params_the_stage_reads(params, expected):
    warnings = report_warnings(Params.model_validate(params))
    assert len(warnings) == len(expected)
    assert all(w.startswith(e) for w, e in zip(warnings, expected, strict=True))


def test_every_page_and_the_index_carry_the_banner_when_small_cells_are_allowed(
    rendered_reports, tmp_path
):
    """The session's reports were rendered with the default params: no banner. The
    banner is put on a page when it is exported, so each executed notebook is exported
    again with the warnings of ``allow_small_cells`` (the stage's render_one passes
    them the same way) and the index is written again from those params."""
    reports, rendered, data = rendered_reports
    pages = sorted(reports.glob("*.html"))
    assert len(pages) == len(rendered) + 1
    assert not [p.name for p in pages if BANNER in p.read_text(encoding="utf-8")]
    params = Params.model_validate(SMALL_CELLS)
    warnings = report_warnings(params)
    for name, report in rendered.items():
        page = export_html(
            report.executed, tmp_path / f"{name}.html", title=name, warnings=warnings
        ).read_text(encoding="utf-8")
        body = page[page.index("<main>") :]
        assert body.index(BANNER) < body.index("jp-Cell"), name  # above the first cell
        assert "small-cell threshold is 3" in page, name
    index = write_index(tmp_path, overview=index_overview(params, data)).read_text()
    assert BANNER in index and "small-cell threshold is 3" in index
    assert index.index(BANNER) < index.index("<h2>Reports</h2>")
