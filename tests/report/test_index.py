"""The index page opens with the headline, the synthetic banner and provenance."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import nbformat
import pytest

from oncorwe.report import overview as ov
from oncorwe.report.render import ReportEntry, notebook_info, write_index

from . import stage_outputs as so


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def _visible(page: str) -> str:
    p = _Text()
    p.feed(page)
    return re.sub(r"\s+", " ", " ".join(p.parts))


PROVENANCE = ov.provenance(
    commit="0123456789ab",
    profile="small",
    patients=20_000,
    seed=20261129,
    source="synthetic",
    parameters={"confirmation q (Benjamini-Hochberg)": 0.05, "small-cell threshold": 11},
    inputs={"data/hypothesis": "a1b2c3d4e5f6"},
    run_date=dt.date(2026, 11, 29),
)
ENTRY = ReportEntry(
    "02_validation",
    "Track 2",
    "Each hypothesis is tested on the **validation** quarter: emulation; trial size.",
    "2026-11-29",
)


@pytest.fixture
def index_page(tmp_path):
    dirs = so.write(tmp_path / "data")
    found = ov.read_overview(
        dirs["hypothesis"], dirs["validation"], synthetic=True, provenance=PROVENANCE
    )
    return write_index(tmp_path / "reports", [ENTRY], overview=ov.overview_html(found)).read_text()


def test_the_index_opens_with_the_headline(index_page):
    text = _visible(index_page)
    head = text[: text.index("Reports")]
    # 6 confirmed (one a harm, three nested): 3 benefit findings; 1 of 2 validated is a go
    assert "6 confirmed hypotheses, 3 distinct benefit findings, and 1 confirmed harm" in head
    assert "1 of 2 validated hypotheses get a go" in head
    assert (
        "Pembrolizumab in NSCLC, PD-L1 TPS status >=50: PFS +2.4 months [+1.8, +3.0], "
        "q<0.001; 2 overlapping variants (go in validation)"
    ) in head
    assert "Osimertinib in NSCLC, EGFR status positive: response +21.0 points" in head


def test_the_index_shows_a_banner_for_synthetic_data_only(index_page, tmp_path):
    assert "Synthetic data." in _visible(index_page)
    real = ov.overview_html(ov.overview(so.hypotheses(), so.validation(), synthetic=False))
    assert "Synthetic data" not in real and "banner" not in real


def test_the_index_gives_the_provenance_of_the_run(index_page):
    text = _visible(index_page)
    for shown in (
        "0123456789ab",
        "synthetic, profile small (20,000 patients), seed 20261129",
        "2026-11-29",
        "data/hypothesis a1b2c3d4e5f6",
        "confirmation q (Benjamini-Hochberg) = 0.05",
    ):
        assert shown in text


def test_the_index_renders_markdown_and_never_shows_asterisks(index_page):
    assert "<strong>validation</strong>" in index_page
    assert "**" not in _visible(index_page)


def test_a_description_ending_in_a_colon_keeps_the_list_it_introduces(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# Track 2\n\nEach hypothesis is tested\nagain:\n\n1. **Emulation**: weighting.\n"
            "2. Virtual trial.\n\nMore text."
        )
    ]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    title, description = notebook_info(path)
    assert title == "Track 2"
    assert (
        description == "Each hypothesis is tested again: **Emulation**: weighting; Virtual trial."
    )


def test_the_pipeline_notebooks_declare_a_description_with_no_dangling_colon():
    from oncorwe.core.paths import project_root

    for path in sorted((project_root() / "notebooks").glob("*.ipynb")):
        _, description = notebook_info(path)
        assert description and not description.rstrip().endswith(":"), path.name


def test_git_commit_is_none_outside_a_checkout(tmp_path):
    assert ov.git_commit(tmp_path) is None


def test_dvc_input_hashes_read_the_lock_file(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  hypothesis:\n    outs:\n    - path: data/hypothesis\n"
        "      md5: 0123456789abcdef0123.dir\n"
    )
    assert ov.dvc_input_hashes(lock, {"hypothesis": "data/hypothesis"}) == {
        "data/hypothesis": "0123456789ab"
    }
    assert ov.dvc_input_hashes(tmp_path / "none.lock", {"hypothesis": "data/hypothesis"}) == {}
