"""Readable names for what the reports show: one map, used wherever a name is shown.

Column names follow the feature table's conventions (``features/schema.py``): ``bm_``
a biomarker (``bm_hr_status`` its tested status, ``bm_pdl1_tps`` a value), ``lab_`` a
laboratory value, ``comorb_`` a comorbidity, ``col=level`` one level of a categorical
covariate (the encoder's name). :func:`label` turns each into the words a clinician
uses; :func:`label_text` does it for every name inside a sentence (a subgroup rule);
:func:`subgroup_label` writes a hypothesis' subgroup from its conditions.

Example
-------
>>> label("bm_hr_status"), label("lab_nlr"), label("nsclc")
('HR status', 'NLR', 'NSCLC')
>>> label("bm_pdl1_tps_status=>=50")
'PD-L1 TPS status: >=50'
>>> label_text("cancer = nsclc and bm_egfr_status positive")
'cancer = NSCLC and EGFR status positive'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Whole names whose readable form no rule derives.
NAMES: dict[str, str] = {
    "nsclc": "NSCLC",
    "ecog": "ECOG",
    "pfs": "PFS",
    "os": "OS",
    "rmst": "RMST",
    "auc": "AUC",
    "n_prior_lines": "prior lines",
    "months_since_diagnosis": "months since diagnosis",
    "index_year": "year the line started",
    "prior_same_drug": "same drug as the prior line",
}
#: Biomarker stems (after ``bm_``) that are not one upper-case word.
BIOMARKERS: dict[str, str] = {
    "pdl1_tps": "PD-L1 TPS",
    "pdl1": "PD-L1",
    "msi_h": "MSI-H",
    "kras_g12c": "KRAS G12C",
    "pten_loss": "PTEN loss",
}
#: Words written in capitals wherever they appear (labs, comorbidities, plain names).
ACRONYMS = frozenset({"nsclc", "ecog", "copd", "ldh", "nlr", "crp", "alt", "ast", "bmi"})
STATUS_SUFFIX = "_status"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _words(stem: str) -> str:
    return " ".join(w.upper() if w in ACRONYMS else w for w in stem.split("_") if w)


def _biomarker(stem: str) -> str:
    return BIOMARKERS.get(stem) or " ".join(w.upper() for w in stem.split("_") if w)


def label(name: Any) -> str:
    """The readable form of one column, level or value name (unknown names: underscores
    become spaces, known acronyms capitals).

    >>> label("comorb_chronic_kidney_disease"), label("comorb_copd"), label("lab_albumin")
    ('chronic kidney disease', 'COPD', 'albumin')
    >>> label("treatment=pembrolizumab"), label("bm_msi_h_status"), label("east_asian_other")
    ('treatment: pembrolizumab', 'MSI-H status', 'east asian other')
    """
    text = str(name)
    if "=" in text:
        col, level = text.split("=", 1)
        return f"{label(col)}: {label(level) if _NAME.fullmatch(level) else level}"
    low = text.lower()
    if low in NAMES:
        return NAMES[low]
    if low.startswith("bm_"):
        stem = low[3:]
        if stem.endswith(STATUS_SUFFIX):
            return f"{_biomarker(stem[: -len(STATUS_SUFFIX)])} status"
        return _biomarker(stem)
    if low.startswith("lab_"):
        stem = low[4:]
        return stem.upper() if len(stem) <= 4 or stem in ACRONYMS else _words(stem)
    if low.startswith("comorb_"):
        return _words(low[7:])
    if "_" in text or low in ACRONYMS:
        return _words(low) if text == low else text.replace("_", " ")
    return text


def label_text(text: str) -> str:
    """``text`` with every name in it replaced by its :func:`label` (operators, numbers
    and plain words stay)."""
    return _NAME.sub(lambda m: label(m.group(0)), str(text))


def subgroup_label(conditions: Mapping[str, Any] | None, fallback: str = "") -> str:
    """A subgroup as a reader says it, cancer first: ``NSCLC, PD-L1 TPS status >=50,
    line 1``. Without conditions, ``fallback`` (the stage's rule text) is labelled.

    >>> subgroup_label({"cancer": "nsclc", "bm_egfr_status": "positive", "line": 1})
    'NSCLC, EGFR status positive, line 1'
    >>> subgroup_label({"cancer": "breast", "age": {"min": 65}, "sex": ["F"]})
    'breast, age >= 65, sex F'
    """
    if not conditions:
        return label_text(fallback) if fallback else "all patients"
    parts = []
    for field, spec in sorted(conditions.items(), key=lambda kv: kv[0] != "cancer"):
        name = label(field)
        if field == "cancer":
            values = spec if isinstance(spec, list) else [spec]
            parts.append(" or ".join(label(v) for v in values))
        elif isinstance(spec, Mapping):
            bounds = [
                f"{name} {op} {spec[key]:g}"
                for key, op in (("min", ">="), ("max", "<="), ("below", "<"))
                if spec.get(key) is not None
            ]
            if spec.get("min") is not None and spec.get("min") == spec.get("max"):
                bounds = [f"{name} {spec['min']:g}"]
            parts.append(" and ".join(bounds))
        elif isinstance(spec, list):
            parts.append(f"{name} {' or '.join(str(v) for v in spec)}")
        else:
            parts.append(f"{name} {spec}")
    return ", ".join(parts)
