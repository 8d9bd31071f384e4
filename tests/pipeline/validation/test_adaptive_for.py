"""The validation track's per-hypothesis adaptive platform against independent truths."""

from __future__ import annotations

import numpy as np

from oncorwe.pipeline.validation import ValidationConfig, adaptive_for
from oncorwe.trials.adaptive import AdaptiveDesign, simulate_adaptive

SUB = {"risk_control": 0.2, "risk_treated": 0.5}  # the subgroup: response 20% -> 50%
REST = {"risk_control": 0.3, "risk_treated": 0.3}  # the rest of the cancer: no benefit


def _within(p_hat: float, n: int, p: float, n_ref: int) -> bool:
    """Two independent Monte-Carlo proportions agree within 4 standard errors."""
    se = np.sqrt(p * (1 - p) / n + p * (1 - p) / n_ref) + 1e-9
    return abs(p_hat - p) < 4 * se


def test_null_graduation_is_the_false_graduation_of_the_hypothesis_platform():
    """``null_prob_graduate_any`` is P(the arm graduates in any signature) when the drug
    equals the comparator in both signatures: an independent, larger simulation of that
    null platform (another seed) gives the same rate."""
    cfg = ValidationConfig(adaptive_trials=600, seed=11)
    res = adaptive_for(SUB, REST, cfg)
    assert res["available"] and res["signatures"] == ["subgroup", "rest of cancer type"]
    null = AdaptiveDesign(response_rates=[[0.2, 0.3], [0.2, 0.3]], prevalence=[0.5, 0.5])
    ref = simulate_adaptive(null, n_trials=1500, seed=999)
    p_ref = float(ref.prob_graduate_any[0])
    assert _within(res["null_prob_graduate_any"], 600, p_ref, 1500)
    # the drug's real effect graduates it in the subgroup, hardly ever in the rest
    grad = res["prob_graduation"]
    assert grad[0] > 0.5 and grad[1] < 0.15  # measured: 0.65 and 0.05
    assert grad[0] > 3 * res["null_prob_graduate_any"]


def test_without_the_rest_of_the_cancer_it_is_one_signature():
    cfg = ValidationConfig(adaptive_trials=400, seed=5)
    res = adaptive_for(SUB, None, cfg)
    assert res["signatures"] == ["subgroup"] and len(res["prob_graduation"]) == 1
    null = AdaptiveDesign(response_rates=[[0.2], [0.2]], prevalence=[1.0])
    p_ref = float(simulate_adaptive(null, n_trials=1500, seed=998).prob_graduate_any[0])
    assert _within(res["null_prob_graduate_any"], 400, p_ref, 1500)
    assert adaptive_for({"risk_control": None}, None, cfg)["available"] is False
