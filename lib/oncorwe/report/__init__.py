"""Stakeholder reports: parameterized notebooks rendered to offline HTML pages.

``render`` (papermill + nbconvert, offline pages, the index), ``figures`` (plotly
builders with one template), ``privacy`` (small-cell suppression, identifier checks),
``describe`` (the cohort tables of ``notebooks/00_world.ipynb``), ``labels`` (the one map
of readable names) and ``browser``
(headless Chromium checks). Submodules are imported on use: a notebook that only needs
``figures`` does not pay for nbconvert.
"""

from __future__ import annotations

__all__ = ["browser", "describe", "figures", "labels", "privacy", "render"]
