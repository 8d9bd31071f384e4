"""The feature stage: one row per line, nothing from after the index date, de-identified."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oncorwe.core.errors import OncorweError
from oncorwe.features.build import (
    DEV_KEY,
    build_features,
    feature_metrics,
    write_features,
)
from oncorwe.features.schema import FeatureSchema, validate_table


def _key(raw_id: int, kind: str, key: str = DEV_KEY) -> str:
    """HMAC-SHA256 from Python's own module: the feature stage's SQL must agree."""
    return hmac.new(key.encode(), f"{kind}:{raw_id}".encode(), hashlib.sha256).hexdigest()[:16]


def test_one_row_per_treated_line_with_follow_up(world, features):
    ep = pd.read_parquet(world / "omop" / "episode.parquet")
    lines = ep[ep["episode_source_value"] == "treatment line"]
    assert features["line_key"].is_unique
    assert len(features) <= len(lines)
    assert len(features) >= 0.995 * len(lines)


def test_ids_are_keyed_hashes_not_raw_ids(world, features):
    person = pd.read_parquet(world / "omop" / "person.parquet")
    assert features["person_key"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert not set(person["person_id"].astype(str)) & set(features["person_key"])
    expected = {_key(pid, "person") for pid in person["person_id"]}
    assert set(features["person_key"]) <= expected


def test_the_key_comes_from_the_environment(world, feature_config, monkeypatch):
    monkeypatch.setenv(feature_config.pseudonym_key_env, "another-secret")
    other = build_features(world / "omop", feature_config).column("person_key").to_pylist()
    person = pd.read_parquet(world / "omop" / "person.parquet")
    assert set(other) <= {_key(pid, "person", "another-secret") for pid in person["person_id"]}
    assert not set(other) & {_key(pid, "person") for pid in person["person_id"]}


def test_no_exact_dates_leave_the_stage(features):
    assert not any(pd.api.types.is_datetime64_any_dtype(t) for t in features.dtypes)
    assert not any(isinstance(v, dt.date) for v in features.iloc[0].to_numpy())


def test_biomarkers_have_a_not_tested_state(features):
    crc = features[features["cancer"] == "colorectal"]
    states = set(crc["bm_msi_h_status"])
    assert states == {"positive", "negative", "not_tested"}
    nsclc_only = features[features["cancer"] != "nsclc"]["bm_egfr_status"]
    assert (nsclc_only == "not_tested").all()
    np.testing.assert_array_equal(
        features["bm_msi_h"].isna().to_numpy(),
        (features["bm_msi_h_status"] == "not_tested").to_numpy(),
    )


def _plant(omop, tmp_path, rows: pd.DataFrame):
    """Copy the OMOP folder and append measurement rows to it."""
    dst = tmp_path / "omop"
    shutil.copytree(omop, dst)
    meas = pq.read_table(dst / "measurement.parquet")
    extra = pa.Table.from_pandas(rows, schema=meas.schema, preserve_index=False)
    pq.write_table(pa.concat_tables([meas, extra]), dst / "measurement.parquet")
    return dst


def _target_line(world):
    """A first line whose patient was never tested for EGFR, with a lab before it."""
    ep = pd.read_parquet(world / "omop" / "episode.parquet")
    truth = pd.read_parquet(world / "truth" / "lines.parquet")
    meas = pd.read_parquet(world / "omop" / "measurement.parquet")
    egfr_tested = set(meas.loc[meas["measurement_source_value"] == "EGFR", "person_id"])
    cand = truth[(truth["cancer"] == "nsclc") & (truth["line"] == 1)]
    cand = cand[~cand["person_id"].isin(egfr_tested)]
    row = cand.iloc[0]
    line = ep[ep["episode_id"] == row["line_id"]].iloc[0]
    return int(row["person_id"]), int(row["line_id"]), line["episode_start_date"]


def _rows(pid: int, day, name: str, value: float, label):
    return pd.DataFrame(
        {
            "measurement_id": [10**12 + abs(hash((pid, name, str(day)))) % 10**9],
            "person_id": [pid],
            "measurement_date": [day],
            "measurement_source_value": [name],
            "value_as_number": [value],
            "value_source_value": [label],
            "unit_source_value": [None],
        }
    )


def test_records_dated_after_the_index_date_never_enter_a_covariate(
    world, feature_config, features, tmp_path
):
    pid, line_id, index = _target_line(world)
    after = index + dt.timedelta(days=1)
    rows = pd.concat(
        [
            _rows(pid, after, "LDH", 99999.0, None),
            _rows(pid, after, "EGFR", 1.0, "positive"),
            _rows(pid, index, "ECOG", 4.0, None),  # same day as the index: not before it
        ]
    )
    planted = build_features(_plant(world / "omop", tmp_path, rows), feature_config).to_pandas()
    key = _key(line_id, "line")
    before = features.set_index("line_key").loc[key]
    now = planted.set_index("line_key").loc[key]
    assert now["lab_ldh"] != 99999.0
    assert now["bm_egfr_status"] == "not_tested"
    pd.testing.assert_series_equal(before, now)


def test_the_same_records_dated_before_the_index_date_do_enter(world, feature_config, tmp_path):
    """The control for the leakage test: it can fail."""
    pid, line_id, index = _target_line(world)
    before = index - dt.timedelta(days=1)
    rows = pd.concat(
        [_rows(pid, before, "LDH", 99999.0, None), _rows(pid, before, "EGFR", 1.0, "positive")]
    )
    planted = build_features(_plant(world / "omop", tmp_path, rows), feature_config).to_pandas()
    now = planted.set_index("line_key").loc[_key(line_id, "line")]
    assert now["lab_ldh"] == 99999.0
    assert now["bm_egfr_status"] == "positive"


def test_labs_outside_the_lookback_window_are_ignored(world, feature_config, tmp_path):
    pid, line_id, index = _target_line(world)
    old = index - dt.timedelta(days=feature_config.lookback_days + 1)
    rows = _rows(pid, old, "creatinine", 77.0, None)
    planted = build_features(_plant(world / "omop", tmp_path, rows), feature_config).to_pandas()
    assert planted.set_index("line_key").loc[_key(line_id, "line"), "lab_creatinine"] != 77.0


def test_on_treatment_labs_would_leak_the_response(world, features):
    """The generator's post-index LDH tracks the response; the baseline LDH must not."""
    meas = pd.read_parquet(world / "omop" / "measurement.parquet")
    ep = pd.read_parquet(world / "omop" / "episode.parquet")
    first = ep[(ep["episode_source_value"] == "treatment line") & (ep["episode_number"] == 1)]
    ldh = meas[meas["measurement_source_value"] == "LDH"].merge(
        first[["person_id", "episode_id", "episode_start_date"]], on="person_id"
    )
    post = ldh[
        (ldh["measurement_date"] > ldh["episode_start_date"])
        & (ldh["measurement_date"] <= ldh["episode_start_date"] + dt.timedelta(days=45))
    ]
    post = post.assign(line_key=[_key(i, "line") for i in post["episode_id"]])
    f1 = features[features["line"] == 1].merge(post[["line_key", "value_as_number"]], on="line_key")
    f1 = f1.dropna(subset=["response", "lab_ldh"])
    leaky = np.corrcoef(np.log(f1["value_as_number"] / f1["lab_ldh"]), f1["response"])[0, 1]
    clean = np.corrcoef(np.log(f1["lab_ldh"]), f1["response"])[0, 1]
    assert leaky < -0.3  # the trap is real
    assert abs(clean) < abs(leaky) / 2


def test_outcomes_agree_with_the_truth(world, features):
    po = pd.read_parquet(world / "truth" / "potential_outcomes.parquet")
    assigned = po[po["assigned"]].assign(line_key=lambda d: [_key(i, "line") for i in d["line_id"]])
    merged = features.merge(assigned, on="line_key")
    assert (merged["treatment"] == merged["drug"]).all()
    r = merged.dropna(subset=["response"])
    se = np.sqrt((r["p_response"] * (1 - r["p_response"])).sum()) / len(r)
    assert abs(r["response"].mean() - r["p_response"].mean()) < 4 * se
    t = merged.dropna(subset=["toxicity"])
    se = np.sqrt((t["p_toxicity"] * (1 - t["p_toxicity"])).sum()) / len(t)
    assert abs(t["toxicity"].mean() - t["p_toxicity"].mean()) < 4 * se


def test_pfs_is_censored_at_the_end_of_follow_up(features):
    assert (features["pfs_months"] > 0).all()
    assert (features["pfs_months"] <= features["os_months"] + 1e-9).all()
    assert 0.5 < features["pfs_event"].mean() < 1.0


def test_pfs_follows_the_planted_weibull_median(features, world):
    """Kaplan-Meier median PFS of first-line standard of care vs the spec's median."""
    from lifelines import KaplanMeierFitter

    from oncorwe.cohort.spec import load_spec

    spec = load_spec()
    checked = 0
    for cname, cancer in spec.cancers.items():
        sub = features[
            (features["cancer"] == cname)
            & (features["line"] == 1)
            & (features["treatment"] == cancer.standard_of_care[1])
        ]
        if len(sub) < 400:
            continue
        km = KaplanMeierFitter().fit(sub["pfs_months"], sub["pfs_event"])
        ratio = km.median_survival_time_ / cancer.median_pfs_months
        # prognostic index averages to ~0; stage mix and selection move it a little
        assert 0.6 < ratio < 1.5, (cname, km.median_survival_time_, cancer.median_pfs_months)
        checked += 1
    assert checked >= 4


def test_partitions_hold_one_site_each(world, feature_config, tmp_path):
    table = build_features(world / "omop", feature_config)
    roles = write_features(table, tmp_path / "analysis", feature_config)
    parts = sorted((tmp_path / "analysis").glob("site=*/part-0.parquet"))
    assert len(parts) == len(set(table.column("site").to_pylist()))
    total = 0
    for p in parts:
        t = pq.read_table(p)
        assert set(t.column("site").to_pylist()) == {p.parent.name.split("=", 1)[1]}
        total += t.num_rows
    assert total == table.num_rows
    assert roles["treatment"] == "treatment" and "lab_ecog" in roles["covariates"]
    assert not {"response", "pfs_months", "treatment"} & set(roles["covariates"])


def test_schema_rejects_zero_follow_up_naming_the_column(features, feature_config):
    table = pa.Table.from_pandas(features.head(50), preserve_index=False)
    bad = table.set_column(
        table.column_names.index("pfs_months"),
        "pfs_months",
        pa.array(np.zeros(50)),
    )
    with pytest.raises(OncorweError, match="pfs_months"):
        validate_table(bad, FeatureSchema.for_config(feature_config), source="test")


def test_missing_omop_table_is_a_clear_error(world, feature_config, tmp_path):
    dst = tmp_path / "omop"
    shutil.copytree(world / "omop", dst)
    (dst / "death.parquet").unlink()
    with pytest.raises(OncorweError, match="death"):
        build_features(dst, feature_config)


def test_a_patient_without_a_known_hospital_is_a_clear_error(world, feature_config, tmp_path):
    """The table is built one hospital at a time: a line whose patient names no
    care_site row must stop the stage, not vanish."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    dst = tmp_path / "omop"
    shutil.copytree(world / "omop", dst)
    person = pq.read_table(dst / "person.parquet")
    ids = person.column("care_site_id")
    first = pc.equal(pa.array(range(len(ids))), 0)
    bad = pc.if_else(first, pa.scalar(-1, ids.type), ids)
    person = person.set_column(person.schema.get_field_index("care_site_id"), "care_site_id", bad)
    pq.write_table(person, dst / "person.parquet")
    with pytest.raises(OncorweError, match="care_site"):
        build_features(dst, feature_config)


def test_metrics_suppress_small_cells(features, feature_config):
    table = pa.Table.from_pandas(features, preserve_index=False)
    metrics = feature_metrics(table, feature_config, min_cell=10**9)
    assert metrics["lines"] is None and metrics["patients"] is None
    assert all(v is None for v in metrics["lines_per_cancer"].values())
    ok = feature_metrics(table, feature_config, min_cell=11)
    assert ok["lines"] == len(features)


def test_no_covariate_changes_with_the_lines_own_treatment(world, feature_config, tmp_path):
    """A covariate is fixed before the drug is chosen. Give a later line its prior line's
    drug: the treatment and the new-user flag change, no declared covariate may."""
    ep = pd.read_parquet(world / "omop" / "episode.parquet")
    lines = ep[ep["episode_source_value"] == "treatment line"]
    prev = lines.assign(episode_number=lines["episode_number"] + 1)[
        ["person_id", "episode_number", "episode_object_source_value"]
    ].rename(columns={"episode_object_source_value": "prior"})
    later = lines.merge(prev, on=["person_id", "episode_number"])
    target = later[later["episode_object_source_value"] != later["prior"]].iloc[0]
    dst = tmp_path / "omop"
    shutil.copytree(world / "omop", dst)
    edited = ep.copy()
    edited.loc[edited["episode_id"] == target["episode_id"], "episode_object_source_value"] = (
        target["prior"]
    )
    pq.write_table(
        pa.Table.from_pandas(
            edited, schema=pq.read_schema(dst / "episode.parquet"), preserve_index=False
        ),
        dst / "episode.parquet",
    )
    key = _key(int(target["episode_id"]), "line")
    before = (
        build_features(world / "omop", feature_config).to_pandas().set_index("line_key").loc[key]
    )
    after = build_features(dst, feature_config).to_pandas().set_index("line_key").loc[key]
    assert after["treatment"] == target["prior"] != before["treatment"]
    assert (before["prior_same_drug"], after["prior_same_drug"]) == (0, 1)
    covariates = FeatureSchema.for_config(feature_config).covariates
    pd.testing.assert_series_equal(before[covariates], after[covariates])
