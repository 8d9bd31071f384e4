"""Property-based tests of the OMOP door of the feature stage (the ``hypothesis`` library).

A cancer center's own OMOP extract is the real input of ``features``. Copies of a tiny
synthetic world's OMOP Parquet tables are broken and borderline the ways real extracts
differ from the generator's: a column missing, ids or dates of another type, null or
inverted dates, duplicated or orphan rows, an empty table, extra columns, a table written
as a folder of parts, NaN or negative values. The answer is a valid feature table that
agrees with the unmodified build on every row the change did not touch, or a named
refusal (:class:`OncorweError`, exit 2 for the command) that names the table file and the
column and says what it found and what it expected; never another exception and never a
silently different table.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from oncorwe.cohort.generator import OMOP_TABLES
from oncorwe.core.errors import OncorweError
from oncorwe.core.pseudonym import pseudonym
from oncorwe.features.build import DEV_KEY, REQUIRED, build_features
from oncorwe.features.schema import FeatureSchema, validate_table

from ..test_cli import oncorwe

ID_COLUMNS = [(t, c) for t, cols in REQUIRED.items() for c in cols if c.endswith("_id")]
DATE_COLUMNS = [(t, c) for t, cols in REQUIRED.items() for c in cols if c.endswith("_date")] + [
    ("drug_exposure", "drug_exposure_start_date")
]
NULLABLE = [
    ("measurement", "value_source_value"),
    ("measurement", "value_as_number"),
    ("condition_occurrence", "condition_status_source_value"),
    ("episode", "episode_parent_id"),
    ("observation", "value_as_string"),
    ("observation", "observation_event_id"),
]
WITH_PERSON = [t for t in OMOP_TABLES if t not in ("person", "care_site")]
# (table, column) each kind of change can hit; None: the table as a whole
TARGETS: dict[str, list[tuple[str, str | None]]] = {
    "none": [("person", None)],
    "drop column": [(t, c) for t, cols in REQUIRED.items() for c in cols],
    "ids as text": ID_COLUMNS,
    "ids as floats": ID_COLUMNS,
    "fractional ids": ID_COLUMNS,
    "dates as text": DATE_COLUMNS,
    "dates as timestamps": DATE_COLUMNS,
    "dates with a time zone": DATE_COLUMNS,
    "null dates": DATE_COLUMNS,
    "end before start": [
        ("observation_period", "observation_period_end_date"),
        ("episode", "episode_start_date"),  # a progression dated before its line
        ("episode", "episode_end_date"),
        ("drug_exposure", "drug_exposure_end_date"),
    ],
    "duplicate rows": [
        ("person", "person_id"),
        ("care_site", "care_site_id"),
        ("episode", "episode_id"),
        ("measurement", "measurement_id"),
        ("observation_period", "person_id"),
        ("death", "person_id"),
    ],
    "orphan rows": [(t, "person_id") for t in WITH_PERSON],
    "empty table": [(t, None) for t in OMOP_TABLES],
    "extra columns": [(t, None) for t in OMOP_TABLES],
    "folder of parts": [(t, None) for t in OMOP_TABLES],
    "upper-case names": [(t, None) for t in OMOP_TABLES],
    "truncated file": [(t, None) for t in OMOP_TABLES],
    "NaN values": [("measurement", "value_as_number"), ("person", "year_of_birth")],
    "negative values": [
        ("measurement", "value_as_number"),
        ("person", "year_of_birth"),
        ("episode", "episode_number"),
    ],
    "all null": NULLABLE,
}
# The stage's contract for a table it reads. Refused: what cannot be read without loss or
# guessing (a time zone's calendar day), what the CDM requires and is not there, a key on
# two rows, a line whose follow-up or start is inverted. Accepted, as the clean build:
# what reads without loss. Every other change may go either way, never silently wrong.
MUST_REFUSE = {
    "drop column",
    "fractional ids",
    "truncated file",
    "null dates",
    "end before start",
    "dates with a time zone",
}
MUST_ACCEPT = {
    "none",
    "extra columns",
    "folder of parts",
    "upper-case names",
    "ids as floats",
    "ids as text",
    "dates as timestamps",
    "dates as text",
}
UNIQUE_KEYS = {("person", "person_id"), ("care_site", "care_site_id"), ("episode", "episode_id")}


def _must_refuse(kind: str, name: str, col: str | None) -> bool:
    read = name in REQUIRED and (col is None or col in REQUIRED[name])
    if kind == "duplicate rows":
        return (name, col) in UNIQUE_KEYS
    if kind == "orphan rows":
        return name == "episode"  # a treatment line of nobody
    return kind in MUST_REFUSE and read


def _must_accept(kind: str, name: str, col: str | None) -> bool:
    if kind == "duplicate rows":
        return (name, col) not in UNIQUE_KEYS  # an exact copy of a row adds nothing
    if kind == "orphan rows":
        return name != "episode"  # never joined to a line
    return kind in MUST_ACCEPT


@pytest.fixture(scope="module")
def base(omop, feature_config) -> pd.DataFrame:
    return build_features(omop, feature_config).to_pandas()


def _person_key(pid) -> str:
    return pseudonym(DEV_KEY, "person", int(pid))


@dataclass
class Change:
    """What a mutation did: the persons whose rows may change (None: all of them)."""

    touched: set | None


def _rows(t: pa.Table, picks: list[int]) -> list[int]:
    return sorted({p % t.num_rows for p in picks}) if t.num_rows else []


def _mask(t: pa.Table, rows: list[int]) -> pa.Array:
    m = np.zeros(t.num_rows, dtype=bool)
    m[rows] = True
    return pa.array(m)


def _set(t: pa.Table, col: str, arr) -> pa.Table:
    return t.set_column(t.schema.get_field_index(col), col, arr)


def _persons_of(name: str, t: pa.Table, rows: list[int], person: pa.Table) -> set:
    if name == "care_site":
        sites = set(t.column("care_site_id").take(rows).to_pylist())
        ids = person.column("person_id").to_pylist()
        return {
            p
            for p, s in zip(ids, person.column("care_site_id").to_pylist(), strict=True)
            if s in sites
        }
    return set(t.column("person_id").take(rows).to_pylist())


def _mutate(src: Path, dst: Path, kind: str, name: str, col: str | None, picks) -> Change:
    """Copy ``src`` to ``dst`` with one table changed; return who it touched."""
    shutil.copytree(src, dst)
    path = dst / f"{name}.parquet"
    t = pq.read_table(path)
    person = pq.read_table(src / "person.parquet")
    rows = _rows(t, picks)
    mask = _mask(t, rows)
    touched: set | None = set()
    if kind == "none":
        return Change(set())
    if kind == "drop column":
        t = t.drop_columns([col])
    elif kind == "ids as text":
        t = _set(t, col, t.column(col).cast(pa.string()))
    elif kind == "ids as floats":
        t = _set(t, col, t.column(col).cast(pa.float64()))
    elif kind == "fractional ids":
        ok = [r for r in range(t.num_rows) if t.column(col)[r].is_valid]
        rows = _rows(t.take(ok), picks)
        rows = [ok[r] for r in rows]
        values = t.column(col).cast(pa.float64())
        t = _set(t, col, pc.if_else(_mask(t, rows), pc.add(values, 0.5), values))
        touched = _persons_of(name, t, rows, person)
    elif kind == "dates as text":
        t = _set(t, col, t.column(col).cast(pa.string()))
    elif kind == "dates as timestamps":
        t = _set(t, col, t.column(col).cast(pa.timestamp("us")))
    elif kind == "dates with a time zone":
        stamps = t.column(col).cast(pa.timestamp("us"))
        t = _set(t, col, stamps.cast(pa.timestamp("us", tz="Europe/Berlin")))
    elif kind == "null dates":
        t = _set(t, col, pc.if_else(mask, pa.scalar(None, t.schema.field(col).type), t[col]))
        touched = _persons_of(name, t, rows, person)
    elif kind == "end before start":
        if name == "episode" and col == "episode_start_date":
            # a disease progression dated 10 days before its own line started
            kinds = t.column("episode_source_value").to_pylist()
            prog = [i for i, k in enumerate(kinds) if k == "disease progression"]
            rows = [prog[p % len(prog)] for p in picks]
            starts = dict(
                zip(
                    t.column("episode_id").to_pylist(),
                    t.column("episode_start_date").to_pylist(),
                    strict=True,
                )
            )
            parents = t.column("episode_parent_id").to_pylist()
            values = t.column(col).to_pylist()
            for r in rows:
                values[r] = starts[parents[r]] - dt.timedelta(days=10)
            t = _set(t, col, pa.array(values, pa.date32()))
        else:
            start = col.replace("_end_", "_start_")
            before = pc.subtract(t.column(start), pa.scalar(dt.timedelta(days=3)))
            t = _set(t, col, pc.if_else(mask, before.cast(pa.date32()), t[col]))
        touched = _persons_of(name, t, rows, person)
    elif kind == "duplicate rows":
        t = pa.concat_tables([t, t.take(rows)])
    elif kind == "orphan rows":
        extra = t.take(rows)
        nobody = max(person.column("person_id").to_pylist()) + 1000
        extra = _set(extra, "person_id", pa.array([nobody] * len(rows), t.schema.field(col).type))
        own = f"{name}_id"
        if own in t.column_names:
            top = max(t.column(own).to_pylist())
            ids = pa.array(range(top + 1, top + 1 + len(rows)), t.schema.field(own).type)
            extra = _set(extra, own, ids)
        t = pa.concat_tables([t, extra])
    elif kind == "empty table":
        t = t.slice(0, 0)
        touched = None
    elif kind == "extra columns":
        n = t.num_rows
        t = t.append_column("site_note", pa.array(["from the registry"] * n))
        t = t.append_column("unit_concept_id", pa.array(range(n), pa.int64()))
        t = t.select(list(reversed(t.column_names)))  # and in another order
    elif kind == "folder of parts":
        path.unlink()
        path.mkdir()  # Spark and Hive write a table as a folder named like the file
        step = max(1, -(-t.num_rows // 3))
        for i, start in enumerate(range(0, max(t.num_rows, 1), step)):
            pq.write_table(t.slice(start, step), path / f"part-{i:05d}.parquet")
        (path / "_SUCCESS").write_text("")
        return Change(set())
    elif kind == "upper-case names":
        t = t.rename_columns([c.upper() for c in t.column_names])
    elif kind == "truncated file":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return Change(set())
    elif kind == "NaN values":
        values = t.column(col).cast(pa.float64())
        t = _set(t, col, pc.if_else(mask, pa.scalar(float("nan")), values))
        touched = _persons_of(name, t, rows, person)
    elif kind == "negative values":
        values = t.column(col)
        t = _set(t, col, pc.if_else(mask, pc.negate(values), values))
        touched = _persons_of(name, t, rows, person)
    elif kind == "all null":
        t = _set(t, col, pa.nulls(t.num_rows))
        touched = None
    else:  # pragma: no cover
        raise AssertionError(kind)
    pq.write_table(t, path)
    return Change(touched)


def _agrees(out: pd.DataFrame, base: pd.DataFrame, touched: set | None) -> None:
    """The rows of every person the change did not touch are those of the clean build."""
    assert out["line_key"].is_unique  # no line (and so no person) counted twice
    if touched is None:
        return
    keys = {_person_key(p) for p in touched if p is not None}
    a = out[~out["person_key"].isin(keys)].sort_values("line_key").reset_index(drop=True)
    b = base[~base["person_key"].isin(keys)].sort_values("line_key").reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def _assert_named(err: Exception, name: str, col: str | None) -> None:
    msg = str(err)
    assert f"{name}.parquet" in msg, msg  # the table file
    if col is not None:
        assert col in msg, msg  # the column
    assert "expected" in msg and "found" in msg, msg  # what it wanted and what it saw


@pytest.mark.parametrize("kind", sorted(TARGETS))  # every kind in every run
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # no explain phase: on a failure it reran builds for minutes to point at lines
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
@given(data=st.data(), picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=4))
def test_an_omop_extract_builds_valid_features_or_is_refused_by_name(
    omop, base, feature_config, kind, data, picks
):
    name, col = data.draw(st.sampled_from(TARGETS[kind]), label="table, column")
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "omop"
        change = _mutate(omop, dst, kind, name, col, picks)
        try:
            table = build_features(dst, feature_config)
        except OncorweError as err:
            event(f"{kind}: named error")
            assert not _must_accept(kind, name, col), err
            _assert_named(err, name, col)
            return
    event(f"{kind}: valid table")
    assert not _must_refuse(kind, name, col), f"{kind} in {name}.{col} was accepted"
    validate_table(table, FeatureSchema.for_config(feature_config), source="test")
    _agrees(table.to_pandas(), base, change.touched)


CLI_CASES = [
    ("none", "person", None),
    ("drop column", "person", "year_of_birth"),
    ("ids as text", "episode", "person_id"),
    ("dates with a time zone", "death", "death_date"),
    ("empty table", "episode", None),
    ("folder of parts", "measurement", None),
]


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
@given(case=st.sampled_from(CLI_CASES), picks=st.lists(st.integers(0, 99), min_size=1))
@example(case=CLI_CASES[0], picks=[0])
@example(case=CLI_CASES[1], picks=[0])
def test_the_features_stage_exits_0_or_2_as_the_library_answers(
    omop, feature_config, tmp_path_factory, case, picks
):
    kind, name, col = case
    root = tmp_path_factory.mktemp("project")
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "params.yaml").write_text("{}\n")
    (root / "data" / "cohort").mkdir(parents=True)
    _mutate(omop, root / "data" / "cohort" / "omop", kind, name, col, picks)
    try:
        expected = build_features(root / "data" / "cohort" / "omop", feature_config).to_pandas()
    except OncorweError:
        expected = None
    res = oncorwe("features", "--params", root / "params.yaml", env={"ONCORWE_ROOT": str(root)})
    assert "Traceback" not in res.stderr, res.stderr
    event({0: "valid table", 2: "named error"}.get(res.returncode, "other exit"))
    analysis = root / "data" / "features" / "analysis"
    if expected is None:
        assert res.returncode == 2, res.stderr
        assert f"{name}.parquet" in res.stderr, res.stderr
        assert not analysis.exists()
        return
    assert res.returncode == 0, res.stderr
    parts = sorted(analysis.glob("site=*/part-0.parquet"))
    written = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)


# Hand-written regressions: each case once gave a raw DuckDB exception, a wrong table or a
# message that named no input file and column (the message before the fix in a comment).
REFUSED = [
    # ConversionException: Type DOUBLE with value nan can't be cast ... INT16
    ("NaN values", "person", "year_of_birth", [0, 7]),
    # InvalidInputException: No magic bytes found at end of file
    ("truncated file", "episode", None, []),
    # every line of the person twice (line_key repeated), no error
    ("duplicate rows", "person", "person_id", [0, 7]),
    ("duplicate rows", "care_site", "care_site_id", [0]),
    # "analysis table ... fails its schema: column 'pfs_months': 4 values not > 0"
    ("duplicate rows", "episode", "episode_id", [0, 7]),
    # the lines vanished in silence (506 and 505 of 508 rows)
    ("null dates", "episode", "episode_start_date", [0, 7]),
    ("null dates", "observation_period", "observation_period_end_date", [0, 7]),
    ("end before start", "observation_period", "observation_period_end_date", [0, 7]),
    ("fractional ids", "observation_period", "person_id", [0, 7]),
    # a progression no longer linked to its line: PFS of the line changed in silence
    ("fractional ids", "episode", "episode_parent_id", [0, 7]),
    # "... fails its schema: column 'pfs_months': 2 values not > 0"
    ("end before start", "episode", "episode_start_date", [0, 7]),
    # accepted, and a different table under TZ=America/New_York than under UTC
    ("dates with a time zone", "episode", "episode_start_date", []),
    # a valid table of 0 rows
    ("empty table", "observation_period", None, []),
    ("empty table", "episode", None, []),
    # "... fails its schema: column 'cancer': 508 missing values, none allowed"
    ("empty table", "condition_occurrence", None, []),
    # "... fails its schema: column 'lab_ecog': 2 values not >= 0"
    ("negative values", "measurement", "value_as_number", [1, 2]),
    # "... fails its schema: column 'age': 3 values above 120"
    ("negative values", "person", "year_of_birth", [0, 7]),
    # "... fails its schema: column 'line': 2 values not >= 1"
    ("negative values", "episode", "episode_number", [0, 7]),
    # a NaN ECOG became the line's lab value
    ("NaN values", "measurement", "value_as_number", [1, 2]),
    # "OMOP input DIR: some treatment lines belong to persons without a known hospital"
    ("orphan rows", "episode", "person_id", [0]),
    # a disease progression of a person not in person.parquet, parent a line of another
    # person: accepted and ignored (found by the suite in a full run)
    ("orphan rows", "episode", "person_id", [300]),
    ("empty table", "person", None, []),
    # "OMOP input .../person.parquet: missing columns ['year_of_birth']" (nothing found)
    ("drop column", "person", "year_of_birth", []),
]


@pytest.mark.parametrize(("kind", "name", "col", "picks"), REFUSED)
def test_a_broken_extract_is_refused_naming_file_and_column(
    omop, feature_config, tmp_path, kind, name, col, picks
):
    _mutate(omop, tmp_path / "omop", kind, name, col, picks or [0])
    with pytest.raises(OncorweError) as err:
        build_features(tmp_path / "omop", feature_config)
    _assert_named(err.value, name, col)


ACCEPTED = [
    # BinderException: Cannot compare values of type BIGINT and VARCHAR in IN/ANY/ALL
    ("ids as text", "person", "person_id"),
    ("ids as text", "episode", "person_id"),
    # person_key and line_key hashed from '1.0', not '1': other pseudonyms, in silence
    ("ids as floats", "episode", "person_id"),
    ("ids as floats", "episode", "episode_id"),
    # BinderException: Cannot compare values of type VARCHAR and type DATE
    ("dates as text", "measurement", "measurement_date"),
    ("dates as text", "episode", "episode_start_date"),
    # "missing columns ['episode_id', 'person_id', ...]" though DuckDB reads any case
    ("upper-case names", "episode", None),
]


@pytest.mark.parametrize(("kind", "name", "col"), ACCEPTED)
def test_a_lossless_variant_builds_the_same_table(
    omop, base, feature_config, tmp_path, kind, name, col
):
    _mutate(omop, tmp_path / "omop", kind, name, col, [0])
    out = build_features(tmp_path / "omop", feature_config).to_pandas()
    pd.testing.assert_frame_equal(out, base, check_dtype=False)


def test_a_value_column_without_any_value_reads_as_not_measured(omop, feature_config, tmp_path):
    """Was "fails its schema: column 'lab_ecog': expected float, got null" (a Parquet
    column of the null type)."""
    _mutate(omop, tmp_path / "omop", "all null", "measurement", "value_as_number", [0])
    out = build_features(tmp_path / "omop", feature_config).to_pandas()
    assert out[[f"lab_{lab.lower()}" for lab in feature_config.labs]].isna().all().all()


def test_ids_as_floats_with_a_fraction_name_an_example(omop, feature_config, tmp_path):
    _mutate(omop, tmp_path / "omop", "fractional ids", "episode", "episode_id", [0])
    with pytest.raises(OncorweError, match=r"episode\.parquet column 'episode_id'.*'11\.5'"):
        build_features(tmp_path / "omop", feature_config)


def test_every_problem_is_listed_in_one_message(omop, feature_config, tmp_path):
    dst = tmp_path / "omop"
    _mutate(omop, dst, "drop column", "person", "year_of_birth", [0])
    (dst / "death.parquet").unlink()
    with pytest.raises(OncorweError) as err:
        build_features(dst, feature_config)
    assert "'year_of_birth' is missing" in str(err.value)
    assert "death.parquet is missing" in str(err.value)


def test_the_schema_refuses_a_line_on_two_rows(base, feature_config):
    table = pa.Table.from_pandas(pd.concat([base, base.head(2)]), preserve_index=False)
    with pytest.raises(OncorweError, match="line_key.*2 values repeat"):
        validate_table(table, FeatureSchema.for_config(feature_config), source="test")


def test_two_lines_of_one_person_on_one_day_are_refused(omop, feature_config, tmp_path):
    """The first would end on the day it starts (PFS 0): was "fails its schema: column
    'pfs_months'" once a copy of a line came with its own episode_id."""
    _mutate(omop, tmp_path / "omop", "orphan rows", "episode", "person_id", [0])
    ep = pq.read_table(tmp_path / "omop" / "episode.parquet")
    person = pq.read_table(omop / "episode.parquet").column("person_id")[0]
    last = ep.num_rows - 1
    ep = _set(ep, "person_id", pc.if_else(_mask(ep, [last]), person, ep["person_id"]))
    pq.write_table(ep, tmp_path / "omop" / "episode.parquet")
    with pytest.raises(OncorweError, match=r"episode\.parquet column 'episode_start_date'"):
        build_features(tmp_path / "omop", feature_config)


def test_a_folder_without_parquet_parts_is_refused(omop, feature_config, tmp_path):
    dst = tmp_path / "omop"
    _mutate(omop, dst, "none", "death", None, [0])
    (dst / "death.parquet").unlink()
    (dst / "death.parquet").mkdir()
    (dst / "death.parquet" / "_SUCCESS").write_text("")
    with pytest.raises(OncorweError, match=r"death\.parquet: expected .*found a folder"):
        build_features(dst, feature_config)
