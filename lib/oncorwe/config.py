"""``params.yaml`` -> typed, validated configuration.

Every section is a pydantic model that forbids unknown keys; a wrong type or an
out-of-range value stops with an error naming ``params.yaml``, the dotted key and what is
allowed. A stage asks for its own section only (:func:`load_params`), and the keys it may
read are the ones ``dvc.yaml`` declares for it (checked in the tests).

Example
-------
>>> from oncorwe.config import Params
>>> Params.model_validate({"cohort": {"profile": "tiny"}}).cohort.n_patients
3000
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from oncorwe.errors import ConfigError, format_validation_error
from oncorwe.paths import resolve

Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    pseudonym_key_env: Name = "ONCORWE_PSEUDONYM_KEY"
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

    def feature_config(self):
        from oncorwe.features.build import FeatureConfig

        return FeatureConfig(
            biomarkers=dict(self.biomarkers),
            labs=tuple(self.labs),
            comorbidities=tuple(self.comorbidities),
            cancers=tuple(self.cancers),
            standard_of_care={c: dict(v) for c, v in self.standard_of_care.items()},
            lookback_days=self.lookback_days,
            toxicity_window_days=self.toxicity_window_days,
            pseudonym_key_env=self.pseudonym_key_env,
        )


class PrivacyParams(_Section):
    min_cell_count: int = Field(11, ge=1, le=1000, description="suppress counts below this")


class ComputeParams(_Section):
    threads: int = Field(2, ge=1, le=512)


class Params(_Section):
    cohort: CohortParams = CohortParams()
    features: FeaturesParams = FeaturesParams()
    privacy: PrivacyParams = PrivacyParams()
    compute: ComputeParams = ComputeParams()


STAGES = tuple(Params.model_fields)


def read_params(path: str | Path | None = None) -> Params:
    """Read and validate the whole parameter file (default: the project's params.yaml)."""
    p = resolve(path) if path is not None else resolve("params.yaml")
    if not p.is_file():
        raise ConfigError(f"parameter file {p} does not exist")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, p.name)) from err


def load_params(stage: str, path: str | Path | None = None) -> BaseModel:
    """Validate the whole file, then return only ``stage``'s section."""
    if stage not in STAGES:
        raise ConfigError(f"unknown params section {stage!r}; expected one of {list(STAGES)}")
    return getattr(read_params(path), stage)
