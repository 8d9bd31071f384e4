"""Treatment effects: AIPW (cross-fitted over :mod:`oncorwe.models.splits`' grouped
folds), CATE learners and multiplicity.

- :mod:`oncorwe.effects.aipw`: ``aipw_scores``, ``aipw_effect``, ``AIPWEstimator``.
- :mod:`oncorwe.effects.metalearners`: ``TLearner``, ``DRLearner``, effect-aware losses.
- :mod:`oncorwe.effects.multiplicity`: Benjamini-Hochberg and Holm adjustments.
"""

from oncorwe.effects.aipw import AIPWEstimator, EffectInference, aipw_effect, aipw_scores
from oncorwe.effects.metalearners import DRLearner, TLearner, dr_pseudo_outcome_loss, r_loss
from oncorwe.effects.multiplicity import bh_qvalues, bh_reject, holm_adjust, holm_reject

__all__ = [
    "AIPWEstimator",
    "DRLearner",
    "EffectInference",
    "TLearner",
    "aipw_effect",
    "aipw_scores",
    "bh_qvalues",
    "bh_reject",
    "dr_pseudo_outcome_loss",
    "holm_adjust",
    "holm_reject",
    "r_loss",
]
