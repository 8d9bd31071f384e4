"""``params.yaml`` -> typed, validated configuration.

Every section is a pydantic model that forbids unknown keys; a wrong type or an
out-of-range value stops with an error naming ``params.yaml``, the dotted key and what is
allowed. A stage asks for its own section only (:func:`load_params`), and the keys it may
read are the ones ``dvc.yaml`` declares for it (checked in the tests).

Example
-------
>>> from oncorwe.pipeline.params import Params
>>> Params.model_validate({"cohort": {"profile": "tiny"}}).cohort.n_patients
3000
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from oncorwe.core.errors import ConfigError, format_validation_error, load_yaml_model
from oncorwe.core.net import is_loopback
from oncorwe.core.paths import resolve
from oncorwe.core.privacy import DEFAULT_K, DEFAULT_MIN_CELL

Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _warn(msg: str) -> None:
    print(f"[oncorwe] warning: {msg}", file=sys.stderr, flush=True)


DEFAULT_PROFILES = {"tiny": 3000, "small": 20000, "default": 200000, "full": 4960000}


class CohortParams(_Section):
    source: Literal["synthetic", "omop"] = Field(
        "synthetic", description="synthetic world, or an OMOP extract in omop_dir"
    )
    spec: str = Field("default", description="'default' (shipped) or a path to a spec YAML")
    profile: str = Field("default", description="a key of profiles")
    profiles: dict[str, Annotated[int, Field(ge=1, le=10_000_000)]] = Field(
        default_factory=lambda: dict(DEFAULT_PROFILES)
    )
    seed: int = Field(20261129, ge=0, le=2**32 - 1)
    omop_dir: str | None = Field(None, description="OMOP Parquet folder when source is omop")

    @model_validator(mode="after")
    def _check(self) -> CohortParams:
        if self.profile not in self.profiles:
            raise ValueError(f"profile {self.profile!r} is not one of {sorted(self.profiles)}")
        if self.source == "omop" and not self.omop_dir:
            raise ValueError("source 'omop' needs omop_dir (a folder of OMOP Parquet tables)")
        return self

    @property
    def n_patients(self) -> int:
        return self.profiles[self.profile]


class FeaturesParams(_Section):
    lookback_days: int = Field(180, ge=1, le=3650, description="lab look-back window")
    toxicity_window_days: int = Field(90, ge=1, le=730)
    pseudonym_key_env: Name = Field(
        "ONCORWE_PSEUDONYM_KEY", description="environment variable holding the hash key"
    )
    pseudonym_key_file: str | None = Field(
        None,
        min_length=1,
        description="a file holding the hash key: outside the project, mode 0600 or "
        "stricter (either this or the environment variable is required for any source "
        "but synthetic)",
    )
    cancers: list[str] = Field(
        default_factory=lambda: [
            "colorectal",
            "gastric",
            "breast",
            "nsclc",
            "prostate",
            "liver",
            "pancreatic",
            "ovarian",
        ],
        min_length=1,
    )
    biomarkers: dict[Name, Literal["binary", "tps"]] = Field(
        default_factory=lambda: {
            "EGFR": "binary",
            "KRAS_G12C": "binary",
            "ALK": "binary",
            "BRCA": "binary",
            "HER2": "binary",
            "HR": "binary",
            "PDL1_TPS": "tps",
            "PTEN_LOSS": "binary",
            "MSI_H": "binary",
            "PIK3CA": "binary",
            "KRAS": "binary",
        }
    )
    standard_of_care: dict[str, dict[int, str]] = Field(
        default_factory=lambda: {
            "colorectal": {1: "folfox", 2: "folfiri"},
            "gastric": {1: "cisplatin_fluoropyrimidine", 2: "paclitaxel"},
            "breast": {1: "taxane_chemo", 2: "capecitabine"},
            "nsclc": {1: "platinum_doublet", 2: "docetaxel"},
            "prostate": {1: "docetaxel", 2: "cabazitaxel"},
            "liver": {1: "sorafenib", 2: "regorafenib"},
            "pancreatic": {1: "folfirinox", 2: "gemcitabine_nab_paclitaxel"},
            "ovarian": {1: "carboplatin_paclitaxel", 2: "liposomal_doxorubicin"},
        },
        description="cancer -> {first line -> comparator drug}: each line's comparator",
    )
    labs: list[Name] = Field(
        default_factory=lambda: ["ECOG", "albumin", "LDH", "NLR", "creatinine"]
    )
    comorbidities: list[Name] = Field(
        default_factory=lambda: [
            "diabetes",
            "copd",
            "chronic_kidney_disease",
            "cardiovascular_disease",
            "hepatitis_b",
        ]
    )


class SplitParams(_Section):
    discovery: float = Field(0.4, gt=0, lt=1)
    confirmation: float = Field(0.35, gt=0, lt=1)
    validation: float = Field(0.25, ge=0, lt=1)
    seed: int = Field(2026, ge=0)

    @model_validator(mode="after")
    def _sum(self) -> SplitParams:
        total = self.discovery + self.confirmation + self.validation
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"discovery + confirmation + validation must be 1, got {total:g}")
        return self

    def fractions(self) -> dict[str, float]:
        return {
            "discovery": self.discovery,
            "confirmation": self.confirmation,
            "validation": self.validation,
        }


class NuisanceParams(_Section):
    n_estimators: int = Field(120, ge=10, le=5000)
    learning_rate: float = Field(0.1, gt=0, le=1)
    max_depth: int = Field(4, ge=1, le=12)
    min_child_weight: float = Field(5.0, ge=0)
    max_bin: int = Field(64, ge=8, le=1024)


class HypothesisParams(_Section):
    split: SplitParams = SplitParams()
    horizon_months: float = Field(12.0, gt=0, le=120, description="RMST horizon for PFS effects")
    min_effect_response: float = Field(0.05, ge=0, le=1, description="risk difference")
    min_effect_pfs_months: float = Field(0.5, ge=0, le=60, description="RMST difference")
    discovery_p: float = Field(0.01, gt=0, lt=1, description="screening threshold")
    q: float = Field(0.05, gt=0, lt=1, description="BH false discovery rate at confirmation")
    min_arm_rows: int = Field(30, ge=5, description="rows per arm in a subgroup, per part")
    min_drug_rows: int = Field(50, ge=5, description="a drug's rows before it is compared")
    max_candidates: int = Field(60, ge=1, le=1000)
    max_per_comparison: int = Field(4, ge=1, le=100, description="candidates per drug and group")
    pairs: bool = True
    n_splits: int = Field(3, ge=2, le=10, description="cross-fitting folds")
    nuisance: NuisanceParams = NuisanceParams()
    tuning_trials: int = Field(8, ge=0, le=500, description="optuna trials per response model")
    tuning_timeout_s: float | None = Field(
        None,
        gt=0,
        description="optional optuna time budget per model, seconds: with one, the trials "
        "run depend on the machine's speed (opt-in; the budget is tuning_trials)",
    )
    shap_rows: int = Field(2000, ge=50, description="rows explained per model (exact TreeSHAP)")
    device: Literal["auto", "cpu", "cuda"] = "auto"


class ValidationParams(_Section):
    top_k: int = Field(5, ge=1, le=100, description="confirmed hypotheses to validate")
    target_power: float = Field(0.8, gt=0, lt=1)
    alpha: float = Field(0.025, gt=0, lt=0.5, description="one-sided")
    accrual_months: float = Field(24.0, gt=0, le=240)
    followup_months: float = Field(12.0, ge=0, le=240)
    dropout_per_year: float = Field(0.05, ge=0, le=2)
    replicates: int = Field(4000, ge=200, le=1_000_000, description="simulated trials")
    adaptive_trials: int = Field(1000, ge=100, le=100_000)
    max_patients: int = Field(2000, ge=10, description="largest feasible trial")
    horizon_months: float = Field(12.0, gt=0, le=120)
    min_arm_rows: int = Field(20, ge=5)
    seed: int = Field(7, ge=0)


#: The smallest ``privacy.min_cell_count`` accepted without ``allow_small_cells``.
SMALL_CELL_FLOOR = 5


class PrivacyParams(_Section):
    min_cell_count: int = Field(
        DEFAULT_MIN_CELL, ge=1, le=1000, description="suppress counts below this"
    )
    allow_small_cells: bool = Field(
        False, description=f"accept a min_cell_count below {SMALL_CELL_FLOOR}"
    )
    k: int = Field(
        DEFAULT_K,
        ge=2,
        le=1000,
        strict=True,
        description="k-anonymity of a patient-level table that leaves the platform: every "
        "combination of 5-year age band, sex, population and hospital holds >= k rows",
    )

    @model_validator(mode="after")
    def _small_cells(self) -> PrivacyParams:
        if self.min_cell_count >= SMALL_CELL_FLOOR:
            return self
        if not self.allow_small_cells:
            raise ValueError(
                f"min_cell_count is {self.min_cell_count}, below {SMALL_CELL_FLOOR}: counts "
                f"from {self.min_cell_count} to {SMALL_CELL_FLOOR - 1} would appear in "
                "reports and metrics, small enough to single out patients; expected "
                f"privacy.min_cell_count >= {SMALL_CELL_FLOOR} (default {DEFAULT_MIN_CELL}), "
                "or privacy.allow_small_cells: true to accept this on purpose"
            )
        _warn(
            f"privacy.min_cell_count is {self.min_cell_count}, below {SMALL_CELL_FLOOR} "
            "(privacy.allow_small_cells: true): counts this small appear in reports"
        )
        return self


class FederatedComputeParams(_Section):
    address: str = Field("127.0.0.1", description="host the sites connect to (loopback)")
    port: int = Field(0, ge=0, le=65535, description="0: the OS picks a free port")
    tls: bool = True
    allow_insecure: bool = Field(False, description="accept tls: false")
    allow_non_loopback: bool = Field(False, description="accept an address off loopback")
    tls_dir: str | None = Field(None, description="certificates; None: throw-away per run")
    timeout_s: float = Field(3600.0, gt=0, le=86400)
    heartbeat_timeout_s: float = Field(30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _secure(self) -> FederatedComputeParams:
        # the same rules as compute.federated.server.FederatedConfig / federated_config
        if not self.tls and not self.allow_insecure:
            raise ValueError(
                "compute.federated.tls is false but compute.federated.allow_insecure is not "
                "true: without TLS any process that can reach the federated server's port "
                "(XGBoost's server listens on every interface) can join the federation as a "
                "site and read the gradient histograms; expected tls: true (the default, "
                "with throw-away certificates unless tls_dir is set), or allow_insecure: "
                "true to run without TLS on purpose"
            )
        if not is_loopback(self.address) and not self.allow_non_loopback:
            raise ValueError(
                f"compute.federated.address is {self.address!r}, not a loopback address: "
                "every site runs on this machine and connects over loopback; expected "
                "127.0.0.1 (the default), or compute.federated.allow_non_loopback: true"
            )
        return self


class ComputeParams(_Section):
    threads: int = Field(2, ge=1, le=512)
    training: Literal["pooled", "federated", "dask"] = Field(
        "pooled", description="where every model of both tracks trains"
    )
    cluster: str = Field("local", pattern=r"^(local|(tcp|tls)://\S+:\d+)$")
    federated: FederatedComputeParams = FederatedComputeParams()


class Params(_Section):
    cohort: CohortParams = CohortParams()
    features: FeaturesParams = FeaturesParams()
    hypothesis: HypothesisParams = HypothesisParams()
    validation: ValidationParams = ValidationParams()
    privacy: PrivacyParams = PrivacyParams()
    compute: ComputeParams = ComputeParams()


STAGES = tuple(Params.model_fields)


def read_params(path: str | Path | None = None) -> Params:
    """Read and validate the whole parameter file (default: the project's params.yaml)."""
    p = resolve(path) if path is not None else resolve("params.yaml")
    # errors name the file as users know it (params.yaml: section.key: ...)
    return load_yaml_model(
        p, Params, "parameter file", lambda err, _: format_validation_error(err, p.name)
    )


def load_params(stage: str, path: str | Path | None = None) -> BaseModel:
    """Validate the whole file, then return only ``stage``'s section."""
    if stage not in STAGES:
        raise ConfigError(f"unknown params section {stage!r}; expected one of {list(STAGES)}")
    return getattr(read_params(path), stage)
