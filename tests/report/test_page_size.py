"""A page loads the one plotly.js beside it instead of embedding its own (issue: 5 MB a page).

One small notebook with a figure and a wide table is executed once; its page is written
shared (the default: ``<script src="plotly.min.js">`` and the file beside the page) and
as a single file (the bundle embedded once, for e-mail). Chromium, with the network
off, draws the shared page's figure from the file beside it, and nothing without it.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest
from plotly.offline import get_plotlyjs

from oncorwe.core.errors import OncorweError
from oncorwe.pipeline.report import parser
from oncorwe.report import browser
from oncorwe.report.render import (
    PLOTLY_BUNDLE_FILE,
    PLOTLY_SCRIPT_TAG,
    assert_no_cdn,
    export_html,
    plotly_bundle_count,
    render_report,
)

from .test_render import _notebook

needs_chromium = pytest.mark.skipif(
    browser.find_chromium() is None,
    reason="Chromium not installed (apt-get install -y chromium; CI installs it)",
)
FIGURE = 'class="plotly-graph-div"'
# a figure and a table wider than a printed page (the go/no-go table has 12 columns)
FIGURE_CELL = (
    "import pandas as pd, plotly.express as px\n"
    "from IPython.display import display\n"
    "px.bar(x=['a', 'b', 'c'], y=[1, n, 3]).show()\n"
    "display(pd.DataFrame({f'a long column header {i}': [i * n] for i in range(14)}))"
)


def _executed(path, *htmls):
    """An executed notebook by hand: one code cell showing each of ``htmls``."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("shown")
    cell.outputs = [nbformat.v4.new_output("display_data", {"text/html": h}) for h in htmls]
    nb.cells = [cell]
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The small notebook rendered by render_report as the stage does (shared bundle)."""
    tmp = tmp_path_factory.mktemp("page_size")
    src = _notebook(tmp / "figure.ipynb", "n: int = 1  # a parameter", FIGURE_CELL)
    return render_report(src, "figure", {"n": 2}, tmp / "reports", timeout=120)


@pytest.fixture(scope="module")
def single(shared, tmp_path_factory):
    """The same executed notebook exported as one file, into a folder of its own."""
    out = tmp_path_factory.mktemp("single") / "figure.html"
    return export_html(shared.executed, out, title="figure", self_contained=True)


@pytest.mark.notebook
def test_a_page_loads_the_shared_bundle_instead_of_embedding_it(shared):
    page = shared.html.read_text(encoding="utf-8")
    size = shared.html.stat().st_size
    print(f"shared page: {size:,} bytes, plotly.min.js beside it")
    assert plotly_bundle_count(page) == 0
    assert page.count(PLOTLY_SCRIPT_TAG) == 1
    assert page.index(PLOTLY_SCRIPT_TAG) < page.index(FIGURE)  # loaded before it is drawn
    assert size < 1_000_000
    assert_no_cdn(page)


@pytest.mark.notebook
def test_the_shared_bundle_is_plotlys_own_beside_the_page(shared):
    bundle = shared.html.parent / PLOTLY_BUNDLE_FILE
    assert bundle.read_bytes() == get_plotlyjs().encode("utf-8")
    # the executed notebook keeps its embedded copy; the folder holds one more, not three
    assert sorted(p.name for p in shared.html.parent.iterdir()) == [
        "executed",
        "figure.html",
        PLOTLY_BUNDLE_FILE,
    ]


@pytest.mark.notebook
def test_a_second_page_in_the_folder_does_not_write_the_bundle_again(shared, tmp_path):
    bundle = shared.html.parent / PLOTLY_BUNDLE_FILE
    before = bundle.stat()
    export_html(shared.executed, shared.html.parent / "again.html", title="again")
    try:
        after = bundle.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    finally:
        (shared.html.parent / "again.html").unlink()


@pytest.mark.notebook
def test_a_single_file_page_embeds_the_bundle_exactly_once(single):
    page = single.read_text(encoding="utf-8")
    print(f"single-file page: {single.stat().st_size:,} bytes")
    assert plotly_bundle_count(page) == 1
    assert get_plotlyjs() in page
    assert PLOTLY_BUNDLE_FILE not in page
    assert not (single.parent / PLOTLY_BUNDLE_FILE).exists()
    assert_no_cdn(page)


def test_a_notebook_that_embeds_the_bundle_twice_gives_a_page_with_it_once(tmp_path):
    bundle = f"<script>{get_plotlyjs()}</script>"
    nb = _executed(tmp_path / "twice.ipynb", bundle, "<p>between</p>", bundle)
    shared = export_html(nb, tmp_path / "shared" / "twice.html", title="t").read_text()
    single = export_html(
        nb, tmp_path / "single" / "twice.html", title="t", self_contained=True
    ).read_text()
    assert (plotly_bundle_count(shared), shared.count(PLOTLY_SCRIPT_TAG)) == (0, 1)
    assert (plotly_bundle_count(single), single.count(PLOTLY_SCRIPT_TAG)) == (1, 0)
    assert "<p>between</p>" in shared and "<p>between</p>" in single


def test_a_page_without_figures_needs_no_bundle(tmp_path):
    nb = _executed(tmp_path / "plain.ipynb", "<p>a table, no figure</p>")
    page = export_html(nb, tmp_path / "reports" / "plain.html", title="plain").read_text()
    assert PLOTLY_BUNDLE_FILE not in page
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["plain.html"]


def test_a_bundle_of_another_plotly_is_refused_when_shared(tmp_path):
    other = "<script>/**\n* plotly.js v0.0.1\n*/\nwindow.Plotly = {};</script>"
    nb = _executed(tmp_path / "old.ipynb", other)
    with pytest.raises(OncorweError, match=r"old.ipynb embeds plotly.js 0.0.1, not this"):
        export_html(nb, tmp_path / "reports" / "old.html", title="old")
    assert not (tmp_path / "reports").exists()
    page = export_html(nb, tmp_path / "mail" / "old.html", title="old", self_contained=True)
    assert plotly_bundle_count(page.read_text()) == 1  # a single file carries its own


def test_the_stage_shares_the_bundle_unless_asked_for_single_files():
    assert parser().parse_args([]).single_file is False
    assert parser().parse_args(["--single-file", "00_world"]).single_file is True


@pytest.mark.notebook
def test_the_page_carries_a_print_stylesheet_that_keeps_wide_tables(shared):
    page = shared.html.read_text(encoding="utf-8")
    style = page[page.index("@media print") :]
    assert "table-layout: auto" in style and "width: 100%" in style
    assert "break-inside: avoid" in style and "overflow: visible !important" in style
    assert ".modebar" in style  # plotly's toolbar is not printed
    assert "a long column header 13" in page  # the wide table's last column is there


@pytest.mark.notebook
@needs_chromium
def test_chromium_draws_the_shared_page_offline_from_the_file_beside_it(shared, tmp_path):
    dom = browser.dom_after_scripts(shared.html)  # network off (browser.FLAGS)
    chunks = dom.split('class="plotly-graph-div')[1:]  # plotly adds classes once drawn
    assert chunks and all('<svg class="main-svg"' in c for c in chunks)
    alone = tmp_path / "figure.html"  # the page without plotly.min.js beside it
    shutil.copy(shared.html, alone)
    assert '<svg class="main-svg"' not in browser.dom_after_scripts(alone)
