"""Stage ``cohort`` with an OMOP extract: what it accepts, and what it refuses by name."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from oncorwe.core.errors import OncorweError
from oncorwe.core.paths import catalog
from oncorwe.pipeline import cohort as stage
from oncorwe.pipeline.params import Params


def _params(src) -> Params:
    return Params.model_validate({"cohort": {"source": "omop", "omop_dir": str(src)}})


def test_a_table_written_as_a_folder_of_parts_is_copied(world, tmp_path):
    src = tmp_path / "extract"
    shutil.copytree(world / "omop", src)
    table = pq.read_table(src / "person.parquet")
    (src / "person.parquet").unlink()
    (src / "person.parquet").mkdir()
    pq.write_table(table.slice(0, 100), src / "person.parquet" / "part-0.parquet")
    pq.write_table(table.slice(100), src / "person.parquet" / "part-1.parquet")
    cat = catalog(tmp_path / "project")
    assert stage.run(_params(src), cat) == {"source": "omop"}
    assert pq.read_table(cat.omop / "person.parquet").num_rows == table.num_rows


def test_a_missing_table_is_named(world, tmp_path):
    src = tmp_path / "extract"
    shutil.copytree(world / "omop", src)
    (src / "episode.parquet").unlink()
    with pytest.raises(OncorweError, match=r"missing OMOP tables \['episode.parquet'\]"):
        stage.run(_params(src), catalog(tmp_path / "project"))
    assert not (tmp_path / "project").exists()
