"""The synthetic oncology world: OMOP-CDM-shaped tables with a known ground truth.

One call of :func:`generate` draws ``n_patients`` patients from a :class:`~.spec.Spec` and
writes

``OUT/omop/``
    ``person``, ``care_site``, ``observation_period``, ``condition_occurrence``,
    ``measurement``, ``drug_exposure``, ``episode`` (treatment lines and progression),
    ``observation`` (best response, grade >= 3 adverse events) and ``death`` as Parquet.
``OUT/truth/``
    what no model may read: ``planted_effects.json``, ``lines.parquet`` (true biomarker
    status and rule membership per line) and ``potential_outcomes.parquet`` (per line and
    every drug the line could have received: treatment probability, response
    probability, PFS log-hazard, toxicity probability).

The outcome model, per line *i* and drug *d* (the standard of care *s* of the line's
cancer type has no planted shift):

* response: ``logit P(R=1) = logit(ORR_c) - PI_i + beta_line (k-1) + sum_rules a``;
* PFS: Weibull with shape ``kappa``, ``S(t) = exp(-exp(eta) t^kappa)`` (t in months),
  ``eta = log(ln2 / m_c^kappa) + PI_i + gamma_line (k-1) + u_site + sum_rules b``, so a
  rule's ``b`` is a conditional log-hazard ratio against the standard of care;
* toxicity: ``logit P(T=1) = logit(tox_c) + age, ECOG, creatinine terms + sum_rules c``;

where ``PI`` is a prognostic index of ECOG, albumin, LDH, NLR, stage, age and
comorbidities at the line start. Treatment follows a multinomial-logit policy over the
*observed* (tested) markers, ECOG, stage, line, the site's practice style and sponsor
programs (confounding by indication), with a positivity floor. Patients are drawn in
fixed-size chunks with their own seeded streams, so the output is byte-identical for the
same spec, seed and size, and memory stays flat up to millions of patients.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from scipy.special import expit, logit

from oncorwe.cohort.spec import Spec
from oncorwe.core.io import atomic_path
from oncorwe.core.rules import Condition, biomarker_column

# the two folders a world is written as: what an analysis may read, and what only the
# evaluation of its recovery may (the planted truth)
WORLD_FOLDERS = ("omop", "truth")
DAYS_PER_MONTH = 30.4375
STAGES = np.array(["I", "II", "III", "IV"])
EPOCH = np.datetime64("1970-01-01", "D")
CHUNK_SIZE = 100_000
LABS = ("ECOG", "albumin", "LDH", "NLR", "creatinine")
LAB_UNITS = {
    "ECOG": "score",
    "albumin": "g/dL",
    "LDH": "U/L",
    "NLR": "ratio",
    "creatinine": "mg/dL",
}

OMOP_TABLES = (
    "person",
    "care_site",
    "observation_period",
    "condition_occurrence",
    "measurement",
    "drug_exposure",
    "episode",
    "observation",
    "death",
)

LINE_EPISODE = "treatment line"
PROGRESSION_EPISODE = "disease progression"
RESPONSE_OBS = "best overall response"
TOXICITY_OBS = "grade 3+ adverse event"


def _days(date) -> int:
    return int((np.datetime64(date, "D") - EPOCH).astype(int))


def _date_array(days: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.int32()).cast(pa.date32())


# ----------------------------------------------------------------------------- schemas
def _schema(*cols: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(n, t) for n, t in cols])


SCHEMAS: dict[str, pa.Schema] = {
    "person": _schema(
        ("person_id", pa.int64()),
        ("gender_source_value", pa.string()),
        ("year_of_birth", pa.int32()),
        ("month_of_birth", pa.int32()),
        ("day_of_birth", pa.int32()),
        ("race_source_value", pa.string()),
        ("care_site_id", pa.int64()),
    ),
    "care_site": _schema(
        ("care_site_id", pa.int64()),
        ("care_site_name", pa.string()),
        ("place_of_service_source_value", pa.string()),
    ),
    "observation_period": _schema(
        ("observation_period_id", pa.int64()),
        ("person_id", pa.int64()),
        ("observation_period_start_date", pa.date32()),
        ("observation_period_end_date", pa.date32()),
    ),
    "condition_occurrence": _schema(
        ("condition_occurrence_id", pa.int64()),
        ("person_id", pa.int64()),
        ("condition_start_date", pa.date32()),
        ("condition_source_value", pa.string()),
        ("condition_status_source_value", pa.string()),
    ),
    "measurement": _schema(
        ("measurement_id", pa.int64()),
        ("person_id", pa.int64()),
        ("measurement_date", pa.date32()),
        ("measurement_source_value", pa.string()),
        ("value_as_number", pa.float64()),
        ("value_source_value", pa.string()),
        ("unit_source_value", pa.string()),
    ),
    "drug_exposure": _schema(
        ("drug_exposure_id", pa.int64()),
        ("person_id", pa.int64()),
        ("drug_source_value", pa.string()),
        ("drug_exposure_start_date", pa.date32()),
        ("drug_exposure_end_date", pa.date32()),
    ),
    "episode": _schema(
        ("episode_id", pa.int64()),
        ("person_id", pa.int64()),
        ("episode_source_value", pa.string()),
        ("episode_number", pa.int32()),
        ("episode_start_date", pa.date32()),
        ("episode_end_date", pa.date32()),
        ("episode_parent_id", pa.int64()),
        ("episode_object_source_value", pa.string()),
    ),
    "observation": _schema(
        ("observation_id", pa.int64()),
        ("person_id", pa.int64()),
        ("observation_date", pa.date32()),
        ("observation_source_value", pa.string()),
        ("value_as_string", pa.string()),
        ("observation_event_id", pa.int64()),
    ),
    "death": _schema(
        ("person_id", pa.int64()),
        ("death_date", pa.date32()),
    ),
}


@dataclass
class _World:
    """Site-level draws shared by all chunks (depend on the seed only)."""

    n_sites: int
    site_given_pop: np.ndarray  # (n_pop, n_sites)
    practice: np.ndarray  # (n_sites, n_drugs)
    quality: np.ndarray  # (n_sites,)
    sponsored: np.ndarray  # (n_sites,) bool
    outcome: np.ndarray  # (n_sites,)
    size: np.ndarray  # (n_sites,)


@dataclass
class _Patients:
    """One chunk's patients as drawn at diagnosis (arrays of length ``n``, row ``i`` is
    ``person_id[i]``)."""

    person_id: np.ndarray  # int64
    pop: np.ndarray  # population index
    site: np.ndarray  # care-site index (care_site_id - 1)
    cancer: np.ndarray  # cancer-type index
    stage: np.ndarray  # index into STAGES (3 = stage IV)
    female: np.ndarray  # bool
    age: np.ndarray  # years at diagnosis
    dx: np.ndarray  # diagnosis day (days since 1970-01-01)
    first_start: np.ndarray  # first line's start day
    obs_end: np.ndarray  # loss to follow-up or study end, whichever comes first
    death_captured: np.ndarray  # bool: a death would reach the death table
    sponsored: np.ndarray  # bool: the patient's site runs sponsor programs
    quality: np.ndarray  # the site's data quality (more testing, fewer missing labs)
    lab_missing: np.ndarray  # probability that one baseline lab is not recorded
    n_comorb: np.ndarray  # number of comorbidities at diagnosis (filled by comorbidities)
    ckd: np.ndarray  # bool: chronic kidney disease at diagnosis (likewise)


@dataclass
class _Biomarkers:
    """True biomarker status and when (if ever) each marker is tested, per patient."""

    true: dict[str, np.ndarray]  # marker -> value (NaN where the cancer has no such marker)
    later_rate: dict[str, np.ndarray]  # marker -> P(first test before a later line)
    test_date: dict[str, np.ndarray]  # marker -> test day (int64 max: not tested yet)


@dataclass
class _Line:
    """The patients who start line ``k`` of one chunk, as a clinician sees them then."""

    k: int
    ai: np.ndarray  # chunk rows of the patients starting the line (length m)
    start: np.ndarray  # line start day
    labs: dict[str, np.ndarray]  # LABS name -> baseline value (recorded or not)
    true_frame: pd.DataFrame  # true biomarkers: what the planted rules read
    obs_frame: pd.DataFrame  # tested biomarkers only: what the treatment policy reads
    pi: np.ndarray  # prognostic index
    eta0: np.ndarray  # standard-of-care PFS log-hazard (Weibull eta)
    r0: np.ndarray  # standard-of-care response log-odds
    t0: np.ndarray  # standard-of-care toxicity log-odds


@dataclass
class _Fate:
    """What happens on one line with the drug received (arrays of length m)."""

    resp: np.ndarray  # bool: best overall response CR/PR
    tox: np.ndarray  # bool: a grade >= 3 adverse event
    t_days: np.ndarray  # days from the line start to the PFS event
    event_day: np.ndarray  # day of the PFS event
    is_death: np.ndarray  # bool: the PFS event is death (not progression)
    dies: np.ndarray  # day of death, if nothing else intervenes


@dataclass
class GenerateSummary:
    """What one generation wrote (counts only; no patient-level data)."""

    patients: int
    lines: int
    rows: dict[str, int] = field(default_factory=dict)
    drug_lines: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "patients": self.patients,
            "lines": self.lines,
            "rows": dict(sorted(self.rows.items())),
            "drug_lines": dict(sorted(self.drug_lines.items())),
        }


class _Rows:
    """Column buffers of one table for one chunk."""

    def __init__(self, name: str):
        self.name = name
        self.cols: dict[str, list[np.ndarray]] = {f.name: [] for f in SCHEMAS[name]}

    def add(self, **cols) -> None:
        missing = set(self.cols) - set(cols)
        if missing:
            raise KeyError(f"table {self.name}: columns {sorted(missing)} missing")
        arrays = {k: np.asarray(v) for k, v in cols.items()}
        n = max((len(v) for v in arrays.values() if v.ndim), default=0)
        for k, v in arrays.items():
            self.cols[k].append(np.repeat(v, n) if v.ndim == 0 else v)

    def table(self) -> pa.Table:
        arrays = []
        for f in SCHEMAS[self.name]:
            parts = self.cols[f.name]
            v = np.concatenate(parts) if parts else np.array([])
            if f.type == pa.date32():
                arrays.append(_date_array(v.astype(np.int64)))
            elif f.type == pa.string():
                arrays.append(pa.array(v.astype(object), type=pa.string()))
            else:
                arr = pa.array(v, from_pandas=True)
                arrays.append(arr.cast(f.type))
        return pa.Table.from_arrays(arrays, schema=SCHEMAS[self.name])


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category per row of ``probs`` (n, k) by inverse CDF."""
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0 + 1e-12
    u = rng.random(len(probs))[:, None]
    return (u > cum).sum(axis=1)


def _build_world(spec: Spec, seed: int) -> _World:
    rng = np.random.default_rng([seed, 0])
    h = spec.hospitals
    n_sites = h.count
    n_pop = len(spec.populations)
    size = rng.lognormal(0.0, h.size_sigma, n_sites)
    affinity = np.exp(rng.normal(0.0, h.population_affinity_sd, (n_pop, n_sites)))
    weight = size[None, :] * affinity
    site_given_pop = weight / weight.sum(axis=1, keepdims=True)
    practice = rng.normal(0.0, h.practice_sd, (n_sites, len(spec.drugs)))
    quality = rng.normal(0.0, h.quality_sd, n_sites)
    sponsored = rng.random(n_sites) < h.sponsored_share
    outcome = rng.normal(0.0, h.outcome_sd, n_sites)
    return _World(n_sites, site_given_pop, practice, quality, sponsored, outcome, size)


class _Generator:
    def __init__(self, spec: Spec, seed: int):
        self.spec = spec
        self.seed = seed
        self.pops = list(spec.populations)
        self.cancers = list(spec.cancers)
        self.cobj = [spec.cancers[c] for c in self.cancers]
        self.stage_p = np.array([[c.stage.get(s, 0.0) for s in STAGES] for c in self.cobj])
        self.drugs = list(spec.drugs)
        self.drug_idx = {d: i for i, d in enumerate(self.drugs)}
        self.markers = list(spec.biomarkers)
        self.world = _build_world(spec, seed)
        self.start = _days(spec.study.start)
        self.end = _days(spec.study.end)
        self.rules = [(e, e.condition()) for e in spec.planted_effects]
        self.counters = dict.fromkeys(("measurement", "condition", "observation"), 0)

    # ------------------------------------------------------------------ care sites
    def care_site_table(self) -> pa.Table:
        w = self.world
        rows = _Rows("care_site")
        ids = np.arange(1, w.n_sites + 1)
        big = w.size >= np.quantile(w.size, 0.75)
        rows.add(
            care_site_id=ids,
            care_site_name=np.array([f"H{i:03d}" for i in ids]),
            place_of_service_source_value=np.where(big, "tertiary hospital", "general hospital"),
        )
        return rows.table()

    # ------------------------------------------------------------------ one chunk
    def chunk(self, index: int, offset: int, n: int) -> tuple[dict[str, pa.Table], dict]:
        """Draw the patients ``offset + 1 .. offset + n`` and every OMOP row they produce.

        Each chunk has its own stream, ``default_rng([seed, 1, index])``, consumed by the
        steps below in this order (the order is part of the seed's meaning: reordering
        them changes every world). The helpers take that stream as ``rng`` and the
        chunk's row buffers (table name -> :class:`_Rows`) as ``out``.

        Parameters
        ----------
        index : int
            Chunk number (0, 1, ...): selects the chunk's random stream.
        offset : int
            Patients drawn by earlier chunks; person ids start at ``offset + 1``.
        n : int
            Patients in this chunk.

        Returns
        -------
        tables : dict of str to pyarrow.Table
            This chunk's rows of every OMOP table but ``care_site``.
        extra : dict
            ``truth`` (frames ``lines`` and ``potential_outcomes``), ``lines`` (count)
            and ``drug_lines`` (lines per drug).
        """
        rng = np.random.default_rng([self.seed, 1, index])
        out = {name: _Rows(name) for name in SCHEMAS if name != "care_site"}
        pt = self._draw_persons(rng, out, offset, n)
        self._draw_comorbidities(rng, out, pt, offset)
        bm = self._draw_biomarkers(rng, pt)
        death, last_start, line_truth, po_truth, drug_lines = self._treat_lines(rng, out, pt, bm)
        period_end = np.minimum(pt.obs_end, death)
        self._record_biomarker_tests(rng, out, pt, bm, last_start, period_end)
        self._record_death_and_follow_up(out, pt, death, period_end)
        tables = {name: rows.table() for name, rows in out.items()}
        truth = {
            "lines": pd.concat(line_truth, ignore_index=True),
            "potential_outcomes": pd.concat(po_truth, ignore_index=True),
        }
        stats = {"lines": len(truth["lines"]), "drug_lines": drug_lines}
        return tables, {"truth": truth, **stats}

    # ------------------------------------------------------------------ who
    def _draw_persons(self, rng, out, offset: int, n: int) -> _Patients:
        """Draw who the patients are and how long they are followed; write ``person``.

        Population, then site given population (sites attract populations unevenly),
        cancer type, stage, sex, age, diagnosis day and birth date; then the first line's
        start and the end of follow-up: loss to follow-up (exponential from the first
        line, less frequent at better sites) or the study end.

        ``n_comorb`` and ``ckd`` of the returned :class:`_Patients` are still zero
        (:meth:`_draw_comorbidities` fills them).
        """
        spec, w, cobj = self.spec, self.world, self.cobj
        person_id = offset + np.arange(1, n + 1, dtype=np.int64)
        pop_share = np.array([p.share for p in spec.populations.values()])
        pop = rng.choice(len(self.pops), size=n, p=pop_share / pop_share.sum())
        site = np.empty(n, dtype=np.int64)
        for j in range(len(self.pops)):
            m = pop == j
            site[m] = rng.choice(w.n_sites, size=int(m.sum()), p=w.site_given_pop[j])
        c_share = np.array([c.share for c in spec.cancers.values()])
        cancer = rng.choice(len(self.cancers), size=n, p=c_share / c_share.sum())
        stage = _categorical(rng, self.stage_p[cancer])
        female = rng.random(n) < np.array([c.female_share for c in cobj])[cancer]
        age = np.clip(
            rng.normal(
                np.array([c.age_mean for c in cobj])[cancer],
                np.array([c.age_sd for c in cobj])[cancer],
            ),
            18,
            95,
        )
        dx = self.start + rng.integers(0, self.end - self.start - 120, n)
        birth = dx - np.round(age * 365.25).astype(np.int64) - rng.integers(0, 365, n)
        birth_dt = (EPOCH + birth.astype("timedelta64[D]")).astype("datetime64[D]")
        by = birth_dt.astype("datetime64[Y]").astype(int) + 1970
        bm_ = (birth_dt.astype("datetime64[M]").astype(int) % 12) + 1
        bd = (birth_dt - birth_dt.astype("datetime64[M]").astype("datetime64[D]")).astype(int) + 1
        quality = w.quality[site]

        first_start = dx + rng.integers(14, 46, n)
        ltfu_rate = spec.hospitals.ltfu_per_year * np.exp(-0.5 * quality) / 365.25
        ltfu = (
            first_start
            + 1
            + np.where(ltfu_rate > 0, rng.exponential(1.0 / np.maximum(ltfu_rate, 1e-12)), np.inf)
            .clip(max=1e7)
            .astype(np.int64)
        )
        obs_end = np.minimum(ltfu, self.end)
        death_captured = rng.random(n) < spec.hospitals.death_capture

        out["person"].add(
            person_id=person_id,
            gender_source_value=np.where(female, "F", "M"),
            year_of_birth=by,
            month_of_birth=bm_,
            day_of_birth=bd,
            race_source_value=np.array(self.pops)[pop],
            care_site_id=site + 1,
        )
        return _Patients(
            person_id=person_id,
            pop=pop,
            site=site,
            cancer=cancer,
            stage=stage,
            female=female,
            age=age,
            dx=dx,
            first_start=first_start,
            obs_end=obs_end,
            death_captured=death_captured,
            sponsored=w.sponsored[site],
            quality=quality,
            lab_missing=expit(logit(spec.hospitals.lab_missing_rate) - quality),
            n_comorb=np.zeros(n),
            ckd=np.zeros(n, dtype=bool),
        )

    def _draw_comorbidities(self, rng, out, pt: _Patients, offset: int) -> None:
        """Draw comorbidities; write ``condition_occurrence``, the cancer diagnosis included.

        A comorbidity present at diagnosis (prevalence rising with age) is dated before it
        and counts into ``pt.n_comorb`` (chronic kidney disease also sets ``pt.ckd``,
        which raises creatinine). A condition first recorded after treatment starts is
        drawn too: a feature stage must never read it as a baseline covariate. The cancer
        itself is recorded on the diagnosis day with its stage. Rows after the end of
        follow-up are dropped; their ids are still used up, so ids have gaps.
        """
        spec, person_id, dx, age = self.spec, pt.person_id, pt.dx, pt.age
        n = len(person_id)
        cond_pid, cond_date, cond_val = [], [], []
        for cname, cm in spec.comorbidities.items():
            p = expit(logit(cm.prevalence) + cm.age_log_odds_per_10y * (age - 65) / 10)
            has = rng.random(n) < p
            pt.n_comorb += has
            if cname == "chronic_kidney_disease":
                pt.ckd = has
            cond_pid.append(person_id[has])
            cond_date.append(dx[has] - rng.integers(30, 3000, int(has.sum())))
            cond_val.append(np.repeat(cname, has.sum()))
            inc = (~has) & (rng.random(n) < 0.3 * cm.prevalence)
            cond_pid.append(person_id[inc])
            cond_date.append(dx[inc] + rng.integers(60, 720, int(inc.sum())))
            cond_val.append(np.repeat(cname, inc.sum()))
        cond_pid.append(person_id)
        cond_date.append(dx)
        cond_val.append(np.array(self.cancers)[pt.cancer])
        status = [np.repeat(None, len(p)) for p in cond_pid[:-1]] + [
            np.char.add("stage ", STAGES[pt.stage]).astype(object)
        ]
        cpid = np.concatenate(cond_pid)
        cdate = np.concatenate(cond_date)
        keep = cdate < pt.obs_end[cpid - offset - 1]
        cid = self.counters["condition"] + np.arange(1, len(cpid) + 1)
        self.counters["condition"] += len(cpid)
        out["condition_occurrence"].add(
            condition_occurrence_id=cid[keep],
            person_id=cpid[keep],
            condition_start_date=cdate[keep],
            condition_source_value=np.concatenate(cond_val).astype(object)[keep],
            condition_status_source_value=np.concatenate(status)[keep],
        )

    def _draw_biomarkers(self, rng, pt: _Patients) -> _Biomarkers:
        """Draw each patient's true biomarkers and whether they are tested at diagnosis.

        Per cancer type: mutually exclusive groups (at most one driver per group), then
        independent binary markers, then TPS-scored markers in three tiers (>= 50,
        1-49, 0). Testing at diagnosis is missing not at random: better sites, positive
        status (``mnar``) and stage IV raise the rate; a tested marker is dated within
        two weeks of diagnosis. The rate of a first test before a later line is kept
        for :meth:`_treat_lines`. Nothing is written here: a test becomes a
        ``measurement`` only if it falls inside follow-up.
        """
        spec, pop, dx = self.spec, pt.pop, pt.dx
        n = len(pop)
        true_bm = {b: np.full(n, np.nan) for b in self.markers}
        test_p_later = {b: np.zeros(n) for b in self.markers}
        test_date = {b: np.full(n, np.iinfo(np.int64).max, dtype=np.int64) for b in self.markers}
        for ci, c in enumerate(spec.cancers.values()):
            idx = np.flatnonzero(pt.cancer == ci)
            if not len(idx):
                continue
            grouped = {b for g in c.exclusive for b in g}
            for group in c.exclusive:
                probs = np.array(
                    [[c.biomarkers[b].value_for(p) for b in group] for p in self.pops]
                )[pop[idx]]
                probs = np.column_stack([probs, 1 - probs.sum(axis=1)])
                pick = _categorical(rng, probs)
                for gi, b in enumerate(group):
                    true_bm[b][idx] = (pick == gi).astype(float)
            for b, bm in c.biomarkers.items():
                if b in grouped:
                    continue
                if spec.biomarkers[b] == "binary":
                    prev = np.array([bm.value_for(p) for p in self.pops])[pop[idx]]
                    true_bm[b][idx] = (rng.random(len(idx)) < prev).astype(float)
                else:
                    tiers = np.array([bm.value_for(p) for p in self.pops])[pop[idx]]
                    tier = _categorical(rng, tiers)
                    val = np.where(
                        tier == 0,
                        rng.integers(50, 101, len(idx)),
                        np.where(tier == 1, rng.integers(1, 50, len(idx)), 0),
                    )
                    true_bm[b][idx] = val.astype(float)
            for b, bm in c.biomarkers.items():
                positive = true_bm[b][idx] >= (50 if spec.biomarkers[b] == "tps" else 1)
                shift = pt.quality[idx] + bm.mnar * positive + 0.3 * (pt.stage[idx] == 3)
                p_dx = expit(logit(np.clip(bm.test_rate, 1e-6, 1 - 1e-6)) + shift)
                tested = rng.random(len(idx)) < p_dx
                test_date[b][idx[tested]] = dx[idx[tested]] + rng.integers(0, 14, int(tested.sum()))
                test_p_later[b][idx] = expit(
                    logit(np.clip(bm.later_test_rate, 1e-6, 1 - 1e-6)) + shift
                )
        return _Biomarkers(true=true_bm, later_rate=test_p_later, test_date=test_date)

    # ------------------------------------------------------------------ lines of therapy
    def _treat_lines(self, rng, out, pt: _Patients, bm: _Biomarkers):
        """Follow the patients line by line, up to ``outcomes.max_lines`` lines.

        Per line ``k``, for the patients still on treatment: later biomarker tests,
        baseline labs, the line's predictors, the treatment choice, its outcomes and the
        episode, drug exposure, observation and on-treatment measurement rows, then who
        goes on to line ``k + 1``. A patient who does not go on dies at the drawn day
        (recorded only if it falls inside the study and the death is captured).

        Returns
        -------
        death : ndarray of int64, shape (n,)
            Day of death (int64 max: none drawn).
        last_start : ndarray of int64, shape (n,)
            Start day of each patient's last line.
        line_truth, po_truth : list of DataFrame
            Truth rows per line and per (line, candidate drug), one frame per step.
        drug_lines : dict of str to int
            Lines per drug received.
        """
        n = len(pt.person_id)
        z = rng.standard_normal(n)  # latent frailty: labs worsen with it, line after line
        active = np.ones(n, dtype=bool)
        start = pt.first_start.copy()
        prev_start = np.full(n, -1, dtype=np.int64)
        received = np.zeros((n, len(self.drugs)), dtype=bool)
        death = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        line_truth, po_truth = [], []
        drug_lines: dict[str, int] = {}
        for k in range(1, self.spec.outcomes.max_lines + 1):
            ai = np.flatnonzero(active)
            if not len(ai):
                break
            s_k = start[ai]
            if k > 1:
                self._draw_later_tests(rng, bm, ai, s_k, prev_start[ai])
            labs = self._baseline_labs(rng, out, pt, z, k, ai, s_k)
            true_frame, obs_frame = self._line_frames(pt, bm, k, ai, s_k)
            pi, eta0, r0, t0 = self._predictors(pt, k, ai, labs)
            line = _Line(k, ai, s_k, labs, true_frame, obs_frame, pi, eta0, r0, t0)
            chosen, p_resp, eta, p_tox = self._assign_treatment(rng, pt, line, received, po_truth)
            received[ai, chosen] = True
            drug_names = np.array(self.drugs, dtype=object)[chosen]
            for d, cnt in zip(*np.unique(drug_names.astype(str), return_counts=True), strict=True):
                drug_lines[d] = drug_lines.get(d, 0) + int(cnt)
            fate = self._draw_fate(rng, pt, line, p_resp, eta, p_tox)
            line_id = self._record_line(out, pt, line, fate, drug_names)
            self._record_assessments(rng, out, pt, line, fate, line_id)
            go_on, next_start = self._draw_next_line(rng, pt, line, fate)
            death[ai[~go_on]] = fate.dies[~go_on]
            line_truth.append(self._line_truth(pt, bm, line, drug_names, line_id))
            prev_start[ai] = s_k
            start[ai] = next_start
            active[:] = False
            active[ai[go_on]] = True
        return death, prev_start, line_truth, po_truth, drug_lines

    def _draw_later_tests(self, rng, bm: _Biomarkers, ai, s_k, prev_s) -> None:
        """Test still-untested markers before a later line (updates ``bm.test_date``).

        A first test before line ``k > 1`` is dated uniformly between the previous line's
        start and the day before this one's, so it is a covariate of this line only.
        """
        m = len(ai)
        for b in self.markers:
            untested = (bm.test_date[b][ai] > s_k) & ~np.isnan(bm.true[b][ai])
            new = untested & (rng.random(m) < bm.later_rate[b][ai])
            gap = np.maximum(s_k - prev_s - 1, 1)
            d = prev_s + 1 + (rng.random(m) * gap).astype(np.int64)
            bm.test_date[b][ai[new]] = np.minimum(d[new], s_k[new] - 1)

    def _baseline_labs(self, rng, out, pt: _Patients, z, k: int, ai, s_k) -> dict:
        """Draw the labs at a line's start (the baseline a clinician sees); write the
        recorded ones to ``measurement``.

        ECOG, albumin, LDH and NLR follow the latent frailty ``z`` (worse on later
        lines); creatinine follows age and chronic kidney disease. Each lab is dated 1-28
        days before the line start and is missing with the site's ``lab_missing`` rate,
        but the true values drive the outcome model either way.

        Returns
        -------
        dict of str to ndarray, shape (m,)
            The true baseline value of each of ``LABS``.
        """
        m = len(ai)
        zk = z[ai] + 0.35 * (k - 1) + rng.normal(0, 0.3, m)
        ecog = np.clip(np.round(1.0 + 0.7 * zk + rng.normal(0, 0.4, m)), 0, 4)
        alb = np.clip(3.9 - 0.3 * zk + rng.normal(0, 0.25, m), 1.5, 5.5)
        ldh = 220 * np.exp(0.3 * zk + rng.normal(0, 0.2, m))
        nlr = 3.0 * np.exp(0.35 * zk + rng.normal(0, 0.3, m))
        creat = 0.9 * np.exp(0.01 * (pt.age[ai] - 65) + rng.normal(0, 0.2, m)) + 0.5 * pt.ckd[ai]
        labs = {"ECOG": ecog, "albumin": alb, "LDH": ldh, "NLR": nlr, "creatinine": creat}
        lab_day = s_k - rng.integers(1, 29, m)
        for lab, val in labs.items():
            keep = rng.random(m) >= pt.lab_missing[ai]
            self._measure(
                out, pt.person_id[ai][keep], lab_day[keep], lab, np.round(val[keep], 2), None
            )
        return labs

    def _line_frames(self, pt: _Patients, bm: _Biomarkers, k: int, ai, s_k):
        """The line's patients as the rules see them (true) and as the policy sees them.

        Returns
        -------
        true_frame, obs_frame : DataFrame, shape (m, 5 + n_markers)
            ``cancer``, ``population``, ``stage``, ``sex``, ``line`` and one biomarker
            column per marker: the true status, or in ``obs_frame`` the status only where
            the marker was tested before the line start (NaN otherwise).
        """
        true_frame = pd.DataFrame(
            {
                "cancer": np.array(self.cancers)[pt.cancer[ai]],
                "population": np.array(self.pops)[pt.pop[ai]],
                "stage": STAGES[pt.stage[ai]],
                "sex": np.where(pt.female[ai], "F", "M"),
                "line": k,
                **{biomarker_column(b): bm.true[b][ai] for b in self.markers},
            }
        )
        obs_frame = true_frame.copy()
        for b in self.markers:
            obs_frame[biomarker_column(b)] = np.where(
                bm.test_date[b][ai] < s_k, bm.true[b][ai], np.nan
            )
        return true_frame, obs_frame

    def _predictors(self, pt: _Patients, k: int, ai, labs: dict):
        """The prognostic index and the standard of care's three linear predictors.

        ``PI`` is centred (ECOG 1, albumin 3.9, LDH 220, NLR 3, the cancer's stage IV
        share, age 65, the mean comorbidity count); ``eta0`` is the Weibull PFS
        log-hazard with median ``m_c`` at ``PI = 0`` on line 1, plus line, population
        and site terms; ``r0`` and ``t0`` are the response and toxicity log-odds (see
        the module docstring). Planted rules add to these per drug.

        Returns
        -------
        pi, eta0, r0, t0 : ndarray, shape (m,)
        """
        spec, w = self.spec, self.world
        prog, oc = spec.outcomes.prognosis, spec.outcomes
        kappa = oc.weibull_shape
        soc_rr = np.array([c.response_rate for c in self.cobj])
        soc_m = np.array([c.median_pfs_months for c in self.cobj])
        soc_tox = np.array([c.toxicity_rate for c in self.cobj])
        share_iv = self.stage_p[:, 3]
        pop_h = np.array([p.pfs_log_hazard for p in spec.populations.values()])
        pop_r = np.array([p.response_log_odds for p in spec.populations.values()])
        mean_comorb = sum(c.prevalence for c in spec.comorbidities.values())
        ecog, creat = labs["ECOG"], labs["creatinine"]
        c_i = pt.cancer[ai]
        iv = pt.stage[ai] == 3
        pi = (
            prog.ecog * (ecog - 1)
            + prog.albumin * (labs["albumin"] - 3.9) / 0.5
            + prog.ldh * np.log(labs["LDH"] / 220) / 0.3
            + prog.nlr * np.log(labs["NLR"] / 3) / 0.35
            + prog.stage_iv * (iv - share_iv[c_i])
            + prog.age * (pt.age[ai] - 65) / 10
            + prog.comorbidity * (pt.n_comorb[ai] - mean_comorb)
        )
        eta0 = (
            np.log(np.log(2) / soc_m[c_i] ** kappa)
            + pi
            + oc.later_line_log_hazard * (k - 1)
            + pop_h[pt.pop[ai]]
            + w.outcome[pt.site[ai]]
        )
        r0 = (
            logit(soc_rr[c_i])
            - oc.response_prognosis_scale * pi
            + oc.later_line_response_log_odds * (k - 1)
            + pop_r[pt.pop[ai]]
        )
        t0 = (
            logit(soc_tox[c_i])
            + oc.toxicity_age * (pt.age[ai] - 65) / 10
            + oc.toxicity_ecog * (ecog - 1)
            + oc.toxicity_creatinine * np.log(creat / 0.9) / 0.2
        )
        return pi, eta0, r0, t0

    # ------------------------------------------------------------------ treatment choice
    def _assign_treatment(self, rng, pt: _Patients, line: _Line, received, po_truth: list):
        """Choose each patient's drug by the multinomial-logit policy, per cancer type.

        The utilities of :meth:`_candidate_scores` become probabilities by a softmax with
        a positivity floor ``eps`` (every candidate keeps at least ``eps``), and one drug
        is drawn per patient. Every candidate's probabilities and outcome parameters are
        appended to ``po_truth``, the assigned one marked.

        Returns
        -------
        chosen : ndarray of int, shape (m,)
            Index into ``self.drugs``.
        p_resp, eta, p_tox : ndarray, shape (m,)
            Response probability, PFS log-hazard and toxicity probability of the drug
            received.
        """
        ai, k = line.ai, line.k
        m = len(ai)
        c_i = pt.cancer[ai]
        chosen = np.full(m, -1)
        p_resp = np.zeros(m)
        eta = np.zeros(m)
        p_tox = np.zeros(m)
        for ci, cname in enumerate(self.cancers):
            sel = np.flatnonzero(c_i == ci)
            if not len(sel):
                continue
            cands = self.spec.drugs_for(cname, k)
            util, po = self._candidate_scores(pt, line, received, cname, cands, sel)
            util -= util.max(axis=1, keepdims=True)
            p = np.exp(util)
            p /= p.sum(axis=1, keepdims=True)
            eps = self.spec.treatment_policy.positivity_floor
            p = eps + (1 - eps * len(cands)) * p
            pick = _categorical(rng, p)
            rows = np.arange(len(sel))
            chosen[sel] = np.array([self.drug_idx[d] for d in cands])[pick]
            p_resp[sel] = po[0, rows, pick]
            eta[sel] = po[1, rows, pick]
            p_tox[sel] = po[2, rows, pick]
            lid = pt.person_id[ai[sel]] * 10 + k
            kk = len(cands)
            po_truth.append(
                pd.DataFrame(
                    {
                        "line_id": np.repeat(lid, kk),
                        "drug": np.tile(np.array(cands, dtype=object), len(sel)),
                        "is_standard": np.tile(np.arange(kk) == 0, len(sel)),
                        "assigned": (np.arange(kk)[None, :] == pick[:, None]).ravel(),
                        "p_assign": p.ravel(),
                        "p_response": po[0].ravel(),
                        "pfs_log_hazard": po[1].ravel(),
                        "p_toxicity": po[2].ravel(),
                    }
                )
            )
        return chosen, p_resp, eta, p_tox

    def _candidate_scores(self, pt: _Patients, line: _Line, received, cname, cands, sel):
        """Policy utility and potential outcomes of each candidate drug (no draws).

        The utility is the site's practice style for the drug, plus, for every drug but
        the standard of care (``cands[0]``): its preference, stage IV and ECOG terms,
        the sponsor boost at sponsored sites, a repeat penalty, and an indication boost
        (or off-indication penalty) read from the *tested* markers only; this is the
        confounding by indication. The potential outcomes add the planted rules, which
        read the *true* markers, to the standard of care's predictors.

        Returns
        -------
        util : ndarray, shape (len(sel), len(cands))
        po : ndarray, shape (3, len(sel), len(cands))
            Response probability, PFS log-hazard and toxicity probability.
        """
        spec, w = self.spec, self.world
        ai = line.ai
        iv = pt.stage[ai] == 3
        ecog = line.labs["ECOG"]
        util = np.zeros((len(sel), len(cands)))
        po = np.zeros((3, len(sel), len(cands)))
        tf = line.true_frame.iloc[sel]
        of = line.obs_frame.iloc[sel]
        for j, d in enumerate(cands):
            di = self.drug_idx[d]
            drug = spec.drugs[d]
            u = w.practice[pt.site[ai[sel]], di].copy()
            if j > 0:
                pol = spec.treatment_policy
                u += drug.preference + pol.stage_iv * iv[sel] + drug.ecog * ecog[sel]
                u += drug.sponsor_boost * pt.sponsored[ai[sel]]
                u += pol.repeat_penalty * received[ai[sel], di]
                ind = drug.indications[cname]
                if ind:
                    met = Condition.parse(ind).mask(of)
                    u += np.where(met, pol.indication_boost, pol.off_indication)
            util[:, j] = u
            ra = np.zeros(len(sel))
            hb = np.zeros(len(sel))
            tc = np.zeros(len(sel))
            for eff, cond in self.rules:
                if eff.drug != d:
                    continue
                hit = cond.mask(tf)
                ra += eff.response_log_odds * hit
                hb += eff.pfs_log_hazard * hit
                tc += eff.toxicity_log_odds * hit
            po[0, :, j] = expit(line.r0[sel] + ra)
            po[1, :, j] = line.eta0[sel] + hb
            po[2, :, j] = expit(line.t0[sel] + tc)
        return util, po

    # ------------------------------------------------------------------ outcomes
    def _draw_fate(self, rng, pt: _Patients, line: _Line, p_resp, eta, p_tox) -> _Fate:
        """Draw the received drug's outcomes: response, toxicity, PFS event and death.

        PFS is Weibull by inversion, ``t = (E / exp(eta))^(1/kappa)`` months with
        ``E ~ Exp(1)``; the PFS event is death with ``outcomes.death_first_share``,
        otherwise death follows after an exponential post-progression survival (median
        the cancer's, shorter with worse ECOG).
        """
        oc = self.spec.outcomes
        m = len(line.ai)
        pps_m = np.array([c.median_post_progression_months for c in self.cobj])
        c_i = pt.cancer[line.ai]
        resp = rng.random(m) < p_resp
        tox = rng.random(m) < p_tox
        t_months = (rng.exponential(1.0, m) / np.exp(eta)) ** (1.0 / oc.weibull_shape)
        t_days = np.maximum(np.round(t_months * DAYS_PER_MONTH), 1).astype(np.int64)
        event_day = line.start + t_days
        is_death = rng.random(m) < oc.death_first_share
        pps = rng.exponential(pps_m[c_i] / np.log(2) * np.exp(-0.3 * (line.labs["ECOG"] - 1)))
        pps_days = np.round(pps * DAYS_PER_MONTH).astype(np.int64)
        dies = np.where(is_death, event_day, event_day + pps_days)
        return _Fate(resp, tox, t_days, event_day, is_death, dies)

    def _record_line(self, out, pt: _Patients, line: _Line, fate: _Fate, drug_names):
        """Write the line's ``episode`` and ``drug_exposure`` rows and its progression.

        The line (episode id ``person_id * 10 + k``) and its drug exposure last until the
        PFS event or the end of follow-up; a progression (not a death) seen during
        follow-up is a child episode, id ``person_id * 10 + 5 + k``.

        Returns
        -------
        ndarray of int64, shape (m,)
            The line ids.
        """
        ai, k, s_k = line.ai, line.k, line.start
        m = len(ai)
        oe = pt.obs_end[ai]
        line_id = pt.person_id[ai] * 10 + k
        line_end = np.minimum(fate.event_day, oe)
        out["episode"].add(
            episode_id=line_id,
            person_id=pt.person_id[ai],
            episode_source_value=LINE_EPISODE,
            episode_number=np.full(m, k),
            episode_start_date=s_k,
            episode_end_date=line_end,
            episode_parent_id=np.full(m, np.nan),
            episode_object_source_value=drug_names,
        )
        out["drug_exposure"].add(
            drug_exposure_id=line_id,
            person_id=pt.person_id[ai],
            drug_source_value=drug_names,
            drug_exposure_start_date=s_k,
            drug_exposure_end_date=line_end,
        )
        progressed = ~fate.is_death & (fate.event_day < oe)
        pidx = np.flatnonzero(progressed)
        out["episode"].add(
            episode_id=pt.person_id[ai][pidx] * 10 + 5 + k,
            person_id=pt.person_id[ai][pidx],
            episode_source_value=PROGRESSION_EPISODE,
            episode_number=np.full(len(pidx), k),
            episode_start_date=fate.event_day[pidx],
            episode_end_date=fate.event_day[pidx],
            episode_parent_id=line_id[pidx],
            episode_object_source_value=np.repeat(None, len(pidx)),
        )
        return line_id

    def _record_assessments(self, rng, out, pt: _Patients, line: _Line, fate: _Fate, line_id):
        """Write what is seen during the line: best response, toxicity, on-treatment labs.

        Best overall response is assessed at 8-12 weeks (or at an earlier PFS event, not
        before two weeks); a grade >= 3 adverse event falls in the line's first 13 weeks,
        by its PFS event at the latest. Each is recorded in ``observation`` only if seen
        during follow-up and before death. On-treatment LDH and ECOG (3-6 weeks in) move
        with the response: dated after the index date and informative of the outcome,
        they are the trap a leaky feature stage would fall into.
        """
        ai, s_k = line.ai, line.start
        m = len(ai)
        pid, oe, t_days = pt.person_id[ai], pt.obs_end[ai], fate.t_days
        resp_day = s_k + np.maximum(14, np.minimum(56 + rng.integers(0, 29, m), t_days))
        seen = resp_day < np.minimum(oe, fate.dies)
        self._observe(
            out,
            pid[seen],
            resp_day[seen],
            RESPONSE_OBS,
            np.where(fate.resp[seen], "CR/PR", "SD/PD"),
            line_id[seen],
        )
        tox_day = s_k + np.minimum(rng.integers(7, 91, m), t_days)
        seen = fate.tox & (tox_day < oe) & (tox_day <= fate.dies)
        self._observe(
            out,
            pid[seen],
            tox_day[seen],
            TOXICITY_OBS,
            np.repeat("grade 3+", seen.sum()),
            line_id[seen],
        )
        on_day = s_k + rng.integers(21, 43, m)
        seen = on_day < np.minimum(oe, fate.event_day)
        resp = fate.resp
        ldh_on = line.labs["LDH"] * np.exp(np.where(resp, -0.35, 0.25) + rng.normal(0, 0.15, m))
        ecog_on = np.clip(line.labs["ECOG"] + np.where(resp, -1, 1) * (rng.random(m) < 0.5), 0, 4)
        self._measure(out, pid[seen], on_day[seen], "LDH", np.round(ldh_on[seen], 2), None)
        self._measure(out, pid[seen], on_day[seen], "ECOG", ecog_on[seen], None)

    def _draw_next_line(self, rng, pt: _Patients, line: _Line, fate: _Fate):
        """Who starts line ``k + 1`` after the PFS event, and when.

        A patient alive at the event goes on with ``outcomes.next_line_prob[k - 1]``
        (less with worse ECOG), 2-6 weeks later, if that is still inside follow-up.

        Returns
        -------
        go_on : ndarray of bool, shape (m,)
        next_start : ndarray of int64, shape (m,)
        """
        oc = self.spec.outcomes
        k, m = line.k, len(line.ai)
        go_on = np.zeros(m, dtype=bool)
        if k < oc.max_lines:
            p_next = expit(logit(oc.next_line_prob[k - 1]) - 0.3 * (line.labs["ECOG"] - 1))
            go_on = ~fate.is_death & (rng.random(m) < p_next)
        next_start = fate.event_day + rng.integers(14, 43, m)
        go_on &= next_start < pt.obs_end[line.ai]
        return go_on, next_start

    def _line_truth(self, pt: _Patients, bm: _Biomarkers, line: _Line, drug_names, line_id):
        """One truth row per line: drug, standard of care, prognostic index, true
        biomarkers and membership of every planted rule (``truth/lines.parquet``)."""
        ai, k, tf = line.ai, line.k, line.true_frame
        return pd.DataFrame(
            {
                "line_id": line_id,
                "person_id": pt.person_id[ai],
                "line": k,
                "cancer": tf["cancer"].to_numpy(),
                "population": tf["population"].to_numpy(),
                "care_site_id": pt.site[ai] + 1,
                "drug": drug_names,
                "standard_of_care": [self.spec.cancers[c].soc_for_line(k) for c in tf["cancer"]],
                "prognostic_index": line.pi,
                **{biomarker_column(b): bm.true[b][ai] for b in self.markers},
                **{f"rule_{eff.name}": cond.mask(tf) for eff, cond in self.rules},
            }
        )

    # ------------------------------------------------------------------ after the last line
    def _record_biomarker_tests(self, rng, out, pt, bm: _Biomarkers, last_start, period_end):
        """Write every biomarker test done during follow-up to ``measurement``.

        First, half the later-test rate of still-untested markers are tested 1-60 days
        after the last line's start: recorded, never a covariate of it. Then every test
        before the end of follow-up or death is written, binary markers with a
        positive/negative label, TPS in percent.
        """
        person_id = pt.person_id
        n = len(person_id)
        for b in self.markers:
            untested = (bm.test_date[b] == np.iinfo(np.int64).max) & ~np.isnan(bm.true[b])
            late = untested & (rng.random(n) < 0.5 * bm.later_rate[b])
            bm.test_date[b][late] = last_start[late] + rng.integers(1, 61, int(late.sum()))
        for b in self.markers:
            done = bm.test_date[b] < period_end
            tps = self.spec.biomarkers[b] == "tps"
            val = bm.true[b][done]
            self._measure(
                out,
                person_id[done],
                bm.test_date[b][done],
                b,
                val,
                np.where(val >= 1, "positive", "negative") if not tps else None,
                unit="%" if tps else None,
            )

    def _record_death_and_follow_up(self, out, pt: _Patients, death, period_end) -> None:
        """Write ``death`` (deaths in the study window that the sites captured) and one
        ``observation_period`` per patient, from a year before diagnosis to the end of
        follow-up or death."""
        death_seen = (death <= self.end) & pt.death_captured
        out["death"].add(person_id=pt.person_id[death_seen], death_date=death[death_seen])
        out["observation_period"].add(
            observation_period_id=pt.person_id,
            person_id=pt.person_id,
            observation_period_start_date=pt.dx - 365,
            observation_period_end_date=period_end,
        )

    def _measure(self, out, pid, day, name, value, label, unit=None):
        k = len(pid)
        ids = self.counters["measurement"] + np.arange(1, k + 1)
        self.counters["measurement"] += k
        out["measurement"].add(
            measurement_id=ids,
            person_id=pid,
            measurement_date=day,
            measurement_source_value=np.repeat(name, k).astype(object),
            value_as_number=np.asarray(value, dtype=float),
            value_source_value=np.repeat(None, k)
            if label is None
            else np.asarray(label, dtype=object),
            unit_source_value=np.repeat(unit or LAB_UNITS.get(name), k).astype(object),
        )

    def _observe(self, out, pid, day, name, value, event_id):
        k = len(pid)
        ids = self.counters["observation"] + np.arange(1, k + 1)
        self.counters["observation"] += k
        out["observation"].add(
            observation_id=ids,
            person_id=pid,
            observation_date=day,
            observation_source_value=np.repeat(name, k).astype(object),
            value_as_string=np.asarray(value, dtype=object),
            observation_event_id=event_id,
        )


def generate(
    spec: Spec,
    n_patients: int,
    seed: int,
    out: str | Path,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> GenerateSummary:
    """Draw a synthetic world and write ``out/omop`` and ``out/truth``.

    Parameters
    ----------
    spec : Spec
        The validated world description (:func:`~oncorwe.cohort.spec.load_spec`).
    n_patients : int
        Number of patients (each with at least one line of therapy), >= 1.
    seed : int
        Seed of every random stream; the same spec, size and seed give byte-identical files.
    out : path
        Destination folder; ``omop/`` and ``truth/`` are replaced atomically.
    chunk_size : int
        Patients drawn per chunk (bounded memory); part of the seed's meaning.

    Returns
    -------
    GenerateSummary
        Row counts per table and lines per drug.

    Examples
    --------
    >>> from oncorwe.cohort.spec import load_spec
    >>> import tempfile
    >>> summary = generate(load_spec(), 500, seed=1, out=tempfile.mkdtemp())
    >>> summary.patients
    500
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    out = Path(out)
    gen = _Generator(spec, seed)
    summary = GenerateSummary(patients=n_patients, lines=0)
    omop_name, truth_name = WORLD_FOLDERS
    with atomic_path(out / omop_name) as omop_dir, atomic_path(out / truth_name) as truth_dir:
        omop_dir.mkdir(parents=True)
        truth_dir.mkdir(parents=True)
        writers: dict[str, pq.ParquetWriter] = {}
        twriters: dict[str, pq.ParquetWriter] = {}
        try:
            care = gen.care_site_table()
            pq.write_table(care, omop_dir / "care_site.parquet")
            summary.rows["care_site"] = care.num_rows
            for index, offset in enumerate(range(0, n_patients, chunk_size)):
                size = min(chunk_size, n_patients - offset)
                tables, extra = gen.chunk(index, offset, size)
                for name, table in tables.items():
                    if name not in writers:
                        writers[name] = pq.ParquetWriter(omop_dir / f"{name}.parquet", table.schema)
                    writers[name].write_table(table)
                    summary.rows[name] = summary.rows.get(name, 0) + table.num_rows
                for name, frame in extra["truth"].items():
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if name not in twriters:
                        twriters[name] = pq.ParquetWriter(
                            truth_dir / f"{name}.parquet", table.schema
                        )
                    twriters[name].write_table(table)
                summary.lines += extra["lines"]
                for d, c in extra["drug_lines"].items():
                    summary.drug_lines[d] = summary.drug_lines.get(d, 0) + c
        finally:
            for wr in (*writers.values(), *twriters.values()):
                wr.close()
        (truth_dir / "planted_effects.json").write_text(
            json.dumps([e.model_dump(by_alias=True) for e in spec.planted_effects], indent=2) + "\n"
        )
        (truth_dir / "spec.yaml").write_text(
            yaml.safe_dump(spec.model_dump(mode="json", by_alias=True), sort_keys=False)
        )
        (truth_dir / "world.json").write_text(
            json.dumps(
                {
                    "seed": seed,
                    "patients": n_patients,
                    "chunk_size": chunk_size,
                    "weibull_shape": spec.outcomes.weibull_shape,
                    "time_unit": "months",
                    "days_per_month": DAYS_PER_MONTH,
                    "site_sponsored": gen.world.sponsored.astype(int).tolist(),
                    "site_quality": np.round(gen.world.quality, 6).tolist(),
                },
                indent=2,
            )
            + "\n"
        )
    return summary


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder atomically (used to stage user-supplied OMOP extracts)."""
    with atomic_path(dst) as tmp:
        shutil.copytree(src, tmp)
