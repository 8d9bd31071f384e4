"""Prediction models: XGBoost estimators with the scikit-learn contract, and metrics.

- :mod:`oncorwe.models.device`: ``resolve_device`` ("auto" | "cpu" | "cuda").
- :mod:`oncorwe.models.estimators`: ``ResponseClassifier``, ``OutcomeRegressor``,
  ``SurvivalModel`` (higher ``predict_risk`` = higher risk).
- :mod:`oncorwe.models.metrics`: AUC, Brier, calibration, ICI, Harrell's C.
"""

from oncorwe.models.device import resolve_device
from oncorwe.models.estimators import (
    OutcomeRegressor,
    ResponseClassifier,
    SurvivalModel,
    grouped_validation_split,
    xgboost_survival_labels,
)

__all__ = [
    "OutcomeRegressor",
    "ResponseClassifier",
    "SurvivalModel",
    "grouped_validation_split",
    "resolve_device",
    "xgboost_survival_labels",
]
