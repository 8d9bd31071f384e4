"""The cohort report end to end: papermill -> offline HTML -> a real (headless) browser.

Runs ``notebooks/00_world.ipynb`` on a tiny world drawn by the project's generator and
checks the numbers it records, that the page needs no network, hides the code and holds
no identifiers, and that Chromium draws its plotly figures.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pyarrow.compute as pc
import pytest

from oncorwe.core.errors import OncorweError
from oncorwe.core.privacy import check_no_identifiers
from oncorwe.report import browser
from oncorwe.report.render import (
    PLOTLY_SCRIPT_TAG,
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
    assert plotly_bundle_count(page) == 0  # loaded from plotly.min.js beside it
    assert page.count(PLOTLY_SCRIPT_TAG) == 1


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


# a figure, a styled table and an object's default repr: what carries a random id or an
# address in a cell's output
VOLATILE_CELL = (
    "import pandas as pd, plotly.express as px\n"
    "from IPython.display import display\n"
    "px.bar(x=['a', 'b'], y=[1, n]).show()\n"
    "display(pd.DataFrame({'n': [n]}).style)\n"
    "display(object())"
)


@pytest.mark.notebook
def test_two_runs_of_a_notebook_write_the_same_bytes(tmp_path, monkeypatch):
    src = _notebook(tmp_path / "volatile.ipynb", "n: int = 1  # a parameter", VOLATILE_CELL)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764633600")
    runs = [
        render_report(src, "volatile", {"n": 2}, tmp_path / f"reports{i}", timeout=120)
        for i in range(2)
    ]
    executed = [r.executed.read_bytes() for r in runs]
    assert executed[0] == executed[1]
    assert runs[0].html.read_bytes() == runs[1].html.read_bytes()
    text = executed[0].decode()
    assert str(tmp_path) not in text and ".volatile.ipynb." not in text  # no temporary
    nb = nbformat.reads(text, as_version=4)
    assert nb.metadata.papermill.input_path == src.name
    shown = [o.data for o in nb.cells[-1].outputs]  # plotly.js, figure, table, object
    assert 'class="plotly-graph-div"' in shown[1]["text/html"]
    assert 'id="oncorwe-1"' in shown[1]["text/html"]
    assert '<table id="oncorwe-2">' in shown[2]["text/html"]
    assert shown[3]["text/plain"] == "<object at 0x0>"
    assert runs[0].entry.generated == "2025-12-02"


def test_a_date_epoch_that_is_no_time_is_a_named_error(monkeypatch):
    from oncorwe.report.render import run_date

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(OncorweError, match="SOURCE_DATE_EPOCH='yesterday' is not a time"):
        run_date()


def _processes_naming(path) -> list[int]:
    """The processes whose command line names ``path`` (Linux: /proc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(path).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


# executes argv[1] into argv[2] with a sleep long enough to be killed in
KILLED_RUN = (
    "import sys\n"
    "from oncorwe.report.render import execute_notebook\n"
    "execute_notebook(sys.argv[1], sys.argv[2], {'s': 300}, timeout=600)\n"
)


@pytest.mark.notebook
def test_a_killed_run_leaves_its_kernel_file_where_the_next_run_removes_it(tmp_path):
    src = _notebook(tmp_path / "slow.ipynb", "s: int = 0  # seconds", "import time\ntime.sleep(s)")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(src), str(out / "slow.ipynb")],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (files := list(out.rglob("kernel.json"))) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # the connection file (ports, signing key) lies beside the output, in a folder named
    # for the killed process, not in the system's temp folder
    (kernel_file,) = files
    assert kernel_file.parent.parent == out
    assert kernel_file.parent.name.startswith(f".slow.ipynb.{proc.pid}.")
    # the kernel, in a session of its own, sees its parent gone and ends within a second
    # or so (ipykernel's parent poller); one still starting would write its file again
    deadline = time.monotonic() + 20
    while _processes_naming(kernel_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_naming(kernel_file)
    execute_notebook(src, out / "slow.ipynb", timeout=120)
    assert [p.name for p in out.iterdir()] == ["slow.ipynb"]
