"""Federated learning across hospitals: no patient row leaves its site.

- :mod:`oncorwe.compute.federated.binning`: :class:`BinningContract`, the shared cut points
  (from reference ranges or a federated quantile sketch) that make horizontal
  federated XGBoost equal pooled XGBoost.
- :mod:`oncorwe.compute.federated.server`: the coordinator, :func:`federated_train` (the
  federated server and one process per site, TLS, timeouts, clean shutdown),
  :func:`federated_contract`, :func:`make_tls_material`.
- :mod:`oncorwe.compute.federated.site`: what a site process runs.
- :mod:`oncorwe.compute.federated.aggregates`: OHDSI-style site aggregates (AUC histograms,
  calibration sums, Brier) combined by the coordinator, small cells suppressed.

The common entry point is :func:`oncorwe.compute.trainer.train_model`, which hides the
backend (pooled, federated or Dask).

The server and site modules are loaded on first use (they run as
``python -m oncorwe.compute.federated.server`` / ``.site`` in the child processes).
"""

from __future__ import annotations

from typing import Any

from oncorwe.compute.federated.aggregates import combine_aggregates, site_aggregates
from oncorwe.compute.federated.binning import BinningContract, contract_from_summaries, site_summary

__all__ = [
    "BinningContract",
    "FederatedConfig",
    "TLSConfig",
    "combine_aggregates",
    "contract_from_summaries",
    "federated_contract",
    "federated_train",
    "make_tls_material",
    "site_aggregates",
    "site_summary",
]

_LAZY = {
    "FederatedConfig",
    "TLSConfig",
    "federated_contract",
    "federated_train",
    "make_tls_material",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from oncorwe.compute.federated import server

        return getattr(server, name)
    raise AttributeError(f"module 'oncorwe.compute.federated' has no attribute {name!r}")
