"""Covariate encoding: the one home for turning an analysis table's covariate columns
into the frames and matrices the models take.

- :func:`feature_frame`: track 1's one-pass typing for the XGBoost estimators.
- :class:`CovariateEncoder`: levels, medians and missingness fitted on one frame and
  applied to others (track 2's propensity and transport models, the balance table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CovariateEncoder", "feature_frame"]


def feature_frame(frame: pd.DataFrame, covariates: list[str]) -> pd.DataFrame:
    """``frame``'s covariates as the in-process XGBoost estimators take them, in one pass
    with nothing learnt: text columns become categories, booleans 0/1, numbers stay as
    they are. The estimators recode a category to their training levels at predict time,
    so a frame typed alone (the confirmation part) still means what training meant; a
    model that does not recode (the logistic design, the balance table, a binned
    backend's contract) takes :class:`CovariateEncoder`, whose levels are fitted once.

    >>> f = feature_frame(pd.DataFrame({"stage": ["IV", "III"], "on": [True, False]}), ["stage", "on"])
    >>> [str(t) for t in f.dtypes]
    ['category', 'int8']
    """
    F = frame[covariates].copy()
    for c in F.columns:
        if not pd.api.types.is_numeric_dtype(F[c]) and not isinstance(
            F[c].dtype, pd.CategoricalDtype
        ):
            F[c] = F[c].astype("category")
        elif pd.api.types.is_bool_dtype(F[c]):
            F[c] = F[c].astype(np.int8)
    return F


class CovariateEncoder:
    """Turn mixed-type covariate columns into numeric design matrices.

    Columns named in ``categorical``, and columns of object / string / category dtype,
    are categorical: one indicator per observed level (``"stage=IV"``), plus a
    ``"=missing"`` level when the column has missing values. Other columns are numeric:
    kept as they are for XGBoost and for balance (missing stays missing), and for the
    logistic design median-imputed with a ``" [missing]"`` indicator, then standardized.

    Parameters
    ----------
    covariates : sequence of str
    categorical : sequence of str, default ()
        A subset of ``covariates`` to treat as categorical whatever their dtype.

    Attributes
    ----------
    numeric_ : list of str
    categorical_ : dict of str to list of str
        Levels of each categorical column (``"missing"`` last when present).
    medians_ : dict of str to float
    has_missing_ : dict of str to bool

    Examples
    --------
    >>> df = pd.DataFrame({"age": [50.0, None, 70.0], "stage": ["III", "IV", "IV"]})
    >>> enc = CovariateEncoder(["age", "stage"]).fit(df)
    >>> list(enc.design(df).columns)
    ['age', 'age [missing]', 'stage=III', 'stage=IV']
    """

    def __init__(self, covariates: Sequence[str], categorical: Sequence[str] = ()) -> None:
        self.covariates = list(covariates)
        self.categorical = list(categorical)

    def fit(self, frame: pd.DataFrame) -> CovariateEncoder:
        """Learn levels, medians and missingness from ``frame``; returns ``self``."""
        self.numeric_: list[str] = []
        self.categorical_: dict[str, list[str]] = {}
        self.medians_: dict[str, float] = {}
        self.has_missing_: dict[str, bool] = {}
        for col in self.covariates:
            s = frame[col]
            self.has_missing_[col] = bool(s.isna().any())
            is_cat = (
                col in self.categorical
                or isinstance(s.dtype, pd.CategoricalDtype)
                or pd.api.types.is_object_dtype(s.dtype)
                or pd.api.types.is_string_dtype(s.dtype)
            )
            if is_cat:
                levels = sorted(s.dropna().astype(str).unique().tolist())
                if self.has_missing_[col]:
                    levels.append("missing")
                self.categorical_[col] = levels
            else:
                x = pd.to_numeric(s, errors="raise").astype(float)
                self.numeric_.append(col)
                med = float(np.nanmedian(x)) if x.notna().any() else 0.0
                self.medians_[col] = med
        return self

    @staticmethod
    def _levels(s: pd.Series) -> np.ndarray:
        return s.astype(object).where(s.notna(), "missing").astype(str).to_numpy()

    def balance_matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric columns as observed (NaN kept), missing indicators and level dummies.

        Returns
        -------
        DataFrame of shape (n, k) of floats; the rows of the balance table.
        """
        out: dict[str, np.ndarray] = {}
        for col in self.covariates:
            if col in self.categorical_:
                lv = self._levels(frame[col])
                for level in self.categorical_[col]:
                    out[f"{col}={level}"] = (lv == level).astype(float)
            else:
                x = frame[col].astype(float).to_numpy()
                out[col] = x
                if self.has_missing_[col]:
                    out[f"{col} [missing]"] = np.isnan(x).astype(float)
        return pd.DataFrame(out, index=frame.index)

    def design(self, frame: pd.DataFrame) -> pd.DataFrame:
        """:meth:`balance_matrix` with numeric NaNs replaced by the fitted medians."""
        m = self.balance_matrix(frame)
        for col in self.numeric_:
            m[col] = m[col].fillna(self.medians_[col])
        return m

    def standardizer(self, frame: pd.DataFrame) -> Any:
        """The logistic / Cox design standardized with ``frame``'s column means and SDs
        (``ddof=1``; a constant column is left unscaled): returns a function of a frame
        giving its float matrix, so a model fitted on ``frame`` reads other frames on the
        same scale.

        >>> df = pd.DataFrame({"age": [50.0, 70.0]})
        >>> CovariateEncoder(["age"]).fit(df).standardizer(df)(df).round(3).tolist()
        [[-0.707], [0.707]]
        """
        d = self.design(frame)
        mean, sd = d.mean(), d.std()
        sd = sd.where(sd > 0, 1.0)
        return lambda other: ((self.design(other) - mean) / sd).to_numpy(dtype=float)

    def xgboost_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric columns as floats (NaN for XGBoost's default directions) and
        categorical columns as pandas categories with the fitted levels."""
        out: dict[str, Any] = {}
        for col in self.covariates:
            if col in self.categorical_:
                levels = [lv for lv in self.categorical_[col] if lv != "missing"]
                # the same string form as the fitted levels; missing stays missing
                out[col] = pd.Categorical(frame[col].astype("string"), categories=levels)
            else:
                out[col] = frame[col].astype(float).to_numpy()
        return pd.DataFrame(out, index=frame.index)
