"""The cohort report end to end: papermill -> offline HTML -> a real (headless) browser.

Runs ``notebooks/00_world.ipynb`` on a tiny world drawn by the project's generator and
checks the numbers it records, that the page needs no network, hides the code and holds
no identifiers, and that Chromium draws its plotly figures.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys

import nbformat
import pyarrow.compute as pc
import pytest

from oncorwe.core.errors import OncorweError
from oncorwe.core.privacy import check_no_identifiers
from oncorwe.report import browser
from oncorwe.report.render import (
    assert_no_cdn,
    execute_notebook,
    kernel_python,
    plotly_bundle_count,
    read_metrics,
    render_report,
    scan_reports,
    visible_text,
    write_index,
)

from ..conftest import ROOT

WORLD_NOTEBOOK = ROOT / "notebooks" / "00_world.ipynb"
MIN_CELL = 11
needs_chromium = pytest.mark.skipif(
    browser.find_chromium() is None,
    reason="Chromium not installed (apt-get install -y chromium; CI installs it)",
)


@pytest.fixture(scope="module")
def report(analysis, tmp_path_factory):
    analysis_dir, _ = analysis
    reports = tmp_path_factory.mktemp("reports")
    rendered = render_report(
        WORLD_NOTEBOOK,
        "00_world",
        {"analysis_dir": str(analysis_dir), "min_cell": MIN_CELL},
        reports,
        timeout=300,
    )
    write_index(reports, [rendered.entry])
    return rendered


@pytest.fixture(scope="module")
def page(report) -> str:
    return report.html.read_text(encoding="utf-8")


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(sources[0], metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources[1:]]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def test_source_notebook_is_committed_without_outputs():
    nb = nbformat.read(WORLD_NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert not any(re.search(r"^\s*(def|class)\s", c.source, re.M) for c in code)


def test_the_project_kernel_runs_this_python():
    assert kernel_python() == sys.executable


@pytest.mark.notebook
def test_world_report_records_the_table_numbers(report, analysis):
    _, table = analysis
    m = report.metrics
    assert m["lines"] == table.num_rows
    assert m["patients"] == len(pc.unique(table["person_key"]))
    assert m["sites"] == len(pc.unique(table["site"]))
    assert sum(v for v in m["lines_per_cancer"].values() if v) <= table.num_rows
    assert report.executed.is_file()
    assert report.entry.generated == dt.date.today().isoformat()


@pytest.mark.notebook
def test_world_report_needs_no_network(page):
    assert '<script src="http' not in page
    assert_no_cdn(page)
    assert plotly_bundle_count(page) == 1


@pytest.mark.notebook
def test_world_report_hides_the_code(page):
    assert "load_analysis" not in page and "from oncorwe" not in page
    assert not re.search(r'class="[^"]*(jp-InputArea-editor|jp-InputPrompt|jp-OutputPrompt)', page)
    assert "The cohort at a glance" in page  # markdown stays


@pytest.mark.notebook
def test_world_report_holds_no_identifiers(page, report):
    check_no_identifiers(visible_text(page), allow=[report.entry.generated])


@pytest.mark.notebook
def test_index_links_the_report(report):
    index = (report.html.parent / "index.html").read_text()
    assert 'href="00_world.html"' in index and "The cohort at a glance" in index
    assert "<script" not in index
    assert scan_reports(report.html.parent) == [report.entry]


@pytest.mark.notebook
@needs_chromium
def test_chromium_draws_every_plotly_figure(report, page):
    dom = browser.dom_after_scripts(report.html)
    figures = page.count('class="plotly-graph-div"')
    assert figures >= 6
    chunks = dom.split('class="plotly-graph-div')[1:]
    assert len(chunks) == figures
    assert all('<svg class="main-svg"' in chunk for chunk in chunks)


@pytest.mark.notebook
@needs_chromium
def test_screenshot_is_not_a_blank_page(report, tmp_path):
    shot = browser.screenshot(report.html, tmp_path / "00_world.png")
    assert shot.stat().st_size > 40_000
    try:
        from PIL import Image
    except ImportError:  # without pillow: compare with a blank page's screenshot
        blank_html = tmp_path / "blank.html"
        blank_html.write_text("<!DOCTYPE html><html><body></body></html>")
        blank = browser.screenshot(blank_html, tmp_path / "blank.png")
        assert shot.stat().st_size > 5 * blank.stat().st_size
        return
    with Image.open(shot) as img:
        rgb = img.convert("RGB")
        assert rgb.size == (1280, 2000)
        colors = rgb.getcolors(maxcolors=1_000_000) or []
        white = sum(n for n, c in colors if min(c) >= 250)
        assert white < 0.97 * rgb.width * rgb.height  # text, bars and axes drawn
        assert len(colors) > 50


@pytest.mark.notebook
def test_a_failing_cell_raises_and_leaves_no_page(tmp_path):
    src = _notebook(
        tmp_path / "bad.ipynb",
        "x: int = 1  # a parameter",
        "raise ValueError(f'planted failure {x}')",
    )
    with pytest.raises(
        OncorweError,
        match=r"bad.ipynb: cell 2 .*starting `raise ValueError.*ValueError: planted failure 7",
    ):
        render_report(src, "bad", {"x": 7}, tmp_path / "reports", timeout=60)
    assert not (tmp_path / "reports" / "bad.html").exists()
    assert not list((tmp_path / "reports").rglob("*.ipynb"))


@pytest.mark.notebook
def test_the_kernel_runs_from_the_project_root_with_the_notebook_renderer(tmp_path):
    src = _notebook(
        tmp_path / "env.ipynb",
        "y: str = 'a'  # a parameter",
        "import json, os, sys\n"
        "from IPython.display import display\n"
        "display({'text/plain': 'env'}, raw=True, metadata={'oncorwe.metrics': {\n"
        "    'cwd': os.getcwd(), 'exe': sys.executable,\n"
        "    'renderer': os.environ.get('PLOTLY_RENDERER'), 'y': y}})",
    )
    before = os.environ.get("PLOTLY_RENDERER")
    out = execute_notebook(src, tmp_path / "out" / "env.ipynb", {"y": ["a", "list"]})
    env = read_metrics(out)
    assert env["cwd"] == str(ROOT)
    assert env["exe"] == sys.executable
    assert env["renderer"] == "notebook"
    assert env["y"] == ["a", "list"]  # lists travel as parameters (papermill -y)
    assert os.environ.get("PLOTLY_RENDERER") == before  # restored after the run
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["env.ipynb"]
