"""Treatment effects: grouped cross-fitting, AIPW, CATE learners and multiplicity.

- :mod:`oncorwe.effects.splits`: grouped K-fold folds (a patient's rows together).
- :mod:`oncorwe.effects.aipw`: ``aipw_scores``, ``aipw_effect``, ``AIPWEstimator``.
- :mod:`oncorwe.effects.metalearners`: ``TLearner``, ``DRLearner``, effect-aware losses.
- :mod:`oncorwe.effects.multiplicity`: Benjamini-Hochberg and Holm adjustments.
"""

from oncorwe.effects.aipw import AIPWEstimator, EffectInference, aipw_effect, aipw_scores
from oncorwe.effects.metalearners import DRLearner, TLearner, dr_pseudo_outcome_loss, r_loss
from oncorwe.effects.multiplicity import bh_qvalues, bh_reject, holm_adjust, holm_reject
from oncorwe.effects.splits import grouped_fold_ids, grouped_kfold

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
    "grouped_fold_ids",
    "grouped_kfold",
    "holm_adjust",
    "holm_reject",
    "r_loss",
]
