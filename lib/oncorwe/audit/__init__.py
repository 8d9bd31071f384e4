"""Audits: representation, fairness of model performance and effect heterogeneity.

Pure functions of the analysis table or of arrays, returning DataFrames (or dicts) of
aggregates with every count under ``min_cell`` suppressed (``privacy.min_cell_count``):

- :mod:`oncorwe.audit.representation`: ``representation_table``, ``indication_share``,
  ``site_concentration``, ``population_representation``; ``to_records`` turns any audit
  table into JSON-safe rows (suppressed values -> ``None``).
- :mod:`oncorwe.audit.performance`: ``performance_by_group`` (binary: AUC, Brier,
  calibration, ICI per population / site, with flags), ``survival_performance_by_group``
  (Harrell's C).
- :mod:`oncorwe.audit.heterogeneity`: ``effect_by_group`` (subgroup effects from doubly
  robust scores, Cochran's Q and I^2), ``cochran_q``.
"""

from oncorwe.audit.heterogeneity import EffectHeterogeneity, cochran_q, effect_by_group
from oncorwe.audit.performance import performance_by_group, survival_performance_by_group
from oncorwe.audit.representation import (
    SiteConcentration,
    indication_share,
    population_representation,
    representation_table,
    site_concentration,
    to_records,
)

__all__ = [
    "EffectHeterogeneity",
    "SiteConcentration",
    "cochran_q",
    "effect_by_group",
    "indication_share",
    "performance_by_group",
    "population_representation",
    "representation_table",
    "site_concentration",
    "survival_performance_by_group",
    "to_records",
]
