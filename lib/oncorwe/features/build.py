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
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from oncorwe.core.errors import OncorweError
from oncorwe.core.io import atomic_path, write_json
from oncorwe.features.schema import FeatureConfig, FeatureSchema, validate_table

DAYS_PER_MONTH = 30.4375
DEV_KEY = "oncorwe-synthetic-development-key"
REQUIRED = {
    "person": [
        "person_id",
        "gender_source_value",
        "year_of_birth",
        "race_source_value",
        "care_site_id",
    ],
    "care_site": ["care_site_id", "care_site_name"],
    "observation_period": ["person_id", "observation_period_end_date"],
    "condition_occurrence": [
        "person_id",
        "condition_start_date",
        "condition_source_value",
        "condition_status_source_value",
    ],
    "measurement": [
        "measurement_id",
        "person_id",
        "measurement_date",
        "measurement_source_value",
        "value_as_number",
        "value_source_value",
    ],
    "episode": [
        "episode_id",
        "person_id",
        "episode_source_value",
        "episode_number",
        "episode_start_date",
        "episode_parent_id",
        "episode_object_source_value",
    ],
    "observation": [
        "person_id",
        "observation_date",
        "observation_source_value",
        "value_as_string",
        "observation_event_id",
    ],
    "death": ["person_id", "death_date"],
}


def pseudonym_key(env_name: str) -> str:
    """The keyed-hash secret: ``$env_name`` or, for synthetic data only, a development key."""
    return os.environ.get(env_name) or DEV_KEY


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def feature_sql(cfg: FeatureConfig, key: str, site: str | None = None) -> str:
    """The SELECT that builds the analysis table (tables registered as views); with
    ``site``, only the lines of that hospital's patients (every other part of the query
    is per person or per line, so the union over sites is the whole table)."""
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
    k = _q(key)
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
    substr(sha256({k} || ':person:' || t.person_id::VARCHAR), 1, 16) AS person_key,
    substr(sha256({k} || ':line:' || t.line_id::VARCHAR), 1, 16) AS line_key,
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


def _register(con: duckdb.DuckDBPyConnection, omop_dir: Path) -> None:
    for table, cols in REQUIRED.items():
        path = omop_dir / f"{table}.parquet"
        if not path.exists():
            raise OncorweError(f"OMOP input {path} is missing (expected table {table!r})")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({_q(str(path))})")
        have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
        missing = [c for c in cols if c not in have]
        if missing:
            raise OncorweError(f"OMOP input {path}: missing columns {missing}")


def build_features(
    omop_dir: str | Path,
    cfg: FeatureConfig,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> pa.Table:
    """Run the feature SQL over ``omop_dir`` and return the validated Arrow table."""
    con = duckdb.connect()
    key = pseudonym_key(cfg.pseudonym_key_env)
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            con.execute(f"SET memory_limit = {_q(memory_limit)}")
        con.execute("SET preserve_insertion_order = true")
        _register(con, Path(omop_dir))
        # one hospital at a time: the whole-table join needs about 20 GB at the full
        # profile (4.96M patients); a hospital's share needs a small fraction of it. The
        # sites come in the final ORDER BY's order, so the result is the same table.
        orphans = con.sql(
            "SELECT count(*) FROM episode WHERE episode_source_value = 'treatment line' "
            "AND person_id NOT IN (SELECT p.person_id FROM person p "
            "JOIN care_site cs ON cs.care_site_id = p.care_site_id)"
        ).fetchall()[0][0]
        if orphans:
            raise OncorweError(
                f"OMOP input {omop_dir}: some treatment lines belong to persons without a "
                "known hospital (person.care_site_id must name a row of care_site)"
            )
        sites = [
            r[0]
            for r in con.sql(
                "SELECT DISTINCT care_site_name FROM care_site ORDER BY care_site_name"
            ).fetchall()
        ]
        if not sites:
            raise OncorweError(f"OMOP input {omop_dir}: care_site lists no hospital")
        parts = []
        for site in sites:
            part = con.sql(feature_sql(cfg, key, site)).to_arrow_table()
            parts.append(part.read_all() if hasattr(part, "read_all") else part)
    finally:
        con.close()
    table = pa.concat_tables(parts)
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


def run_feature_stage(
    omop_dir: str | Path,
    out_dir: str | Path,
    metrics_path: str | Path,
    cfg: FeatureConfig,
    min_cell: int,
    threads: int | None = None,
) -> dict:
    table = build_features(omop_dir, cfg, threads=threads)
    write_features(table, out_dir, cfg)
    metrics = feature_metrics(table, cfg, min_cell)
    write_json(metrics_path, metrics)
    return metrics
