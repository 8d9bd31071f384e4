"""Who is in the data, who gets which drug, and where: representation audits.

Every function takes the analysis table (one row per treated line, README "The analysis
table") or plain arrays and returns aggregates that may leave the database:

- counts are nullable integers (``Int64``); a count below ``min_cell`` is suppressed
  (``<NA>``, ``None`` after :func:`to_records`), as ``privacy.min_cell_count`` requires;
- shares and ratios are floats; one computed from a suppressed count is suppressed too
  (``NaN``, ``None`` after :func:`to_records`);
- yes/no flags are computed inside the database on the unsuppressed counts (a flag only
  bounds a small cell, it does not reveal it) and are never raised on a suppressed cell.

Functions
---------
:func:`representation_table`
    patients and lines per treatment x population (or any grouping).
:func:`indication_share`
    each drug's share of a cancer's lines against the share that meets its indication.
:func:`site_concentration`
    a drug's lines concentrated in a few hospitals (a sponsor program shows up here).
:func:`population_representation`
    patients per population against a reference (e.g. trial enrollment).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from oncorwe.core.io import jsonable
from oncorwe.core.privacy import DEFAULT_MIN_CELL, check_min_cell, suppress_counts
from oncorwe.core.rules import Condition, biomarker_column

__all__ = [
    "SiteConcentration",
    "indication_share",
    "population_representation",
    "representation_table",
    "site_concentration",
    "to_records",
]


def _check_columns(frame: Any, columns: Iterable[str], *, arg: str = "frame") -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{arg} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{arg} lacks column(s) {missing}; it has {list(frame.columns)}")


def _as_columns(value: str | Sequence[str], arg: str) -> list[str]:
    cols = [value] if isinstance(value, str) else list(value)
    if not cols or not all(isinstance(c, str) for c in cols):
        raise ValueError(f"{arg} must be a column name or a non-empty list of names, got {value!r}")
    return cols


def _marker_column(field: str, columns: pd.Index) -> str:
    """The column a condition's marker reads: ``bm_<name>``, or a user column so named."""
    bm = biomarker_column(field)
    return field if bm not in columns and field in columns else bm


def _share(num: pd.Series, den: pd.Series) -> pd.Series:
    """``num / den`` as float; NaN when either is suppressed (NA) or ``den`` is 0."""
    n = num.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    d = den.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(d > 0, n / d, np.nan)
    return pd.Series(out, index=num.index, dtype=float)


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of an audit table as JSON-safe dicts: suppressed / missing values -> ``None``.

    Examples
    --------
    >>> import json
    >>> t = pd.DataFrame({"n": suppress_counts([5, 40], min_cell=11), "share": [np.nan, 0.4]})
    >>> json.dumps(to_records(t))
    '[{"n": null, "share": null}, {"n": 40, "share": 0.4}]'
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    return [
        {str(k): jsonable(v) for k, v in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]


# --------------------------------------------------------------------------- tables
def representation_table(
    frame: pd.DataFrame,
    *,
    by: str | Sequence[str] = ("treatment", "population"),
    id_col: str = "person_key",
    min_cell: int = DEFAULT_MIN_CELL,
) -> pd.DataFrame:
    """Patients and lines per group, and each group's share of its first key's lines.

    With ``by = (treatment, population)`` a row says how many distinct patients and
    treated lines of a population received a drug, and which share of the drug's lines
    they are: ``line_share = lines(drug, population) / lines(drug)``.

    Parameters
    ----------
    frame : DataFrame of shape (n_lines, ...)
        The analysis table, or any table with the ``by`` columns and ``id_col``.
    by : str or sequence of str, default ``("treatment", "population")``
        Grouping columns; the share is taken within the first one. Rows with a missing
        key are left out.
    id_col : str, default ``"person_key"``
        Patient identifier (patients are distinct ids, lines are rows).
    min_cell : int, default 11
        ``patients`` and ``lines`` below it are suppressed; so is ``line_share`` when the
        group's or the first key's line count is suppressed.

    Returns
    -------
    DataFrame
        One row per observed group, sorted: the ``by`` columns, ``patients`` and
        ``lines`` (``Int64``), ``line_share`` (float).

    Examples
    --------
    >>> t = pd.DataFrame({"person_key": list("aabcd"), "treatment": ["x"] * 4 + ["y"],
    ...                   "population": ["p", "p", "p", "q", "q"]})
    >>> representation_table(t, min_cell=1)[["treatment", "population", "lines", "line_share"]]
      treatment population  lines  line_share
    0         x          p      3        0.75
    1         x          q      1        0.25
    2         y          q      1        1.00
    """
    min_cell = check_min_cell(min_cell)
    keys = _as_columns(by, "by")
    _check_columns(frame, [*keys, id_col])
    grouped = frame.dropna(subset=keys).groupby(keys, sort=True, observed=True)[id_col]
    out = grouped.agg(patients="nunique", lines="size").reset_index()
    # the parent total is taken before suppression, then suppressed on its own
    parent = out.groupby(keys[0], observed=True)["lines"].transform("sum")
    out["line_share"] = _share(
        suppress_counts(out["lines"], min_cell), suppress_counts(parent, min_cell)
    )
    out["patients"] = suppress_counts(out["patients"], min_cell)
    out["lines"] = suppress_counts(out["lines"], min_cell)
    return out


def indication_share(
    frame: pd.DataFrame,
    indications: Mapping[str, Mapping[str, Mapping[str, Any] | None]],
    *,
    min_cell: int = DEFAULT_MIN_CELL,
    ratio: float = 1.5,
    off_label_max: float = 0.2,
    drug_col: str = "treatment",
    cancer_col: str = "cancer",
) -> pd.DataFrame:
    """Each drug's share of a cancer's lines against the share its indication covers.

    For a drug ``d`` indicated in cancer ``c`` under condition ``I`` (a
    :class:`oncorwe.core.rules.Condition` on *tested* markers, so an untested marker never
    meets it), over the lines of cancer ``c``::

        drug_share         = #(treatment = d)            / #lines
        indication_share   = #(I holds)                  / #lines
        off_indication_share = #(treatment = d, not I)   / #(treatment = d)
        over_represented   = drug_share > ratio * indication_share
                             or off_indication_share > off_label_max

    A drug used in proportion to its indication has ``drug_share <= indication_share``
    and few off-indication lines; a program pushing it (a sponsor's) inflates both.
    An empty condition (a chemotherapy indicated in every patient of the cancer) gives
    ``indication_share = 1`` and is never flagged.

    Parameters
    ----------
    frame : DataFrame of shape (n_lines, ...)
        The analysis table: ``drug_col``, ``cancer_col`` and the ``bm_<marker>`` columns
        the conditions name.
    indications : mapping drug -> {cancer -> condition dict}
        As in a world spec's ``drugs.<name>.indications`` (e.g.
        ``{"palbociclib": {"breast": {"HR": "positive", "HER2": "negative"}}}``).
    min_cell : int, default 11
    ratio : float, default 1.5
        How many times the indication share the drug's share may reach.
    off_label_max : float, default 0.2
        The largest tolerated share of the drug's lines off its indication.
    drug_col, cancer_col : str

    Returns
    -------
    DataFrame
        One row per (drug, cancer) pair of ``indications``: ``drug, cancer,
        cancer_lines, drug_lines, indicated_lines, off_indication_lines,
        untested_lines`` (``Int64``; ``untested_lines`` are the drug's off-indication lines
        with a marker of the condition not tested), ``drug_share, indication_share,
        share_ratio, off_indication_share`` (float) and ``over_represented`` (bool,
        ``False`` when ``drug_lines`` or ``cancer_lines`` is suppressed), ``reason``
        (``"share"``, ``"off_indication"``, both joined by ``+``, or ``""``).

    Notes
    -----
    A share flag is relative to observed practice, not to a counterfactual: on the
    default synthetic world (20,000 patients, seed 11) it flags most targeted drugs with
    rare markers (alectinib: 82% of its lines off-indication, osimertinib 26%), because
    the generator's policy keeps every drug possible outside its marker, and does not
    flag palbociclib network-wide (13% off-indication; drug share 0.47 against an
    indication share of 0.54). The sponsor program that pushes palbociclib is a hospital
    effect: restricted to the sponsored hospitals its off-indication share is 28% and it
    is flagged; :func:`site_concentration` finds those hospitals.

    Examples
    --------
    >>> t = pd.DataFrame({"cancer": ["breast"] * 4,
    ...                   "treatment": ["palbociclib", "palbociclib", "taxane", "taxane"],
    ...                   "bm_hr": [1.0, float("nan"), 1.0, 0.0]})
    >>> out = indication_share(t, {"palbociclib": {"breast": {"HR": "positive"}}}, min_cell=1)
    >>> out[["drug_share", "indication_share", "off_indication_share", "over_represented"]]
       drug_share  indication_share  off_indication_share  over_represented
    0         0.5               0.5                   0.5              True
    """
    min_cell = check_min_cell(min_cell)
    if not isinstance(indications, Mapping):
        raise ValueError(
            f"indications must be a mapping drug -> {{cancer -> condition}}, got {indications!r}"
        )
    if not (isinstance(ratio, int | float) and ratio > 0):
        raise ValueError(f"ratio must be a positive number, got {ratio!r}")
    if not (isinstance(off_label_max, int | float) and 0 <= off_label_max <= 1):
        raise ValueError(f"off_label_max must lie in [0, 1], got {off_label_max!r}")
    _check_columns(frame, [drug_col, cancer_col])
    rows = []
    for drug, by_cancer in indications.items():
        if not isinstance(by_cancer, Mapping):
            raise ValueError(
                f"indications[{drug!r}] must map cancer -> condition, got {by_cancer!r}"
            )
        for cancer, spec in by_cancer.items():
            try:
                cond = Condition.parse(spec)
            except ValueError as err:
                raise ValueError(f"indications[{drug!r}][{cancer!r}]: {err}") from None
            sub = frame.loc[frame[cancer_col] == cancer]
            try:
                met = cond.mask(sub)
            except KeyError as err:
                raise ValueError(f"indications[{drug!r}][{cancer!r}]: {err.args[0]}") from None
            on_drug = (sub[drug_col] == drug).to_numpy()
            cols = [
                _marker_column(c.field, sub.columns)
                for c in cond.clauses
                if c.field in cond.biomarkers()
            ]
            untested = sub[cols].isna().any(axis=1).to_numpy() if cols else np.zeros(len(sub), bool)
            rows.append(
                {
                    "drug": drug,
                    "cancer": cancer,
                    "cancer_lines": len(sub),
                    "drug_lines": int(on_drug.sum()),
                    "indicated_lines": int(met.sum()),
                    "off_indication_lines": int((on_drug & ~met).sum()),
                    "untested_lines": int((on_drug & ~met & untested).sum()),
                }
            )
    counts = [
        "cancer_lines",
        "drug_lines",
        "indicated_lines",
        "off_indication_lines",
        "untested_lines",
    ]
    raw = pd.DataFrame(rows, columns=["drug", "cancer", *counts])
    out = raw[["drug", "cancer"]].copy()
    for c in counts:
        out[c] = suppress_counts(raw[c].astype("int64"), min_cell)
    out["drug_share"] = _share(out["drug_lines"], out["cancer_lines"])
    out["indication_share"] = _share(out["indicated_lines"], out["cancer_lines"])
    out["share_ratio"] = _share(
        out["drug_share"].astype("Float64"), out["indication_share"].astype("Float64")
    )
    out["off_indication_share"] = _share(out["off_indication_lines"], out["drug_lines"])
    # flags use the raw counts (inside the database) so that a drug whose off-label
    # count happens to be small is still judged; never on a suppressed drug or cancer
    judged = (raw["drug_lines"] >= min_cell) & (raw["cancer_lines"] >= min_cell)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw_drug_share = raw["drug_lines"] / raw["cancer_lines"]
        raw_ind_share = raw["indicated_lines"] / raw["cancer_lines"]
        raw_off = raw["off_indication_lines"] / raw["drug_lines"]
    by_share = judged & (raw_drug_share > ratio * raw_ind_share)
    by_off = judged & (raw_off > off_label_max)
    out["over_represented"] = (by_share | by_off).astype(bool)
    out["reason"] = [
        "+".join(r for r, hit in (("share", s), ("off_indication", o)) if hit)
        for s, o in zip(by_share, by_off, strict=True)
    ]
    return out


class SiteConcentration(NamedTuple):
    """Result of :func:`site_concentration`: a per-drug and a per-(drug, site) table."""

    drugs: pd.DataFrame
    sites: pd.DataFrame


def _mantel_haenszel(cell: pd.DataFrame, keys: list[str], z: float) -> pd.DataFrame:
    """Mantel-Haenszel odds ratio over strata with the Robins-Breslow-Greenland variance.

    ``cell`` holds one 2x2 table per row (``a, b, c, d``: exposed cases, exposed
    non-cases, unexposed cases, unexposed non-cases); rows sharing ``keys`` are strata
    of one comparison.
    """
    a, b, c, d = (cell[x].to_numpy(dtype=float) for x in "abcd")
    n = a + b + c + d
    r, s = a * d / n, b * c / n
    p, q = (a + d) / n, (b + c) / n
    parts = pd.DataFrame(
        {"R": r, "S": s, "PR": p * r, "PSQR": p * s + q * r, "QS": q * s}, index=cell.index
    )
    g = parts.groupby([cell[k] for k in keys], observed=True, sort=False).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = g["R"] / g["S"]
        var = (
            g["PR"] / (2 * g["R"] ** 2)
            + g["PSQR"] / (2 * g["R"] * g["S"])
            + g["QS"] / (2 * g["S"] ** 2)
        )
        se = np.sqrt(var)
        log_or = np.log(odds)
    return pd.DataFrame(
        {
            "odds_ratio": odds,
            "or_low": np.exp(log_or - z * se),
            "or_high": np.exp(log_or + z * se),
        }
    )


def site_concentration(
    frame: pd.DataFrame,
    *,
    drug_col: str = "treatment",
    site_col: str = "site",
    stratum: str | Sequence[str] = ("cancer",),
    min_cell: int = DEFAULT_MIN_CELL,
    top_k: int = 5,
    ratio_max: float = 2.0,
    alpha: float | None = 0.05,
    drugs: Sequence[str] | None = None,
) -> SiteConcentration:
    """How much of a drug's use comes from a few hospitals, standardized for case mix.

    A hospital treats its own mix of cancers, so its use of a drug is compared within
    strata ``k`` (cancers by default) with the rest of the network. For drug ``d`` and
    site ``s``, with ``a_k`` the site's lines on ``d`` in stratum ``k``, ``b_k`` its other
    lines there, ``c_k`` and ``d_k`` the same counts at every other site and ``n_k`` their
    sum::

        expected   = sum_k (a_k + b_k) * p_k,  p_k = (a_k + c_k) / n_k   (network share)
        sir        = sum_k a_k / expected                     indirect standardization
        odds_ratio = sum_k a_k d_k / n_k  /  sum_k b_k c_k / n_k          Mantel-Haenszel
        flagged    = odds_ratio > ratio_max  and  (1 - alpha) CI of odds_ratio above 1

    The flag reads the odds ratio, not ``sir``, because a share ratio cannot exceed
    ``1 / p_k``: for a drug given in half of a cancer's lines (palbociclib in breast) no
    site could ever reach ``sir > 2``, however hard a program pushes it. The odds ratio
    compares the site with the *other* sites, so a large hospital does not dilute its
    own baseline; its 95% CI uses the Robins-Breslow-Greenland variance of ``log OR``
    (R: ``mantelhaen.test(table)$conf.int``), which keeps small hospitals whose excess
    is noise unflagged. Only strata where ``d`` is used at all count.

    The drug table sets the ``top_k`` sites by the drug's lines against the weight those
    sites carry in the drug's strata: ``concentration = top_share / top_site_share`` near
    1 means the drug simply follows the big hospitals, well above 1 that a few drive it.

    Parameters
    ----------
    frame : DataFrame of shape (n_lines, ...)
        The analysis table: ``drug_col``, ``site_col`` and the ``stratum`` columns.
        Rows with a missing value in any of them are left out.
    drug_col, site_col : str
    stratum : str or sequence of str, default ``("cancer",)``
        Case-mix strata; ``()`` compares with the network's overall share.
    min_cell : int, default 11
        Suppresses counts; a site whose drug count is suppressed gets no ratio and is
        never flagged (too small to judge).
    top_k : int, default 5
    ratio_max : float, default 2.0
    alpha : float or None, default 0.05
        Significance required of a flag; ``None`` flags on ``odds_ratio`` alone.
    drugs : sequence of str, optional
        Restrict to these drugs (default: every drug in the table).

    Returns
    -------
    SiteConcentration
        ``drugs``: one row per drug, ``drug, lines, n_sites, top_sites`` (list of names),
        ``top_lines, top_share, top_site_share, concentration, n_flagged,
        flagged_sites`` (list of names).
        ``sites``: one row per (drug, site) with lines in any of the drug's strata:
        ``drug, site, site_lines, drug_lines`` (``Int64``), ``drug_share`` (the site's,
        over the drug's strata), ``network_share`` (the whole network's, same strata),
        ``expected, sir, odds_ratio, or_low, or_high`` (float), ``flagged`` (bool).

    Examples
    --------
    >>> t = pd.DataFrame({"site": ["A"] * 4 + ["B"] * 4, "cancer": ["c"] * 8,
    ...                   "treatment": ["x", "x", "x", "y", "y", "y", "y", "x"]})
    >>> res = site_concentration(t, min_cell=1, top_k=1)
    >>> res.sites.loc[res.sites.drug == "x", ["site", "expected", "sir", "odds_ratio"]]
      site  expected  sir  odds_ratio
    0    A       2.0  1.5    9.000000
    1    B       2.0  0.5    0.111111
    """
    min_cell = check_min_cell(min_cell)
    strata = [] if stratum in ((), []) else _as_columns(stratum, "stratum")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if not (isinstance(ratio_max, int | float) and ratio_max > 0):
        raise ValueError(f"ratio_max must be a positive number, got {ratio_max!r}")
    if alpha is not None and not (isinstance(alpha, float) and 0 < alpha < 1):
        raise ValueError(f"alpha must lie in (0, 1) or be None, got {alpha!r}")
    _check_columns(frame, [drug_col, site_col, *strata])
    data = frame[[drug_col, site_col, *strata]].dropna()
    # one stratum key column, so that "no strata" is one stratum
    skey = (
        data[strata].astype(str).agg("|".join, axis=1)
        if strata
        else pd.Series("all", index=data.index)
    )
    data = pd.DataFrame({"drug": data[drug_col], "site": data[site_col], "k": skey})
    if drugs is not None:
        unknown = sorted(set(drugs) - set(data["drug"]))
        if unknown:
            raise ValueError(f"drugs {unknown} do not occur in column {drug_col!r}")

    site_k = data.groupby(["site", "k"], observed=True).size().rename("site_k").reset_index()
    k_tot = data.groupby("k", observed=True).size().rename("k_lines").reset_index()
    drug_k = data.groupby(["drug", "k"], observed=True).size().rename("drug_k").reset_index()
    on_drug = data.groupby(["drug", "site", "k"], observed=True).size().rename("a").reset_index()
    if drugs is not None:
        drug_k = drug_k.loc[drug_k["drug"].isin(list(drugs))]

    # one 2x2 table per (drug, site, stratum where the drug is used and the site treats)
    cell = drug_k.merge(k_tot, on="k").merge(site_k, on="k")
    cell = cell.merge(on_drug, on=["drug", "site", "k"], how="left").fillna({"a": 0})
    cell["b"] = cell["site_k"] - cell["a"]
    cell["c"] = cell["drug_k"] - cell["a"]
    cell["d"] = cell["k_lines"] - cell["site_k"] - cell["c"]
    cell["exp"] = cell["site_k"] * cell["drug_k"] / cell["k_lines"]
    per = cell.groupby(["drug", "site"], observed=True, sort=True).agg(
        site_lines=("site_k", "sum"), obs=("a", "sum"), expected=("exp", "sum")
    )
    z = float(stats.norm.ppf(1 - (alpha if alpha is not None else 0.05) / 2))
    per = per.join(_mantel_haenszel(cell, ["drug", "site"], z)).reset_index()
    per["obs"] = per["obs"].astype("int64")
    drug_strata_lines = drug_k.merge(k_tot, on="k").groupby("drug")["k_lines"].sum()
    drug_total = drug_k.groupby("drug")["drug_k"].sum()

    ok = (per["obs"] >= min_cell).to_numpy()
    sites = pd.DataFrame(
        {
            "drug": per["drug"],
            "site": per["site"],
            "site_lines": suppress_counts(per["site_lines"], min_cell),
            "drug_lines": suppress_counts(per["obs"], min_cell),
        }
    )
    sites["drug_share"] = _share(sites["drug_lines"], sites["site_lines"])
    sites["network_share"] = per["drug"].map(drug_total / drug_strata_lines).astype(float)
    # expected counts are case mix x network rates (model quantities), not cells
    sites["expected"] = per["expected"].astype(float)
    for col, values in (
        ("sir", per["obs"] / per["expected"]),
        ("odds_ratio", per["odds_ratio"]),
        ("or_low", per["or_low"]),
        ("or_high", per["or_high"]),
    ):
        sites[col] = np.where(ok, values.to_numpy(dtype=float), np.nan)
    significant = (per["or_low"] > 1).to_numpy() if alpha is not None else True
    sites["flagged"] = ok & (per["odds_ratio"] > ratio_max).to_numpy() & significant

    # top-k sites per drug (ranked on raw counts inside the database)
    ranked = per.loc[per["obs"] > 0].sort_values(
        ["drug", "obs", "site"], ascending=[True, False, True], kind="stable"
    )
    top = ranked.groupby("drug", sort=True).head(top_k)
    top_lines = top.groupby("drug")["obs"].sum()
    top_weight = top.groupby("drug")["site_lines"].sum()
    names = top.groupby("drug")["site"].agg(list)
    flagged = sites.loc[sites["flagged"]].groupby("drug")["site"].agg(list)
    idx = drug_total.index
    drug_tab = pd.DataFrame(
        {
            "drug": idx,
            "lines": suppress_counts(drug_total.to_numpy(), min_cell),
            "n_sites": ranked.groupby("drug").size().reindex(idx, fill_value=0).to_numpy(),
            "top_sites": [names.get(d, []) for d in idx],
            "top_lines": suppress_counts(top_lines.reindex(idx, fill_value=0).to_numpy(), min_cell),
        }
    )
    drug_tab["n_sites"] = drug_tab["n_sites"].astype("int64")
    drug_tab["top_share"] = _share(drug_tab["top_lines"], drug_tab["lines"])
    top_site_share = top_weight.reindex(idx).to_numpy(dtype=float) / drug_strata_lines.to_numpy()
    drug_tab["top_site_share"] = np.where(drug_tab["top_share"].notna(), top_site_share, np.nan)
    drug_tab["concentration"] = drug_tab["top_share"] / drug_tab["top_site_share"]
    drug_tab["flagged_sites"] = [flagged.get(d, []) for d in idx]
    drug_tab["n_flagged"] = drug_tab["flagged_sites"].map(len).astype("int64")
    return SiteConcentration(drugs=drug_tab.reset_index(drop=True), sites=sites)


def population_representation(
    frame: pd.DataFrame,
    reference_shares: Mapping[str, float] | None = None,
    *,
    population_col: str = "population",
    id_col: str = "person_key",
    min_cell: int = DEFAULT_MIN_CELL,
) -> pd.DataFrame:
    """Patients per population against a reference distribution.

    ``share = patients(pop) / patients(all)`` and ``ratio = share / reference_share``:
    above 1 the population is better represented in the data than in the reference
    (e.g. pivotal-trial enrollment: FDA-approval trials enrolled about 76% White, 18%
    Asian, 3% Black patients), below 1 worse.

    Parameters
    ----------
    frame : DataFrame
        One row per line (or per patient); patients are distinct ``id_col`` values.
    reference_shares : mapping population -> share, optional
        Each in [0, 1], summing to at most 1 (the remainder is populations not listed).
        Names must match ``population_col``'s values (map them first, e.g.
        ``frame.assign(population=frame.population.map(...))``). ``None`` gives the
        counts and shares only.
    population_col, id_col : str
    min_cell : int, default 11

    Returns
    -------
    DataFrame
        One row per population in the data or the reference (sorted): ``population,
        patients`` (``Int64``), ``share, reference_share, ratio`` (float).

    Examples
    --------
    >>> t = pd.DataFrame({"person_key": list("abcdd"), "population": list("xxyzz")})
    >>> population_representation(t, {"x": 0.25, "y": 0.25}, min_cell=1)
      population  patients  share  reference_share  ratio
    0          x         2   0.50             0.25    2.0
    1          y         1   0.25             0.25    1.0
    2          z         1   0.25              NaN    NaN
    """
    min_cell = check_min_cell(min_cell)
    _check_columns(frame, [population_col, id_col])
    ref: dict[str, float] = {}
    if reference_shares is not None:
        if not isinstance(reference_shares, Mapping):
            raise ValueError(
                f"reference_shares must map population -> share, got {reference_shares!r}"
            )
        for k, v in reference_shares.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise ValueError(f"reference_shares[{k!r}] must lie in [0, 1], got {v!r}")
            ref[str(k)] = float(v)
        if sum(ref.values()) > 1 + 1e-9:
            raise ValueError(f"reference_shares sum to {sum(ref.values()):.4g} > 1")
    data = frame[[population_col, id_col]].dropna()
    counts = data.groupby(population_col, observed=True)[id_col].nunique()
    labels = sorted(set(map(str, counts.index)) | set(ref))
    counts.index = counts.index.map(str)
    raw = counts.reindex(labels, fill_value=0)
    out = pd.DataFrame({"population": labels})
    out["patients"] = suppress_counts(raw.to_numpy(), min_cell)
    total = suppress_counts(pd.Series(int(data[id_col].nunique()), index=out.index), min_cell)
    out["share"] = _share(out["patients"], total)
    out["reference_share"] = out["population"].map(ref).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = np.where(
            out["reference_share"] > 0, out["share"] / out["reference_share"], np.nan
        )
    return out
