"""One map of readable names, derived from the feature table's naming conventions."""

from __future__ import annotations

import pytest

from oncorwe.report.labels import label, label_text, subgroup_label


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("bm_hr_status", "HR status"),
        ("bm_egfr", "EGFR"),
        ("bm_pdl1_tps", "PD-L1 TPS"),
        ("bm_kras_g12c_status", "KRAS G12C status"),
        ("lab_nlr", "NLR"),
        ("lab_ldh", "LDH"),
        ("lab_creatinine", "creatinine"),
        ("comorb_copd", "COPD"),
        ("comorb_hepatitis_b", "hepatitis b"),
        ("nsclc", "NSCLC"),
        ("ecog", "ECOG"),
        ("n_prior_lines", "prior lines"),
        ("prior_drug=folfox", "prior drug: folfox"),
        ("stage=IV", "stage: IV"),
        ("pembrolizumab", "pembrolizumab"),
        ("H07", "H07"),
    ],
)
def test_label_reads_as_a_clinician_says_it(name, shown):
    assert label(name) == shown


def test_label_text_relabels_the_names_inside_a_rule():
    assert (
        label_text("cancer = nsclc and bm_pdl1_tps >= 50") == "cancer = NSCLC and PD-L1 TPS >= 50"
    )


def test_subgroup_label_puts_the_cancer_first():
    cond = {"bm_brca_status": "positive", "cancer": "ovarian", "line": 2}
    assert subgroup_label(cond) == "ovarian, BRCA status positive, line 2"
    assert subgroup_label(None, "cancer = nsclc") == "cancer = NSCLC"
