"""Bring your own data as analysts write it: numeric and yes/no arm codes, 0/1 markers,
days, stray strings, duplicates. Each test is a case that once failed on such a file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from oncorwe.cohort.flat import ROLES, flat_cohort
from oncorwe.core.errors import ConfigError, OncorweError
from oncorwe.core.roles import Roles, load_cohort, load_roles, validate_cohort

from .test_cli import oncorwe


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The planted flat cohort and its null twin, with a roles file naming only id,
    treatment, arm values, the outcome and the covariates."""
    d = tmp_path_factory.mktemp("flat")
    flat_cohort().to_csv(d / "cohort.csv", index=False)
    flat_cohort(effect_hr=1.0).to_csv(d / "null.csv", index=False)
    (d / "roles.yaml").write_text(yaml.safe_dump(ROLES))
    return d


def _discover(cohort, roles, out, cwd):
    """``oncorwe discover`` on a cohort file and a roles file, run from ``cwd``."""
    return oncorwe("discover", "--cohort", cohort, "--roles", roles, "--out", out, cwd=cwd)


def _roles(**kw) -> Roles:
    return Roles.model_validate({**ROLES, **kw})


def _small(**cols) -> pd.DataFrame:
    base = flat_cohort(200, seed=3)
    return base.assign(**cols)


@pytest.mark.parametrize(
    ("treated", "comparator", "column"),
    [
        (2, 1, [1, 2]),
        ("2", "1", [1, 2]),
        (2, 1, [1.0, 2.0]),
        (2.0, 1.0, ["1", "2"]),
        (True, False, ["no", "yes"]),
        (True, False, ["N", "Y"]),
        (True, False, [False, True]),
        (True, False, [0, 1]),
        ("drug", "chemo", ["chemo", "drug "]),
    ],
)
def test_arm_values_match_the_column_whatever_its_type(treated, comparator, column):
    frame = _small()
    frame["trt"] = [column[1] if t == 2 else column[0] for t in frame["trt"]]
    out, roles = validate_cohort(frame, _roles(treated=treated, comparator=comparator), "f.csv")
    assert (out["trt"] == roles.treated).sum() == (frame["trt"] == column[1]).sum()
    assert (out["trt"] == roles.comparator).sum() == (frame["trt"] == column[0]).sum()


def test_a_yaml_yes_no_roles_file_is_read_as_booleans_and_matched(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "id: patient_id\ntreatment: trt\ntreated: yes\ncomparator: no\n"
        "time: pfs_days\nevent: progressed\n"
    )
    frame = _small()
    frame["trt"] = frame["trt"].map({1: "No", 2: "Yes"})
    frame.to_csv(tmp_path / "c.csv", index=False)
    out, roles = load_cohort(tmp_path / "c.csv", load_roles(tmp_path / "r.yaml"))
    assert (roles.treated, roles.comparator) == ("Yes", "No")


def test_an_arm_value_that_matches_nothing_says_what_was_compared():
    with pytest.raises(OncorweError) as err:
        validate_cohort(_small(), _roles(treated=3), "f.csv")
    msg = str(err.value)
    assert "roles.treated is 3 (read as int)" in msg and "'1', '2'" in msg and "'trt'" in msg


def test_times_in_days_are_converted_once_to_months():
    frame = _small()
    out, roles = validate_cohort(frame, _roles(), "f.csv")
    assert out["pfs_days"].to_numpy() == pytest.approx(frame["pfs_days"] / 30.4375)
    assert roles.time_unit == "months"  # what the loaded table is in now
    years, _ = validate_cohort(frame, _roles(time_unit="years"), "f.csv")
    assert years["pfs_days"].to_numpy() == pytest.approx(frame["pfs_days"] * 12.0)


def test_zero_one_markers_and_small_integer_codes_are_default_subgroup_fields():
    frame = _small(stage=["II", "III"] * 100)
    roles = _roles(covariates=[*ROLES["covariates"], "stage"])
    out, roles = validate_cohort(frame, roles, "f.csv")
    fields = roles.resolved_subgroups(out)
    assert fields == ["ecog", "marker_a", "marker_b", "marker_c", "marker_d", "stage"]
    assert "age" not in fields  # continuous: opts in only with cut points


def test_a_numeric_column_with_stray_strings_is_refused():
    frame = _small()
    frame["age"] = frame["age"].astype(object)
    frame.loc[[3, 7, 9], "age"] = ["unknown", "n/a", "?"]
    with pytest.raises(OncorweError, match=r"'age' \(covariate\) is numeric but for values"):
        validate_cohort(frame, _roles(), "f.csv")


def test_a_patient_on_several_rows_without_row_id_is_refused():
    frame = _small()
    frame = pd.concat([frame, frame.iloc[:5].assign(trt=3 - frame["trt"].iloc[:5])])
    with pytest.raises(OncorweError, match=r"'patient_id' \(id\) repeats: 5 values occur on 10"):
        validate_cohort(frame, _roles(), "f.csv")


def test_an_eligible_rule_on_an_unknown_field_is_refused():
    with pytest.raises(OncorweError, match="roles.eligible: rule field 'histology'"):
        validate_cohort(_small(), _roles(eligible={"histology": "adeno"}), "f.csv")


def test_an_absurd_covariate_is_refused():
    frame = _small()
    frame.loc[0, "age"] = 1e308
    with pytest.raises(OncorweError, match=r"'age' \(covariate\) has 1 infinite or absurd"):
        validate_cohort(frame, _roles(), "f.csv")


def test_duplicate_yaml_keys_are_refused_naming_both_lines(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("id: patient_id\ntreatment: trt\ncomparator: 1\ntime: a\nevent: e\ntime: b\n")
    with pytest.raises(ConfigError, match=r"key 'time' is given twice \(lines 4 and 6\)"):
        load_roles(p)


def test_a_corrupt_parquet_in_a_folder_is_a_named_error(tmp_path):
    from oncorwe.core.roles import read_table

    (tmp_path / "site=a").mkdir()
    (tmp_path / "site=a" / "part-0.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(OncorweError, match="part-0.parquet cannot be read as Parquet"):
        read_table(tmp_path)


def test_transport_needs_no_treatment_role(world, tmp_path):
    roles = {k: v for k, v in ROLES.items() if k not in ("treatment", "treated", "comparator")}
    (tmp_path / "roles.yaml").write_text(yaml.safe_dump(roles))
    frame = pd.read_csv(world / "cohort.csv")
    frame.iloc[:6000].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[6000:].to_csv(tmp_path / "b.csv", index=False)
    args = ["--train", tmp_path / "a.csv", "--test", tmp_path / "b.csv"]
    res = oncorwe(
        "transport",
        *args,
        "--roles",
        tmp_path / "roles.yaml",
        "--out",
        tmp_path / "t",
        "--model",
        "both",
    )
    assert res.returncode == 0, res.stderr
    tr = json.loads((tmp_path / "t" / "transport.json").read_text())
    assert tr["model"] == "cox" and set(tr["models"]) == {"cox", "xgboost"}
    assert 0.8 <= tr["calibration_slope"] <= 1.25
    assert tr["horizon_months"] == 12 and tr["time_unit"] == "months"


def test_transport_refuses_a_test_file_coded_otherwise(world, tmp_path):
    roles = {**ROLES, "covariates": [*ROLES["covariates"], "sex"]}
    (tmp_path / "roles.yaml").write_text(yaml.safe_dump(roles))
    frame = pd.read_csv(world / "cohort.csv").iloc[:4000]
    frame.assign(sex=["F", "M"] * 2000).iloc[:2000].to_csv(tmp_path / "a.csv", index=False)
    frame.assign(sex=[0, 1] * 2000).iloc[2000:].to_csv(tmp_path / "b.csv", index=False)
    res = oncorwe(
        "transport",
        "--train",
        tmp_path / "a.csv",
        "--test",
        tmp_path / "b.csv",
        "--roles",
        tmp_path / "roles.yaml",
        "--out",
        tmp_path / "t",
    )
    assert res.returncode == 2, res.stderr
    assert "'sex' holds numbers where" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "t").exists()


def test_discover_confirms_the_planted_zero_one_subgroup_first_and_its_null_twin_nothing(
    world, tmp_path
):
    res = _discover(world / "cohort.csv", world / "roles.yaml", tmp_path / "d", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "parameters: the defaults" in res.stderr
    top = json.loads((tmp_path / "d" / "hypotheses.json").read_text())["hypotheses"][0]
    assert top["confirmed"] and top["drug"] == "2"
    assert top["conditions"].get("marker_b") == "positive"
    assert top["confirmation"]["pfs"]["effect"] > 0  # longer PFS on the drug, in months
    res = _discover(world / "null.csv", world / "roles.yaml", tmp_path / "n", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "n" / "summary.json").read_text())
    assert summary["n_confirmed"] == 0
    why = " ".join(summary["why_nothing"])
    assert "none was confirmed" in why or "none passed the screen" in why
    assert summary["why_nothing"][0] in res.stderr
    assert summary["screen"]["subgroup_fields"][:2] == ["ecog", "marker_a"]


def test_discover_says_why_when_no_comparison_can_be_formed(world, tmp_path):
    frame = pd.read_csv(world / "cohort.csv")
    drug = frame[frame["trt"] == 2].iloc[:60]
    pd.concat([frame[frame["trt"] == 1].iloc[:2000], drug]).to_csv(tmp_path / "c.csv", index=False)
    res = _discover(tmp_path / "c.csv", world / "roles.yaml", tmp_path / "d", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "no comparison could be formed" in res.stderr and "min_drug_rows (50)" in res.stderr
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["screen"]["rules_screened"] == 0


def test_check_params_outside_a_project_reads_the_current_folder(tmp_path):
    (tmp_path / "params.yaml").write_text("hypothesis: {no_such_key: 1}\n")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    res = oncorwe("check-params", cwd=tmp_path)
    assert res.returncode == 2 and "no_such_key" in res.stderr
    res = oncorwe("check-params", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 2 and "no_such_key" in res.stderr


def test_generate_onto_an_existing_file_is_a_named_error(tmp_path):
    (tmp_path / "w").write_text("mine")
    res = oncorwe("generate", "--patients", 50, "--out", tmp_path / "w")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert (tmp_path / "w").read_text() == "mine"


@pytest.mark.parametrize("command", ["discover", "emulate"])
def test_an_out_folder_holding_someone_elses_files_is_refused_and_kept(world, tmp_path, command):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("the analyst's")
    res = oncorwe(
        command,
        "--cohort",
        world / "cohort.csv",
        "--roles",
        world / "roles.yaml",
        "--out",
        tmp_path / "out",
        cwd=tmp_path,
    )
    assert res.returncode == 2 and "notes.txt" in res.stderr, res.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


def test_emulate_reruns_onto_its_own_out_folder(world, tmp_path):
    args = ["--cohort", world / "cohort.csv", "--roles", world / "roles.yaml"]
    for _ in range(2):
        res = oncorwe("emulate", *args, "--out", tmp_path / "em")
        assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "em").iterdir()) == [
        ".oncorwe-manifest.json",
        "balance.html",
        "emulation.json",
        "km.html",
        "plotly.min.js",
    ]
    # the figures load the one plotly.js beside them, not a copy each
    for page in ("km.html", "balance.html"):
        html = (tmp_path / "em" / page).read_text()
        assert 'src="plotly.min.js"' in html and "* plotly.js v" not in html
        assert (tmp_path / "em" / page).stat().st_size < 1_000_000


def _aged_cohort(n: int = 16000, seed: int = 5) -> pd.DataFrame:
    """A flat cohort whose drug works (HR 0.35) only from age 75 (about 13 % of rows):
    a subgroup on a continuous covariate, found only when cut points split it."""
    rng = np.random.default_rng(seed)
    age = rng.normal(64, 10, n).round()
    ecog = rng.choice([0, 1, 2], n, p=[0.4, 0.45, 0.15])
    drug = rng.random(n) < 1 / (1 + np.exp(-(-0.2 + 0.02 * (age - 64) - 0.4 * ecog)))
    hazard = (1 / 120) * np.exp(0.25 * ecog + np.where(drug & (age >= 75), np.log(0.35), 0))
    t_event, t_cens = rng.exponential(1 / hazard), rng.uniform(200, 900, n)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:06d}" for i in range(n)],
            "trt": np.where(drug, 2, 1),
            "age": age,
            "ecog": ecog,
            "pfs_days": np.maximum(1, np.round(np.minimum(t_event, t_cens))).astype(int),
            "progressed": (t_event <= t_cens).astype(int),
        }
    )


def test_subgroup_cuts_split_a_continuous_covariate_and_find_the_planted_interval(tmp_path):
    _aged_cohort().to_csv(tmp_path / "c.csv", index=False)
    roles = {**ROLES, "covariates": ["age", "ecog"]}
    for name, extra in (("cut", {"subgroup_cuts": {"age": [65, 75]}}), ("plain", {})):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({**roles, **extra}))
        res = _discover(
            tmp_path / "c.csv", tmp_path / f"{name}.yaml", tmp_path / name, cwd=tmp_path
        )
        assert res.returncode == 0, res.stderr
    cut = json.loads((tmp_path / "cut" / "hypotheses.json").read_text())["hypotheses"]
    assert cut[0]["confirmed"] and cut[0]["conditions"]["age"] == {"min": 75.0}
    assert cut[0]["subgroup"] == "age >= 75"
    plain = json.loads((tmp_path / "plain" / "hypotheses.json").read_text())["hypotheses"]
    assert not any("age" in h["conditions"] for h in plain)  # not a field without cuts


@pytest.mark.parametrize(
    ("cuts", "found"),
    [
        ({"age": [75, 65]}, "increasing finite cut points"),
        ({"age": {"quantiles": 1}}, "quantiles must be 2 to 10"),
        ({"sex": [1]}, "'sex', which is not numeric"),
        ({"height": [1]}, "roles.subgroup_cuts names column 'height', which is missing"),
    ],
)
def test_bad_subgroup_cuts_are_named(cuts, found):
    frame = _small(sex=["F", "M"] * 100)
    with pytest.raises((OncorweError, ValueError), match=found):
        validate_cohort(frame, _roles(subgroup_cuts=cuts), "c.csv")


def test_the_tuning_study_lives_in_the_output_and_a_failed_run_leaves_none(
    world, tmp_path, monkeypatch
):
    import tempfile

    import oncorwe.pipeline.hypothesis as hyp
    from oncorwe.pipeline.hypothesis import TrackConfig

    frame, roles = load_cohort(world / "cohort.csv", Roles.model_validate(ROLES))
    cfg = TrackConfig(
        fractions={"discovery": 0.4, "confirmation": 0.35, "validation": 0.25}, tuning_trials=2
    )
    hyp.run_hypothesis(frame, roles, cfg, tmp_path / "ok")
    assert (tmp_path / "ok" / hyp.TUNING_DB).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]  # no .optuna beside it

    def crash(*args, **kwargs):
        raise RuntimeError("killed in confirmation")

    before = set(Path(tempfile.gettempdir()).glob("oncorwe-tuning-*"))
    monkeypatch.setattr(hyp, "confirm", crash)
    with pytest.raises(RuntimeError, match="killed"):
        hyp.run_hypothesis(frame, roles, cfg, tmp_path / "bad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]
    assert set(Path(tempfile.gettempdir()).glob("oncorwe-tuning-*")) == before


def test_discover_refuses_a_pfs_horizon_beyond_the_follow_up(world, tmp_path):
    frame = pd.read_csv(world / "cohort.csv")
    frame["pfs_days"] = frame["pfs_days"].clip(upper=200)  # 6.6 months at most
    frame.to_csv(tmp_path / "c.csv", index=False)
    res = _discover(tmp_path / "c.csv", world / "roles.yaml", tmp_path / "d", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "horizon_months 12" in res.stderr and "'pfs_days' (6.57 months" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "d").exists()


def test_discover_blinds_hypotheses_whose_comparison_fails_overlap(world, tmp_path):
    """A covariate that is the treatment separates the arms: every AIPW estimate is the
    outcome models' extrapolation. Once confirmed anyway; now blinded, kept for audit."""
    frame = pd.read_csv(world / "cohort.csv")
    frame["on_drug"] = (frame["trt"] == 2).astype(int)
    frame.to_csv(tmp_path / "c.csv", index=False)
    roles = {**ROLES, "covariates": [*ROLES["covariates"], "on_drug"]}
    (tmp_path / "roles.yaml").write_text(yaml.safe_dump(roles))
    res = _discover(tmp_path / "c.csv", tmp_path / "roles.yaml", tmp_path / "d", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    hyps = json.loads((tmp_path / "d" / "hypotheses.json").read_text())["hypotheses"]
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert hyps and all(h["blinded"] and not h["confirmed"] for h in hyps)
    assert all("overlap: 100% of the subgroup's" in h["blinded_reason"] for h in hyps)
    assert summary["n_confirmed"] == 0 and summary["n_blinded"] == len(hyps)
    assert "were blinded" in res.stderr and "0 confirmed" in res.stderr
    assert all("confirmation" in h for h in hyps)  # the estimates stay, for audit


def test_a_stray_string_in_a_cut_column_is_named_once():
    """Found by hand: 'unk' in age gave the stray-string error and a second one calling
    age 'not numeric' with numbers as its examples."""
    frame = _small()
    frame["age"] = frame["age"].astype(object)
    frame.loc[5, "age"] = "unk"
    with pytest.raises(OncorweError) as err:
        validate_cohort(frame, _roles(subgroup_cuts={"age": [70]}), "c.csv")
    assert "'unk'" in str(err.value) and "not numeric" not in str(err.value)
