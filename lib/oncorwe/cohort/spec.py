"""The synthetic world's spec: a YAML file, validated into typed objects.

The README documents every field; ``specs/default.yaml`` is the shipped realistic world.
Every check names the spec file and the key that failed, and what was expected.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from oncorwe.core.errors import load_yaml_model
from oncorwe.core.rules import CATEGORICAL_FIELDS, NUMERIC_FIELDS, Condition

Prob = Annotated[float, Field(ge=0.0, le=1.0)]
PosFloat = Annotated[float, Field(gt=0.0)]
PerPopulation = Prob | dict[str, Prob]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Study(_Strict):
    start: dt.date = Field(description="first diagnosis date of the study period")
    end: dt.date = Field(description="administrative end of follow-up (data cut)")

    @model_validator(mode="after")
    def _ordered(self) -> Study:
        if (self.end - self.start).days < 365:
            raise ValueError("study.end must be at least one year after study.start")
        return self


class Population(_Strict):
    share: Prob
    pfs_log_hazard: float = Field(0.0, description="prognostic shift of PFS log-hazard")
    response_log_odds: float = 0.0


class Hospitals(_Strict):
    count: int = Field(ge=1, le=5000)
    size_sigma: float = Field(1.0, ge=0.0, le=3.0, description="lognormal sd of site size")
    population_affinity_sd: float = Field(
        0.8, ge=0.0, le=3.0, description="sd of site x population log-affinity (diversity)"
    )
    practice_sd: float = Field(0.5, ge=0.0, le=3.0, description="sd of site drug preference")
    quality_sd: float = Field(0.6, ge=0.0, le=3.0, description="sd of site data quality")
    outcome_sd: float = Field(0.1, ge=0.0, le=1.0, description="sd of site PFS log-hazard")
    sponsored_share: Prob = Field(0.2, description="share of sites with a sponsor's program")
    lab_missing_rate: Prob = 0.1
    ltfu_per_year: float = Field(0.05, ge=0.0, le=2.0, description="loss-to-follow-up hazard")
    death_capture: Prob = Field(0.99, description="share of deaths linked from the registry")


class CancerBiomarker(_Strict):
    prevalence: PerPopulation | None = Field(None, description="binary marker: P(positive)")
    tiers: list[Prob] | dict[str, list[Prob]] | None = Field(
        None, description="TPS marker: P(>=50), P(1-49), P(<1)"
    )
    test_rate: Prob = Field(description="P(tested by diagnosis), average site")
    later_test_rate: Prob = Field(0.3, description="P(tested before a later line if not yet)")
    mnar: float = Field(
        0.0, ge=-5, le=5, description="log-odds shift of testing when truly positive"
    )

    def value_for(self, population: str) -> Any:
        v = self.prevalence if self.prevalence is not None else self.tiers
        if isinstance(v, dict):
            return v.get(population, v.get("default"))
        return v


class Cancer(_Strict):
    share: Prob
    stage: dict[Literal["I", "II", "III", "IV"], Prob]
    female_share: Prob = 0.4
    age_mean: float = Field(65.0, ge=20, le=95)
    age_sd: float = Field(10.0, gt=0, le=30)
    standard_of_care: dict[int, str] = Field(description="line -> standard drug from that line")
    response_rate: Prob = Field(description="standard-of-care ORR, first line, average patient")
    median_pfs_months: PosFloat
    toxicity_rate: Prob
    median_post_progression_months: PosFloat
    biomarkers: dict[str, CancerBiomarker] = Field(default_factory=dict)
    exclusive: list[list[str]] = Field(default_factory=list)

    def soc_for_line(self, line: int) -> str:
        keys = sorted(k for k in self.standard_of_care if k <= line)
        return self.standard_of_care[keys[-1]]


class LineRange(_Strict):
    min: int = Field(1, ge=1)
    max: int = Field(9, ge=1)


class Drug(_Strict):
    drug_class: str = Field(alias="class")
    indications: dict[str, dict[str, Any]] = Field(
        description="cancer -> condition on observed markers that makes the drug indicated"
    )
    lines: LineRange = LineRange()
    preference: float = Field(0.0, description="log-odds of choice vs standard, indicated")
    ecog: float = Field(0.0, description="log-odds of choice per ECOG point")
    sponsor_boost: float = Field(0.0, description="log-odds added at sponsored sites")


class TreatmentPolicy(_Strict):
    positivity_floor: float = Field(
        0.02, ge=0.0, le=0.2, description="least probability of each eligible drug"
    )
    indication_boost: float = Field(2.5, description="log-odds when the indication is met")
    off_indication: float = Field(-2.5, description="log-odds when a marker indication is unmet")
    repeat_penalty: float = Field(-2.0, description="log-odds for a drug already received")
    stage_iv: float = Field(0.3, description="log-odds of a non-standard drug in stage IV")


class Prognosis(_Strict):
    ecog: float = 0.35
    albumin: float = -0.25
    ldh: float = 0.3
    nlr: float = 0.2
    stage_iv: float = 0.4
    age: float = 0.08
    comorbidity: float = 0.1


class Outcomes(_Strict):
    weibull_shape: float = Field(1.1, ge=0.3, le=4.0)
    max_lines: int = Field(3, ge=1, le=6)
    next_line_prob: list[Prob] = Field(default_factory=lambda: [0.7, 0.55, 0.4, 0.3, 0.2])
    later_line_log_hazard: float = Field(0.25, description="PFS log-hazard per extra line")
    later_line_response_log_odds: float = Field(-0.35, description="per extra line")
    death_first_share: Prob = Field(0.15, description="share of PFS events that are deaths")
    response_prognosis_scale: float = Field(1.0, ge=0, le=5)
    toxicity_age: float = Field(0.15, description="toxicity log-odds per 10 years")
    toxicity_ecog: float = 0.2
    toxicity_creatinine: float = 0.3
    prognosis: Prognosis = Prognosis()


class Comorbidity(_Strict):
    prevalence: Prob
    age_log_odds_per_10y: float = 0.3


class PlantedEffect(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    drug: str
    when: dict[str, Any] = Field(default_factory=dict)
    response_log_odds: float = Field(0.0, ge=-5, le=5)
    pfs_log_hazard: float = Field(0.0, ge=-5, le=5)
    toxicity_log_odds: float = Field(0.0, ge=-5, le=5)

    def condition(self) -> Condition:
        return Condition.parse(self.when)


class Spec(_Strict):
    name: str
    study: Study
    populations: dict[str, Population]
    hospitals: Hospitals
    biomarkers: dict[str, Literal["binary", "tps"]]
    cancers: dict[str, Cancer]
    drugs: dict[str, Drug]
    comorbidities: dict[str, Comorbidity] = Field(default_factory=dict)
    treatment_policy: TreatmentPolicy = TreatmentPolicy()
    outcomes: Outcomes = Outcomes()
    planted_effects: list[PlantedEffect] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        problems: list[str] = []
        for label, shares in (
            ("populations", {k: p.share for k, p in self.populations.items()}),
            ("cancers", {k: c.share for k, c in self.cancers.items()}),
        ):
            total = sum(shares.values())
            if abs(total - 1.0) > 0.01:
                problems.append(f"{label}: shares must sum to 1, they sum to {total:.4f}")
        pops = set(self.populations)
        for cname, cancer in self.cancers.items():
            where = f"cancers.{cname}"
            if abs(sum(cancer.stage.values()) - 1.0) > 0.01:
                problems.append(f"{where}.stage: probabilities must sum to 1")
            if 1 not in cancer.standard_of_care:
                problems.append(f"{where}.standard_of_care: needs an entry for line 1")
            for line, drug in cancer.standard_of_care.items():
                if drug not in self.drugs:
                    problems.append(f"{where}.standard_of_care.{line}: unknown drug {drug!r}")
                elif cname not in self.drugs[drug].indications:
                    problems.append(
                        f"{where}.standard_of_care.{line}: drug {drug!r} lists no indication "
                        f"for {cname!r}"
                    )
            for bname, bm in cancer.biomarkers.items():
                bw = f"{where}.biomarkers.{bname}"
                kind = self.biomarkers.get(bname)
                if kind is None:
                    problems.append(f"{bw}: not declared under 'biomarkers'")
                    continue
                if kind == "binary" and (bm.prevalence is None or bm.tiers is not None):
                    problems.append(f"{bw}: a binary marker takes 'prevalence' (not 'tiers')")
                if kind == "tps" and (bm.tiers is None or bm.prevalence is not None):
                    problems.append(f"{bw}: a TPS marker takes 'tiers' (not 'prevalence')")
                raw = bm.prevalence if bm.prevalence is not None else bm.tiers
                if isinstance(raw, dict):
                    unknown = set(raw) - pops - {"default"}
                    if unknown:
                        problems.append(f"{bw}: unknown populations {sorted(unknown)}")
                    if "default" not in raw and pops - set(raw):
                        problems.append(
                            f"{bw}: no value for populations {sorted(pops - set(raw))} "
                            "and no 'default'"
                        )
                for pop in pops:
                    v = bm.value_for(pop)
                    if kind == "tps" and v is not None:
                        if len(v) != 3 or abs(sum(v) - 1.0) > 0.01:
                            problems.append(
                                f"{bw}: tiers for {pop} must be 3 probabilities summing to 1"
                            )
            for group in cancer.exclusive:
                for b in group:
                    if b not in cancer.biomarkers or self.biomarkers.get(b) != "binary":
                        problems.append(
                            f"{where}.exclusive: {b!r} is not a binary marker of {cname}"
                        )
                if all(b in cancer.biomarkers for b in group):
                    for pop in pops:
                        s = sum(cancer.biomarkers[b].value_for(pop) or 0 for b in group)
                        if s > 1.0:
                            problems.append(
                                f"{where}.exclusive: prevalences of {group} sum to "
                                f"{s:.3f} > 1 for {pop}"
                            )
        for dname, drug in self.drugs.items():
            for cname, cond in drug.indications.items():
                if cname not in self.cancers:
                    problems.append(f"drugs.{dname}.indications: unknown cancer {cname!r}")
                problems += self._check_condition(cond, f"drugs.{dname}.indications.{cname}")
            if drug.lines.min > drug.lines.max:
                problems.append(f"drugs.{dname}.lines: min exceeds max")
        names = [e.name for e in self.planted_effects]
        if len(set(names)) != len(names):
            problems.append("planted_effects: names must be unique")
        for i, eff in enumerate(self.planted_effects):
            where = f"planted_effects[{i}] ({eff.name})"
            if eff.drug not in self.drugs:
                problems.append(f"{where}.drug: unknown drug {eff.drug!r}")
            problems += self._check_condition(eff.when, f"{where}.when")
        if len(self.outcomes.next_line_prob) < self.outcomes.max_lines - 1:
            problems.append("outcomes.next_line_prob: needs one probability per later line")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _check_condition(self, cond: dict[str, Any], where: str) -> list[str]:
        try:
            parsed = Condition.parse(cond)
        except ValueError as err:
            return [f"{where}: {err}"]
        out = []
        for clause in parsed.clauses:
            f = clause.field
            if f in CATEGORICAL_FIELDS or f in NUMERIC_FIELDS:
                known = {
                    "cancer": set(self.cancers),
                    "population": set(self.populations),
                    "stage": {"I", "II", "III", "IV"},
                    "sex": {"F", "M"},
                }.get(f)
                if known is not None and clause.values and set(clause.values) - known:
                    out.append(f"{where}: unknown {f} {sorted(set(clause.values) - known)}")
            elif f not in self.biomarkers:
                out.append(f"{where}: unknown field or biomarker {f!r}")
        return out

    # convenience views -------------------------------------------------------
    def drugs_for(self, cancer: str, line: int) -> list[str]:
        """Drugs that a line of ``cancer`` may receive (standard of care first)."""
        soc = self.cancers[cancer].soc_for_line(line)
        others = [
            d
            for d, drug in self.drugs.items()
            if cancer in drug.indications
            and drug.lines.min <= line <= drug.lines.max
            and d != soc
            and d not in self.cancers[cancer].standard_of_care.values()
        ]
        return [soc, *sorted(others)]


DEFAULT_SPEC = "default"


def default_spec_path() -> Path:
    """Path of the shipped default spec."""
    return Path(str(resources.files("oncorwe.cohort") / "specs" / "default.yaml"))


def load_spec(path: str | Path | None = None) -> Spec:
    """Read and validate a spec file (``None`` or ``"default"``: the shipped one)."""
    p = default_spec_path() if path in (None, DEFAULT_SPEC) else Path(path)
    return load_yaml_model(p, Spec, "spec file")
