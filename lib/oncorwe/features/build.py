"""The feature stage: one analysis row per treated line of therapy, at its index date.

DuckDB SQL over the OMOP tables. The index date is the line's start. Covariates use only
records dated strictly before it: biomarker results (latest before the index date, else
"not tested"), labs (latest within ``lookback_days`` before it), comorbidities recorded
before it, prior lines. Outcomes use only records after it: best response linked to the
line, grade >= 3 toxicity within ``toxicity_window_days`` (known when follow-up covers
the window or the line ended in it), progression-free survival
(progression of this line, the next line's start, or death; censored at the end of
observation) and overall survival. Identifiers leave as keyed hashes, dates as months
since the index date and the index year.

The hash key: a source other than the synthetic generator needs a secret of its own
(:func:`stage_pseudonym_key`, from the environment or from a key file outside the project,
readable by its owner only); only the synthetic world falls back to the public
development key. The key reaches DuckDB as a query parameter, never in the SQL text, so
no error message or log line can show it.

The OMOP tables are checked before the query runs (``OMOP_INPUT``: the columns read and
their kinds): a missing table or column, a type that cannot be read without loss, a
missing required value, a key on two rows, a treatment line whose person, hospital,
follow-up or diagnosis is not there, values the analysis schema cannot hold. Every such
problem is listed in one :class:`OncorweError` naming the file and column, what was
expected and what was found. Readings that lose nothing are accepted: column names in
any case, whole-number ids written as floats or text, ISO dates written as text, a
timestamp without time zone (its calendar day), a column with no value, a table written
as a folder of Parquet parts, extra columns (ignored).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from oncorwe.core.errors import OncorweError
from oncorwe.core.io import atomic_path
from oncorwe.core.pseudonym import pseudonym_params, pseudonym_sql
from oncorwe.features.schema import FeatureConfig, FeatureSchema, validate_table

DAYS_PER_MONTH = 30.4375
DEV_KEY = "oncorwe-synthetic-development-key"
# What the feature SQL reads from each OMOP table, column -> kind: "id" and "int" whole
# numbers, "date" a calendar day, "text", "number" a measured value. Names match in any
# case (DuckDB's identifiers do); other columns are ignored.
OMOP_INPUT: dict[str, dict[str, str]] = {
    "person": {
        "person_id": "id",
        "gender_source_value": "text",
        "year_of_birth": "int",
        "race_source_value": "text",
        "care_site_id": "id",
    },
    "care_site": {"care_site_id": "id", "care_site_name": "text"},
    "observation_period": {"person_id": "id", "observation_period_end_date": "date"},
    "condition_occurrence": {
        "person_id": "id",
        "condition_start_date": "date",
        "condition_source_value": "text",
        "condition_status_source_value": "text",
    },
    "measurement": {
        "measurement_id": "id",
        "person_id": "id",
        "measurement_date": "date",
        "measurement_source_value": "text",
        "value_as_number": "number",
        "value_source_value": "text",
    },
    "episode": {
        "episode_id": "id",
        "person_id": "id",
        "episode_source_value": "text",
        "episode_number": "int",
        "episode_start_date": "date",
        "episode_parent_id": "id",
        "episode_object_source_value": "text",
    },
    "observation": {
        "person_id": "id",
        "observation_date": "date",
        "observation_source_value": "text",
        "value_as_string": "text",
        "observation_event_id": "id",
    },
    "death": {"person_id": "id", "death_date": "date"},
}
REQUIRED = {table: list(cols) for table, cols in OMOP_INPUT.items()}
# read and checked when present: the CDM has it, the feature SQL does not need it
OPTIONAL = {"observation_period": {"observation_period_start_date": "date"}}
# columns that must hold a value on every row: the CDM's NOT NULL ones among those read,
# and a hospital's name (the stage runs one hospital at a time)
NOT_NULL = {
    "person": ("person_id",),
    "care_site": ("care_site_id", "care_site_name"),
    "observation_period": ("person_id", "observation_period_end_date"),
    "condition_occurrence": ("person_id", "condition_start_date"),
    "measurement": ("person_id", "measurement_date"),
    "episode": ("episode_id", "person_id", "episode_start_date"),
    "observation": ("person_id", "observation_date"),
    "death": ("person_id", "death_date"),
}
MAX_LINE = 20  # the analysis schema's highest line number
MAX_AGE = 120
_EXPECTED = {
    "id": "whole-number ids",
    "int": "whole numbers",
    "date": "calendar dates (DATE, or a timestamp without time zone)",
    "text": "text",
    "number": "numbers",
}
_INTEGERS = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_NAIVE_TIMESTAMPS = {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}
_ALL_NULL = '"NULL"'  # DuckDB's name for a Parquet column of the null type


MIN_KEY_CHARS = 32  # 16 bytes as hex (secrets.token_hex(16)); the recipe makes 32 bytes
_KEY_FILE_MAX_BYTES = 4096  # a key is one line; a larger file is the wrong file
# umask 077 creates the file as 0600: no moment at which others may read it
KEY_RECIPE = (
    "(umask 077 && mkdir -p ~/.oncorwe && python -c "
    '"import secrets; print(secrets.token_hex(32))" > ~/.oncorwe/pseudonym.key)'
)


def pseudonym_key(env_name: str) -> str:
    """The synthetic world's keyed-hash secret: ``$env_name`` or the development key.

    For worlds drawn by the generator only (tests, benchmarks, truth look-ups); the
    feature stage asks :func:`stage_pseudonym_key`, which refuses any other source
    without a real key.
    """
    return os.environ.get(env_name) or DEV_KEY


def stage_pseudonym_key(source: str, env_name: str, key_file: str | None, *, project: Path) -> str:
    """The feature stage's keyed-hash secret for cohort source ``source``.

    From the environment variable ``env_name`` or from ``key_file`` (``~`` expanded, a
    relative path read from ``project``), which must lie outside ``project`` and the git
    working tree holding it and be readable by its owner only (0600 or stricter). Both
    may be set when they hold the same key. A key is one line of at least
    ``MIN_KEY_CHARS`` characters, not the development key. Without either, the
    synthetic source gets :data:`DEV_KEY` and any other source is refused: an
    :class:`OncorweError` that names the settings and what was found, never the key.

    Examples
    --------
    >>> import os
    >>> os.environ.pop("ONCORWE_EXAMPLE_KEY", None)
    >>> stage_pseudonym_key("synthetic", "ONCORWE_EXAMPLE_KEY", None, project=Path("/p"))
    'oncorwe-synthetic-development-key'
    """
    env_where = f"environment variable {env_name} (params.yaml features.pseudonym_key_env)"
    raw = os.environ.get(env_name)
    env_key = _checked_key(raw, env_where) if raw else None
    file_key = _read_key_file(key_file, project) if key_file else None
    if env_key is not None and file_key is not None and env_key != file_key:
        raise OncorweError(
            f"features: the {env_where} and the key file params.yaml "
            f"features.pseudonym_key_file={key_file} hold different keys; expected one "
            "key (they would give other pseudonyms): unset the variable or remove the "
            "setting"
        )
    key = file_key if file_key is not None else env_key
    if key is not None:
        return key
    if source == "synthetic":
        return DEV_KEY
    raise OncorweError(
        f"features: cohort.source is {source!r}, and a source other than the synthetic "
        "generator needs a pseudonymisation key of its own (person and line ids leave "
        "the stage as keyed hashes; with the public development key anyone could map "
        f"them back); found no {env_where} and no params.yaml "
        "features.pseudonym_key_file. Make a key outside the project with "
        f"`{KEY_RECIPE}`, then set features.pseudonym_key_file: ~/.oncorwe/pseudonym.key "
        f"in params.yaml (or export {env_name} with the key as its value)"
    )


def _checked_key(raw: str, where: str) -> str:
    """``raw`` without surrounding whitespace, or a refusal that names ``where`` and
    what was wrong (the length at most, never the key)."""
    key = raw.strip()
    if not key:
        problem = "an empty key"
    elif key == DEV_KEY:
        problem = "the public development key, which anyone can use to map ids back"
    elif any(c.isspace() or not c.isprintable() for c in key):
        problem = "a key with spaces, line breaks or control characters inside it"
    elif len(key) < MIN_KEY_CHARS:
        problem = f"a key of {len(key)} characters"
    else:
        return key
    raise OncorweError(
        f"features: the {where} holds {problem}; expected one line of at least "
        f"{MIN_KEY_CHARS} characters ({MIN_KEY_CHARS // 2} random bytes as hex). Make "
        f"one with `{KEY_RECIPE}`"
    )


def _project_trees(project: Path) -> list[Path]:
    """``project`` and the git working tree above it, if any (a key file there could
    be committed, pushed to a DVC remote or copied with the project)."""
    root = project.resolve()
    trees = [root]
    for parent in (root, *root.parents):
        if (parent / ".git").exists():
            if parent != root:
                trees.append(parent)
            break
    return trees


def _read_key_file(key_file: str, project: Path) -> str:
    where = f"key file params.yaml features.pseudonym_key_file={key_file}"
    given = Path(key_file).expanduser()
    path = Path(os.path.abspath(given if given.is_absolute() else project / given))
    real = path.resolve()
    for tree in _project_trees(project):
        if path.is_relative_to(tree) or real.is_relative_to(tree):
            raise OncorweError(
                f"features: the {where} lies inside the project's folder {tree}, where "
                "git, DVC or a copy of the project could carry it off; expected a path "
                "outside it, such as ~/.oncorwe/pseudonym.key. Move it there (and make "
                "a new key if this one was ever committed or pushed)"
            )
    if not real.is_file():
        found = "a folder" if real.is_dir() else "nothing"
        shown = "" if str(path) == key_file else f" ({path})"
        raise OncorweError(
            f"features: the {where}{shown} is not a file, found {found} there; "
            f"expected a file holding the key. Make one with `{KEY_RECIPE}`"
        )
    st = real.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise OncorweError(
            f"features: the {where} has permissions {mode:04o}, so its group or others "
            f"may read it; expected 0600 or stricter: run `chmod 600 {path}`"
        )
    if st.st_size > _KEY_FILE_MAX_BYTES:
        raise OncorweError(
            f"features: the {where} holds {st.st_size} bytes; expected one line with the key"
        )
    try:
        text = real.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise OncorweError(
            f"features: the {where} is not text; expected one line with the key"
        ) from None
    return _checked_key(text, where)


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def feature_sql(cfg: FeatureConfig, site: str | None = None) -> str:
    """The SELECT that builds the analysis table (tables registered as views); with
    ``site``, only the lines of that hospital's patients (every other part of the query
    is per person or per line, so the union over sites is the whole table). The hash key
    arrives as the parameters of :func:`~oncorwe.core.pseudonym.pseudonym_params`: the text
    holds no secret."""
    markers = ", ".join(_q(b) for b in cfg.biomarkers) or "NULL"
    labs = ", ".join(_q(lab) for lab in cfg.labs) or "NULL"
    comorb = ", ".join(_q(c) for c in cfg.comorbidities) or "NULL"
    cancers = ", ".join(_q(c) for c in cfg.cancers) or "NULL"
    bm_cols = []
    for b, kind in cfg.biomarkers.items():
        col = "bm_" + b.lower()
        num = f"max(CASE WHEN marker = {_q(b)} THEN value_num END)::DOUBLE"
        if kind == "binary":
            val = (
                f"max(CASE WHEN marker = {_q(b)} THEN CASE WHEN lower(value_str) = 'positive' "
                f"THEN 1 WHEN lower(value_str) = 'negative' THEN 0 ELSE "
                f"CASE WHEN value_num >= 1 THEN 1 WHEN value_num = 0 THEN 0 END END END)::DOUBLE"
            )
            bm_cols.append(f"{val} AS {col}")
        else:
            bm_cols.append(f"{num} AS {col}")
    bm_select = ",\n        ".join(bm_cols) if bm_cols else "NULL AS _none"
    lab_select = (
        ",\n        ".join(
            f"max(CASE WHEN lab = {_q(lab)} THEN value END) AS lab_{lab.lower()}"
            for lab in cfg.labs
        )
        or "NULL AS _none"
    )
    com_select = (
        ",\n        ".join(
            f"max(CASE WHEN condition = {_q(c)} THEN 1 ELSE 0 END)::TINYINT AS comorb_{c.lower()}"
            for c in cfg.comorbidities
        )
        or "NULL AS _none"
    )
    status_cols = []
    for b, kind in cfg.biomarkers.items():
        col = "bm_" + b.lower()
        if kind == "binary":
            status_cols.append(
                f"CASE WHEN b.{col} IS NULL THEN 'not_tested' WHEN b.{col} >= 1 THEN 'positive' "
                f"ELSE 'negative' END AS {col}_status"
            )
        else:
            status_cols.append(
                f"CASE WHEN b.{col} IS NULL THEN 'not_tested' WHEN b.{col} >= 50 THEN '>=50' "
                f"WHEN b.{col} >= 1 THEN '1-49' ELSE '<1' END AS {col}_status"
            )
    outer = ",\n    ".join(
        [f"b.bm_{b.lower()}" for b in cfg.biomarkers]
        + status_cols
        + [f"lb.lab_{lab.lower()}" for lab in cfg.labs]
        + [
            f"coalesce(cm.comorb_{c.lower()}, 0)::TINYINT AS comorb_{c.lower()}"
            for c in cfg.comorbidities
        ]
    )
    soc_cases = []
    for cancer, by_line in cfg.standard_of_care.items():
        for line, drug in sorted(by_line.items(), reverse=True):
            soc_cases.append(
                f"WHEN t.cancer = {_q(cancer)} AND t.line >= {int(line)} THEN {_q(drug)}"
            )
    soc = ("CASE " + " ".join(soc_cases) + " END") if soc_cases else "NULL"
    site_filter = (
        ""
        if site is None
        else f"""
      AND person_id IN (SELECT p.person_id FROM person p
                        JOIN care_site cs ON cs.care_site_id = p.care_site_id
                        WHERE cs.care_site_name = {_q(site)})"""
    )
    return f"""
WITH lines AS (
    SELECT episode_id AS line_id, person_id, episode_number AS line,
           episode_start_date AS index_date, episode_object_source_value AS drug
    FROM episode WHERE episode_source_value = 'treatment line'{site_filter}
),
nexts AS (
    SELECT line_id,
           lead(index_date) OVER (PARTITION BY person_id ORDER BY index_date, line_id) AS next_start,
           lag(drug) OVER (PARTITION BY person_id ORDER BY index_date, line_id) AS prior_drug,
           count(*) OVER (PARTITION BY person_id ORDER BY index_date, line_id
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS n_prior_lines
    FROM lines
),
prior_same AS (
    SELECT l.line_id, max(CASE WHEN p.drug = l.drug THEN 1 ELSE 0 END) AS prior_same_drug
    FROM lines l JOIN lines p ON p.person_id = l.person_id AND p.index_date < l.index_date
    GROUP BY l.line_id
),
dx AS (
    SELECT l.line_id,
           arg_max(c.condition_source_value, c.condition_start_date) AS cancer,
           arg_max(c.condition_status_source_value, c.condition_start_date) AS stage_raw,
           max(c.condition_start_date) AS dx_date
    FROM lines l JOIN condition_occurrence c
      ON c.person_id = l.person_id AND c.condition_start_date < l.index_date
    WHERE c.condition_source_value IN ({cancers})
    GROUP BY l.line_id
),
bm_ranked AS (
    SELECT l.line_id, m.measurement_source_value AS marker, m.value_as_number AS value_num,
           m.value_source_value AS value_str,
           row_number() OVER (PARTITION BY l.line_id, m.measurement_source_value
                              ORDER BY m.measurement_date DESC, m.measurement_id DESC) AS rk
    FROM lines l JOIN measurement m
      ON m.person_id = l.person_id AND m.measurement_date < l.index_date
    WHERE m.measurement_source_value IN ({markers})
),
bm AS (
    SELECT line_id,
        {bm_select}
    FROM bm_ranked WHERE rk = 1 GROUP BY line_id
),
lab_ranked AS (
    SELECT l.line_id, m.measurement_source_value AS lab, m.value_as_number AS value,
           row_number() OVER (PARTITION BY l.line_id, m.measurement_source_value
                              ORDER BY m.measurement_date DESC, m.measurement_id DESC) AS rk
    FROM lines l JOIN measurement m
      ON m.person_id = l.person_id AND m.measurement_date < l.index_date
     AND m.measurement_date >= l.index_date - INTERVAL {int(cfg.lookback_days)} DAY
    WHERE m.measurement_source_value IN ({labs}) AND m.value_as_number IS NOT NULL
),
lab AS (
    SELECT line_id,
        {lab_select}
    FROM lab_ranked WHERE rk = 1 GROUP BY line_id
),
com AS (
    SELECT l.line_id, c.condition_source_value AS condition
    FROM lines l JOIN condition_occurrence c
      ON c.person_id = l.person_id AND c.condition_start_date < l.index_date
    WHERE c.condition_source_value IN ({comorb})
),
comp AS (
    SELECT line_id,
        {com_select}
    FROM com GROUP BY line_id
),
prog AS (
    SELECT episode_parent_id AS line_id, min(episode_start_date) AS prog_date
    FROM episode WHERE episode_source_value = 'disease progression'
    GROUP BY episode_parent_id
),
resp AS (
    SELECT observation_event_id AS line_id,
           max(CASE WHEN value_as_string IN ('CR/PR', 'CR', 'PR') THEN 1 ELSE 0 END) AS response
    FROM observation WHERE observation_source_value = 'best overall response'
    GROUP BY observation_event_id
),
tox AS (
    SELECT l.line_id, count(*) AS n_ae
    FROM lines l JOIN observation o
      ON o.observation_event_id = l.line_id
     AND o.observation_date > l.index_date
     AND o.observation_date <= l.index_date + INTERVAL {int(cfg.toxicity_window_days)} DAY
    WHERE o.observation_source_value = 'grade 3+ adverse event'
    GROUP BY l.line_id
),
fu AS (
    SELECT person_id, max(observation_period_end_date) AS fu_end
    FROM observation_period GROUP BY person_id
),
dth AS (SELECT person_id, min(death_date) AS death_date FROM death GROUP BY person_id),
base AS (
    SELECT l.*, n.next_start, coalesce(n.prior_drug, 'none') AS prior_drug, n.n_prior_lines,
           coalesce(ps.prior_same_drug, 0) AS prior_same_drug,
           dx.cancer, dx.stage_raw, dx.dx_date,
           p.gender_source_value AS sex, p.race_source_value AS population,
           p.year_of_birth, cs.care_site_name AS site,
           fu.fu_end, dth.death_date, prog.prog_date, resp.response, tox.n_ae
    FROM lines l
    JOIN nexts n USING (line_id)
    LEFT JOIN prior_same ps USING (line_id)
    LEFT JOIN dx USING (line_id)
    JOIN person p ON p.person_id = l.person_id
    LEFT JOIN care_site cs ON cs.care_site_id = p.care_site_id
    LEFT JOIN fu ON fu.person_id = l.person_id
    LEFT JOIN dth ON dth.person_id = l.person_id
    LEFT JOIN prog USING (line_id)
    LEFT JOIN resp USING (line_id)
    LEFT JOIN tox USING (line_id)
),
timed AS (
    SELECT *,
        CASE WHEN death_date <= fu_end THEN death_date END AS death_in_fu,
        least(prog_date, next_start, CASE WHEN death_date <= fu_end THEN death_date END)
            AS pfs_date
    FROM base
)
SELECT
    {pseudonym_sql("person", "t.person_id")} AS person_key,
    {pseudonym_sql("line", "t.line_id")} AS line_key,
    t.site,
    t.population,
    t.sex,
    (year(t.index_date) - t.year_of_birth)::SMALLINT AS age,
    year(t.index_date)::SMALLINT AS index_year,
    t.cancer,
    coalesce(nullif(regexp_extract(t.stage_raw, '(IV|III|II|I)$'), ''), 'unknown') AS stage,
    t.line::SMALLINT AS line,
    t.n_prior_lines::SMALLINT AS n_prior_lines,
    t.prior_drug,
    t.prior_same_drug::TINYINT AS prior_same_drug,
    round(datediff('day', t.dx_date, t.index_date) / {DAYS_PER_MONTH}, 2) AS months_since_diagnosis,
    {outer},
    t.drug AS treatment,
    {soc}::VARCHAR AS standard_of_care,
    t.response::TINYINT AS response,
    -- ascertained when follow-up covers the window or the line ended (PFS event) in it;
    -- counting a recorded event among the not-ascertained would bias the rate upwards
    CASE WHEN datediff('day', t.index_date, t.fu_end) >= {int(cfg.toxicity_window_days)}
           OR (t.pfs_date IS NOT NULL AND t.pfs_date <= t.fu_end)
         THEN (coalesce(t.n_ae, 0) > 0)::INTEGER
    END::TINYINT AS toxicity,
    CASE WHEN t.pfs_date IS NOT NULL AND t.pfs_date <= t.fu_end THEN 1 ELSE 0 END::TINYINT
        AS pfs_event,
    datediff('day', t.index_date,
        CASE WHEN t.pfs_date IS NOT NULL AND t.pfs_date <= t.fu_end THEN t.pfs_date ELSE t.fu_end END
    ) / {DAYS_PER_MONTH} AS pfs_months,
    CASE WHEN t.death_date IS NOT NULL THEN 1 ELSE 0 END::TINYINT AS os_event,
    datediff('day', t.index_date, coalesce(t.death_date, t.fu_end)) / {DAYS_PER_MONTH}
        AS os_months
FROM timed t
LEFT JOIN bm b USING (line_id)
LEFT JOIN lab lb USING (line_id)
LEFT JOIN comp cm USING (line_id)
-- a line needs follow-up after its index date (a line started on the data cut has none)
WHERE t.fu_end > t.index_date AND coalesce(t.death_date, t.fu_end) > t.index_date
ORDER BY t.site, person_key, t.line, line_key
"""


def _found(dtype: str) -> str:
    """A DuckDB column type as a reader of the extract would name it."""
    if dtype in _INTEGERS:
        kind = "integers"
    elif dtype in ("FLOAT", "DOUBLE"):
        kind = "floating-point numbers"
    elif dtype.startswith("DECIMAL"):
        kind = "decimals"
    elif dtype == "VARCHAR":
        kind = "text"
    elif dtype == "DATE":
        kind = "dates"
    elif dtype == "TIMESTAMP WITH TIME ZONE":
        kind = "timestamps with a time zone"
    elif dtype in _NAIVE_TIMESTAMPS:
        kind = "timestamps"
    elif dtype == "BOOLEAN":
        kind = "true/false values"
    else:
        kind = "values"
    return f"{kind} ({dtype})"


def _plan(kind: str, dtype: str, src: str) -> tuple[str, str | None] | None:
    """How a column of ``dtype`` is read as ``kind``: (SQL expression, predicate of the
    values it cannot read, or None), or None when no value of the type can be read.

    Only readings that lose nothing: whole numbers written as floats (what pandas writes
    for an integer column with a missing value) or as text, ISO dates written as text, a
    timestamp without time zone (its calendar day), a column with no value at all. A
    timestamp with a time zone is refused: its calendar day depends on the zone.
    """
    if dtype == _ALL_NULL:
        sql_type = {"id": "BIGINT", "int": "BIGINT", "date": "DATE", "text": "VARCHAR"}
        return f"CAST(NULL AS {sql_type.get(kind, 'DOUBLE')})", None
    numeric = dtype in _INTEGERS or dtype in ("FLOAT", "DOUBLE") or dtype.startswith("DECIMAL")
    if kind in ("id", "int"):
        if dtype in _INTEGERS:
            return src, None
        if dtype in ("FLOAT", "DOUBLE"):
            return (
                f"CAST({src} AS BIGINT)",
                f"NOT isfinite({src}) OR {src} <> round({src}) OR abs({src}) >= 9.0e18",
            )
        if dtype.startswith("DECIMAL"):
            return f"CAST({src} AS HUGEINT)", f"{src} <> round({src})"
        if dtype == "VARCHAR":
            return (
                f"CAST(trim({src}) AS BIGINT)",
                f"NOT regexp_full_match(trim({src}), '-?[0-9]{{1,18}}')",
            )
        return None
    if kind == "date":
        if dtype == "DATE":
            return src, None
        if dtype in _NAIVE_TIMESTAMPS:
            return f"CAST({src} AS DATE)", None
        if dtype == "VARCHAR":
            return (
                f"CAST({src} AS DATE)",
                f"NOT regexp_full_match({src}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') "
                f"OR TRY_CAST({src} AS DATE) IS NULL",
            )
        return None
    if kind == "text":
        return (src, None) if dtype == "VARCHAR" else None
    return (f"CAST({src} AS DOUBLE)", None) if numeric else None


def _parquet_source(path: Path) -> str:
    """``read_parquet`` of a file, or of the parts of a folder (as Spark and Hive write a
    table: ``person.parquet/part-00000.parquet``, ``_SUCCESS`` and dot files skipped)."""
    if not path.is_dir():
        return f"read_parquet({_q(str(path))})"
    parts = sorted(
        p
        for p in path.rglob("*.parquet")
        if p.is_file() and not any(s.startswith(("_", ".")) for s in p.relative_to(path).parts)
    )
    if not parts:
        raise OncorweError(
            f"{path}: expected a Parquet file or a folder of Parquet parts, "
            "found a folder with no *.parquet file"
        )
    files = ", ".join(_q(str(p)) for p in parts)
    return f"read_parquet([{files}], union_by_name = true)"


def _register_table(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> list[str]:
    """Create view ``table`` with the columns the feature SQL reads, in their kinds;
    return the problems (each naming the file and column, what it expected and found)."""
    try:
        source = _parquet_source(path)
        con.execute(f"CREATE VIEW raw_{table} AS SELECT * FROM {source}")
        described = {r[0]: r[1] for r in con.execute(f"DESCRIBE raw_{table}").fetchall()}
    except OncorweError as err:
        return [str(err)]
    except duckdb.Error as err:
        reason = str(err).strip().splitlines()[0]
        return [f"{path}: expected a Parquet file, found one that cannot be read ({reason})"]
    by_name: dict[str, list[str]] = {}
    for name in described:
        by_name.setdefault(name.lower(), []).append(name)
    problems = [
        f"{path}: column {col!r} is missing (expected columns {REQUIRED[table]}, "
        f"found {list(described)})"
        for col in OMOP_INPUT[table]
        if col not in by_name
    ]
    select: list[str] = []
    # (column, what it expects, what a bad row is, its column, predicate of a bad row)
    checks: list[tuple[str, str, str, str, str]] = []
    for col, kind in {**OMOP_INPUT[table], **OPTIONAL.get(table, {})}.items():
        names = by_name.get(col, [])
        if len(names) > 1:
            problems.append(
                f"{path} column {col!r}: expected one column of that name, "
                f"found {names} (names differing only in case)"
            )
            continue
        if not names:
            continue
        name = names[0]
        src = '"' + name.replace('"', '""') + '"'
        plan = _plan(kind, described[name], src)
        if plan is None:
            problems.append(
                f"{path} column {col!r}: expected {_EXPECTED[kind]}, "
                f"found {_found(described[name])}"
            )
            continue
        expr, bad = plan
        select.append(f"{expr} AS {col}")
        if bad is not None:
            expected = f"{_EXPECTED[kind]} (read from its {described[name]} column)"
            checks.append(
                (col, expected, "values that are not", src, f"{src} IS NOT NULL AND ({bad})")
            )
        if col in NOT_NULL.get(table, ()):
            expected = "a value on every row (the OMOP CDM requires one)"
            checks.append((col, expected, "rows without one", src, f"{src} IS NULL"))
    if problems:
        return problems
    if checks:
        aggregates = ", ".join(
            f"count(*) FILTER (WHERE {bad}), min(CAST({src} AS VARCHAR)) FILTER (WHERE {bad})"
            for *_, src, bad in checks
        )
        try:
            row = con.execute(f"SELECT count(*), {aggregates} FROM raw_{table}").fetchall()[0]
        except duckdb.Error as err:
            reason = str(err).strip().splitlines()[0]
            return [f"{path}: expected a Parquet file, found one that cannot be read ({reason})"]
        total = row[0]
        for i, (col, expected, rows, *_) in enumerate(checks):
            n, example = row[1 + 2 * i], row[2 + 2 * i]
            if n:
                shown = "" if example is None else f" (e.g. {example!r})"
                problems.append(
                    f"{path} column {col!r}: expected {expected}, found {n} of {total} "
                    f"{rows}{shown}"
                )
    if not problems:
        con.execute(f"CREATE VIEW {table} AS SELECT {', '.join(select)} FROM raw_{table}")
    return problems


def _refuse(omop_dir: Path, problems: list[str]) -> None:
    if problems:
        raise OncorweError(
            f"OMOP input {omop_dir} does not fit the feature stage:\n  " + "\n  ".join(problems)
        )


def _register(con: duckdb.DuckDBPyConnection, omop_dir: Path) -> dict[str, Path]:
    """Register every table the feature SQL reads as a view of its columns in their kinds,
    or raise one :class:`OncorweError` listing every table and column that does not fit."""
    problems: list[str] = []
    paths = {}
    for table in OMOP_INPUT:
        path = paths[table] = omop_dir / f"{table}.parquet"
        if not path.exists():
            problems.append(
                f"{path} is missing: expected the OMOP table {table!r} as a Parquet file "
                "or a folder of Parquet parts, found no such file"
            )
            continue
        problems += _register_table(con, table, path)
    _refuse(omop_dir, problems)
    return paths


def _check_records(
    con: duckdb.DuckDBPyConnection, omop_dir: Path, paths: dict[str, Path], cfg: FeatureConfig
) -> None:
    """Refuse, naming file and column, the records the feature SQL would count twice,
    drop in silence, or turn into an analysis row that fails its schema."""
    problems: list[str] = []

    def first(sql: str) -> tuple:
        return con.execute(sql).fetchall()[0]

    for table, key, what in (
        ("person", "person_id", "person"),
        ("care_site", "care_site_id", "hospital"),
        ("episode", "episode_id", "episode"),
    ):
        n, example, times = first(
            f"SELECT count(*), min(k), arg_min(n, k) FROM (SELECT {key} AS k, count(*) AS n "
            f"FROM {table} GROUP BY 1 HAVING count(*) > 1)"
        )
        if n:
            problems.append(
                f"{paths[table]} column {key!r}: expected one row per {what}, found {n} "
                f"{key} values on more than one row (e.g. {example} on {times} rows)"
            )
    con.execute(
        "CREATE TEMP VIEW _lines AS SELECT * FROM episode "
        "WHERE episode_source_value = 'treatment line'"
    )
    con.execute("CREATE TEMP VIEW _line_persons AS SELECT DISTINCT person_id FROM _lines")
    if not first("SELECT count(*) FROM _lines")[0]:
        problems.append(
            f"{paths['episode']} column 'episode_source_value': expected treatment lines "
            "(episode_source_value 'treatment line'), found none"
        )
        _refuse(omop_dir, problems)
    ep, person, op = paths["episode"], paths["person"], paths["observation_period"]
    per_line = [
        (
            "NOT EXISTS (SELECT 1 FROM person p WHERE p.person_id = l.person_id)",
            f"{ep} column 'person_id': expected every treatment line's person in "
            f"{person.name}, found {{n}} lines of persons it does not list",
        ),
        (
            f"l.episode_number IS NULL OR l.episode_number NOT BETWEEN 1 AND {MAX_LINE}",
            f"{ep} column 'episode_number': expected a line number from 1 to {MAX_LINE} "
            "for every treatment line, found {n} lines without one or outside the range",
        ),
        (
            "l.episode_object_source_value IS NULL",
            f"{ep} column 'episode_object_source_value': expected the drug of every "
            "treatment line, found {n} lines without one",
        ),
        (
            "EXISTS (SELECT 1 FROM _lines o WHERE o.person_id = l.person_id "
            "AND o.episode_start_date = l.episode_start_date AND o.episode_id <> l.episode_id)",
            f"{ep} column 'episode_start_date': expected the treatment lines of a person "
            "to start on different days, found {n} lines that share their start with "
            "another line (one of them would end on the day it starts)",
        ),
        (
            "EXISTS (SELECT 1 FROM episode e WHERE e.episode_parent_id = l.episode_id "
            "AND e.episode_source_value = 'disease progression' "
            "AND e.episode_start_date <= l.episode_start_date)",
            f"{ep} column 'episode_start_date': expected each disease progression to "
            "start after its treatment line (episode_parent_id), found {n} lines with a "
            "progression on or before their start",
        ),
        (
            "EXISTS (SELECT 1 FROM episode e WHERE e.episode_parent_id = l.episode_id "
            "AND e.episode_source_value = 'disease progression' "
            "AND e.person_id IS DISTINCT FROM l.person_id)",
            f"{ep} column 'person_id': expected each disease progression to belong to the "
            "person of its treatment line (episode_parent_id), found {n} lines with a "
            "progression recorded for another person",
        ),
        (
            "NOT EXISTS (SELECT 1 FROM condition_occurrence c WHERE c.person_id = l.person_id "
            "AND c.condition_start_date < l.episode_start_date "
            f"AND c.condition_source_value IN ({', '.join(_q(c) for c in cfg.cancers) or 'NULL'}))",
            f"{paths['condition_occurrence']} column 'condition_source_value': expected a "
            f"diagnosis of one of features.cancers {list(cfg.cancers)} dated before every "
            "treatment line, found {n} lines without one",
        ),
    ]
    per_person = [
        (
            "p.care_site_id IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM care_site cs WHERE cs.care_site_id = p.care_site_id)",
            f"{person} column 'care_site_id': expected a care_site_id listed in "
            f"{paths['care_site'].name} for every person with a treatment line, found {{n}} "
            "persons without one",
        ),
        (
            "p.gender_source_value IS NULL",
            f"{person} column 'gender_source_value': expected a value for every person "
            "with a treatment line, found {n} persons without one",
        ),
        (
            "p.race_source_value IS NULL",
            f"{person} column 'race_source_value': expected a value for every person "
            "with a treatment line, found {n} persons without one",
        ),
        (
            "p.year_of_birth IS NULL OR EXISTS (SELECT 1 FROM _lines l WHERE "
            "l.person_id = p.person_id AND "
            f"year(l.episode_start_date) - p.year_of_birth NOT BETWEEN 0 AND {MAX_AGE})",
            f"{person} column 'year_of_birth': expected an age from 0 to {MAX_AGE} at the "
            "start of every treatment line, found {n} persons outside it",
        ),
        (
            "NOT EXISTS (SELECT 1 FROM observation_period o WHERE o.person_id = p.person_id)",
            f"{op} column 'person_id': expected an observation period for every person "
            "with a treatment line, found {n} persons without one",
        ),
    ]
    for where, message in per_line:
        n, example = first(f"SELECT count(*), min(l.episode_id) FROM _lines l WHERE {where}")
        if n:
            problems.append(message.replace("{n}", str(n)) + f" (e.g. episode_id {example})")
    for where, message in per_person:
        n, example = first(
            "SELECT count(*), min(p.person_id) FROM person p "
            f"WHERE p.person_id IN (SELECT person_id FROM _line_persons) AND ({where})"
        )
        if n:
            problems.append(message.replace("{n}", str(n)) + f" (e.g. person_id {example})")
    described = {r[0] for r in con.execute("DESCRIBE observation_period").fetchall()}
    if "observation_period_start_date" in described:
        n, example = first(
            "SELECT count(*), min(person_id) FROM observation_period "
            "WHERE observation_period_end_date < observation_period_start_date"
        )
        if n:
            problems.append(
                f"{op} column 'observation_period_end_date': expected every period to end "
                f"on or after its observation_period_start_date, found {n} that end "
                f"before they start (e.g. person_id {example})"
            )
    # isfinite, not isnan: DuckDB 2.0's isnan misses the NaN that pyarrow writes
    measured = [*cfg.labs, *cfg.biomarkers]
    if measured:
        tps = [b for b, kind in cfg.biomarkers.items() if kind == "tps"]
        n, name, value = first(
            "SELECT count(*), arg_min(measurement_source_value, measurement_id), "
            "arg_min(value_as_number, measurement_id) FROM measurement "
            f"WHERE measurement_source_value IN ({', '.join(_q(m) for m in measured)}) "
            "AND (NOT isfinite(value_as_number) OR value_as_number < 0 "
            f"OR (measurement_source_value IN ({', '.join(_q(b) for b in tps) or 'NULL'}) "
            "AND value_as_number > 100))"
        )
        if n:
            problems.append(
                f"{paths['measurement']} column 'value_as_number': expected a value >= 0 "
                f"(a percentage for {tps}) or none for the labs and biomarkers the stage "
                f"reads, found {n} that are not (e.g. {name} {value!r})"
            )
    _refuse(omop_dir, problems)


def build_features(
    omop_dir: str | Path,
    cfg: FeatureConfig,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    key: str | None = None,
) -> pa.Table:
    """Run the feature SQL over ``omop_dir`` and return the validated Arrow table.

    ``key`` is the hash key (the stage's comes from :func:`stage_pseudonym_key`); without
    it, :func:`pseudonym_key`: for a world drawn by the synthetic generator only.
    """
    if key is None:
        key = pseudonym_key(cfg.pseudonym_key_env)
    con = duckdb.connect()
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            con.execute(f"SET memory_limit = {_q(memory_limit)}")
        con.execute("SET preserve_insertion_order = true")
        omop_dir = Path(omop_dir)
        paths = _register(con, omop_dir)
        _check_records(con, omop_dir, paths, cfg)
        # one hospital at a time: the whole-table join needs about 20 GB at the full
        # profile (4.96M patients); a hospital's share needs a small fraction of it. The
        # sites come in the final ORDER BY's order, so the result is the same table.
        sites = [
            r[0]
            for r in con.sql(
                "SELECT DISTINCT care_site_name FROM care_site ORDER BY care_site_name"
            ).fetchall()
        ]
        if not sites:
            raise OncorweError(
                f"OMOP input {paths['care_site']}: expected at least one hospital "
                "(care_site_name), found none"
            )
        parts = []
        for site in sites:
            part = con.sql(feature_sql(cfg, site), params=pseudonym_params(key)).to_arrow_table()
            parts.append(part.read_all() if hasattr(part, "read_all") else part)
    finally:
        con.close()
    table = pa.concat_tables(parts)
    if not table.num_rows:
        raise OncorweError(
            f"OMOP input {omop_dir}: expected treatment lines with follow-up after their "
            f"start, found none ({paths['observation_period'].name} "
            f"observation_period_end_date and {paths['death'].name} death_date are on or "
            "before the start of every line in "
            f"{paths['episode'].name})"
        )
    schema = FeatureSchema.for_config(cfg)
    validate_table(table, schema, source=str(omop_dir))
    return table


def write_features(table: pa.Table, out_dir: str | Path, cfg: FeatureConfig) -> dict:
    """Write one Parquet file per site (``site=NAME/part-0.parquet``) plus ``roles.json``.

    Each hospital's rows sit in their own file so that a federated site process reads
    only its own partition.
    """
    out_dir = Path(out_dir)
    sites = table.column("site").to_pylist()
    schema = FeatureSchema.for_config(cfg)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        start = 0
        n = table.num_rows
        while start < n:
            name = sites[start]
            stop = start
            while stop < n and sites[stop] == name:
                stop += 1
            part = tmp / f"site={name}"
            part.mkdir()
            pq.write_table(table.slice(start, stop - start), part / "part-0.parquet")
            start = stop
        roles = schema.roles(list(cfg.biomarkers))
        (tmp / "roles.json").write_text(json.dumps(roles, indent=2) + "\n")
    return roles


def feature_metrics(table: pa.Table, cfg: FeatureConfig, min_cell: int) -> dict:
    """Aggregate descriptive metrics (no patient-level values; small cells suppressed)."""
    import pandas as pd

    df = table.select(
        ["person_key", "site", "cancer", "response", "toxicity", "pfs_event"]
        + [f"bm_{b.lower()}_status" for b in cfg.biomarkers]
    ).to_pandas()

    def cell(k: int) -> int | None:
        return int(k) if k >= min_cell else None

    out: dict = {
        "lines": cell(len(df)),
        "patients": cell(df["person_key"].nunique()),
        "sites": int(df["site"].nunique()),
        "response_known_share": round(float(df["response"].notna().mean()), 4),
        "toxicity_known_share": round(float(df["toxicity"].notna().mean()), 4),
        "pfs_event_share": round(float(df["pfs_event"].mean()), 4),
        "tested_share": {},
    }
    for b in cfg.biomarkers:
        col = f"bm_{b.lower()}_status"
        out["tested_share"][b] = round(float((df[col] != "not_tested").mean()), 4)
    out["lines_per_cancer"] = {
        str(k): cell(v) for k, v in pd.Series(df["cancer"]).value_counts().sort_index().items()
    }
    return out
