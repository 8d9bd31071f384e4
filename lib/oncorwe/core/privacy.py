"""The one small-cell policy, and the identifier checks: every output's count goes here.

Every count a stage writes or a report shows goes through :func:`suppress` (one count),
:func:`suppress_counts` (an array of counts) or :func:`suppress_table` (a table, with
derived shares and secondary suppression) first, and every rendered page can be scanned
with :func:`check_no_identifiers` before it is published. The outputs are scanned for
counts under the threshold by :func:`find_small_counts` (JSON, Parquet) and
:func:`find_small_counts_in_html` (rendered pages: tables, figures, text). A
patient-level table that leaves the platform is checked for k-anonymity on its
quasi-identifiers (:func:`k_anonymity_violations`, :func:`require_k_anonymous`).

The rule is the project's (``privacy.min_cell_count`` in ``params.yaml``): a count below
``min_cell`` is not shown (zero included, as in the stage metrics), and neither is any
share or rate computed from it. With ``complement_within``, a second cell is suppressed
in any group where exactly one was, so that the group total cannot give the hidden
cell back by subtraction.

Example
-------
>>> import pandas as pd
>>> df = pd.DataFrame({"cancer": ["a", "b"], "lines": [120, 4], "share": [0.97, 0.03]})
>>> suppress_table(df, ["lines"], 11, derived={"share": "lines"})["lines"].tolist()
[120, <NA>]
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd

from oncorwe.core.errors import OncorweError

#: What a patient or line key looks like when it leaves the feature stage
#: (:func:`oncorwe.core.pseudonym.pseudonym`: HMAC-SHA256, 16 hex digits).
#: Digits after a decimal point (plotly's float JSON) are not keys.
PATIENT_KEY = re.compile(r"(?<![0-9A-Za-z.])[0-9a-f]{16}(?![0-9A-Za-z])")
#: An exact calendar date.
EXACT_DATE = re.compile(r"(?<!\d)(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?!\d)")
DEFAULT_PATTERNS: dict[str, re.Pattern[str]] = {
    "patient key": PATIENT_KEY,
    "exact date": EXACT_DATE,
}
#: Column names taken for counts when ``count_cols`` is not given.
COUNT_NAME = re.compile(
    r"^(n|count|lines|patients|persons|events|tested|positive|known)(_.*)?$|_(n|count)$"
)


class PrivacyError(OncorweError):
    """A report or table that would disclose an identifier or a small cell."""


#: ``privacy.min_cell_count``'s default in params.yaml; callers pass the configured value.
DEFAULT_MIN_CELL = 11


def check_min_cell(min_cell: Any) -> int:
    """``min_cell`` as an int, refusing anything but an integer >= 1 (a bool, 0, 2.5)."""
    if isinstance(min_cell, bool) or not isinstance(min_cell, int | np.integer) or min_cell < 1:
        raise ValueError(f"min_cell must be an integer >= 1, got {min_cell!r}")
    return int(min_cell)


def suppress(count: int, min_cell: int) -> int | None:
    """``count``, or None when it is under the small-cell threshold (zero included).

    >>> suppress(12, 11), suppress(3, 11), suppress(0, 11)
    (12, None, None)
    """
    return int(count) if count >= min_cell else None


def suppress_counts(counts: Any, min_cell: int = DEFAULT_MIN_CELL) -> pd.Series:
    """Counts as nullable integers, those below ``min_cell`` set to ``<NA>``.

    Parameters
    ----------
    counts : array-like of shape (k,)
    min_cell : int

    Returns
    -------
    Series of dtype ``Int64`` (the index of ``counts`` when it is a Series).

    Examples
    --------
    >>> suppress_counts([3, 11, 250], min_cell=11).tolist()
    [<NA>, 11, 250]
    """
    min_cell = check_min_cell(min_cell)
    s = counts if isinstance(counts, pd.Series) else pd.Series(counts)
    s = s.astype("Int64")
    return s.mask(s < min_cell)


def suppressed_label(min_cell: int) -> str:
    """How a suppressed count reads in a table: ``"<11"``."""
    return f"<{int(min_cell)}"


def suppress_table(
    df: pd.DataFrame,
    count_cols: Sequence[str],
    min_cell: int,
    *,
    derived: Mapping[str, str | Sequence[str]] | None = None,
    complement_within: Sequence[str] | None = None,
    as_text: bool = False,
) -> pd.DataFrame:
    """Return a copy of ``df`` with counts below ``min_cell`` suppressed.

    Parameters
    ----------
    df : DataFrame
        One row per published cell.
    count_cols : list of str
        Columns holding counts of patients or lines.
    min_cell : int
        Counts ``< min_cell`` (zero included) are suppressed.
    derived : mapping column -> count column(s), optional
        Shares, rates or medians computed from counts: a value is suppressed when any of
        the counts it came from is (``{"tested_share": ["tested", "lines"]}``).
    complement_within : list of str, optional
        Columns defining groups whose total is published elsewhere: where a group has
        exactly one suppressed cell in a count column, its smallest other cell is
        suppressed too (secondary suppression).
    as_text : bool
        False (default): suppressed counts become ``<NA>`` in a nullable ``Int64`` column.
        True: counts become strings, suppressed ones ``"<min_cell"`` (for display).

    Returns
    -------
    DataFrame
        Same shape and row order as ``df``.
    """
    if min_cell < 1:
        raise OncorweError(f"min_cell must be >= 1, got {min_cell}")
    missing = [c for c in (*count_cols, *(derived or {})) if c not in df.columns]
    if missing:
        raise OncorweError(f"suppress_table: columns {missing} are not in the table")
    out = df.copy()
    hidden: dict[str, pd.Series] = {}
    for col in count_cols:
        values = pd.to_numeric(out[col], errors="raise")
        small = values.notna() & (values < min_cell)
        if complement_within:
            small = _complement(values, small, out, list(complement_within))
        hidden[col] = small
        kept = values.where(~small)
        out[col] = kept.round().astype("Int64")
    for col, sources in (derived or {}).items():
        sources = [sources] if isinstance(sources, str) else list(sources)
        unknown = [s for s in sources if s not in hidden]
        if unknown:
            raise OncorweError(
                f"suppress_table: derived column {col!r} refers to {unknown}, "
                f"which are not among count_cols {list(count_cols)}"
            )
        mask = np.zeros(len(out), dtype=bool)
        for s in sources:
            mask |= hidden[s].to_numpy()
        out[col] = out[col].astype("Float64" if _is_number(out[col]) else "object")
        out.loc[mask, col] = pd.NA
    if as_text:
        label = suppressed_label(min_cell)
        for col in count_cols:
            out[col] = [label if pd.isna(v) else f"{int(v):,}" for v in out[col]]
    return out


def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _complement(values: pd.Series, small: pd.Series, df: pd.DataFrame, by: list[str]) -> pd.Series:
    hide = small.to_numpy().copy()
    vals = values.to_numpy(dtype=float, na_value=np.nan)
    for pos in df.groupby(by, sort=False, dropna=False).indices.values():
        if int(hide[pos].sum()) != 1:
            continue
        candidates = [p for p in pos if not hide[p] and not np.isnan(vals[p])]
        if candidates:
            hide[min(candidates, key=lambda p: vals[p])] = True
    return pd.Series(hide, index=small.index)


@dataclass(frozen=True)
class Finding:
    """One thing that should not be in a report."""

    kind: str
    where: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind} {self.value!r} in {self.where}"


def find_identifiers(
    obj: str | pd.DataFrame | Iterable[pd.DataFrame],
    patterns: Mapping[str, re.Pattern[str] | str] | None = None,
    *,
    min_cell: int | None = None,
    count_cols: Sequence[str] | None = None,
    allow: Iterable[str] = (),
) -> list[Finding]:
    """List what :func:`check_no_identifiers` would object to (see there)."""
    pats = {
        k: re.compile(v) if isinstance(v, str) else v
        for k, v in (DEFAULT_PATTERNS if patterns is None else patterns).items()
    }
    allowed = set(allow)
    found: list[Finding] = []
    if isinstance(obj, str):
        found += _scan_text(obj, "text", pats, allowed)
        return found
    frames = [obj] if isinstance(obj, pd.DataFrame) else list(obj)
    for i, frame in enumerate(frames):
        name = f"table {i}" if len(frames) > 1 else "table"
        found += _scan_text(
            "\n".join(map(str, [*frame.columns, *frame.index.astype(str)])),
            f"{name} labels",
            pats,
            allowed,
        )
        for col in frame.columns:
            s = frame[col]
            if s.dtype == object or pd.api.types.is_string_dtype(s):
                text = "\n".join(str(v) for v in s.dropna().unique())
                found += _scan_text(text, f"{name} column {col!r}", pats, allowed)
        if min_cell is not None:
            cols = (
                list(count_cols)
                if count_cols is not None
                else [c for c in frame.columns if COUNT_NAME.search(str(c))]
            )
            for col in cols:
                if col not in frame.columns:
                    raise OncorweError(f"check_no_identifiers: no column {col!r} in {name}")
                values = pd.to_numeric(frame[col], errors="coerce")
                small = values[values.notna() & (values < min_cell)]
                for v in small.unique()[:5]:
                    found.append(
                        Finding(f"count under {min_cell}", f"{name} column {col!r}", f"{v:g}")
                    )
    return found


def _scan_text(
    text: str, where: str, pats: Mapping[str, re.Pattern[str]], allowed: set[str]
) -> list[Finding]:
    out = []
    for kind, pat in pats.items():
        hits = [m.group(0) for m in pat.finditer(text) if m.group(0) not in allowed]
        out += [Finding(kind, where, h) for h in dict.fromkeys(hits)][:5]
    return out


def check_no_identifiers(
    obj: str | pd.DataFrame | Iterable[pd.DataFrame],
    patterns: Mapping[str, re.Pattern[str] | str] | None = None,
    *,
    min_cell: int | None = None,
    count_cols: Sequence[str] | None = None,
    allow: Iterable[str] = (),
) -> None:
    """Raise :class:`PrivacyError` if ``obj`` holds something a report must not show.

    Parameters
    ----------
    obj : str, DataFrame or list of DataFrames
        A rendered report (text: for HTML, pass :func:`oncorwe.report.render.visible_text`
        so that the embedded plotly.js library is not scanned) or the tables it shows.
    patterns : mapping name -> regex, optional
        Default :data:`DEFAULT_PATTERNS`: a 16-hex-digit keyed hash (patient or line key)
        and an exact date ``YYYY-MM-DD``.
    min_cell : int, optional
        For tables: a count column holding a value ``< min_cell`` is a finding.
    count_cols : list of str, optional
        The count columns; default: columns named like counts (``n``, ``lines``,
        ``patients``, ``tested``, ``*_n``, ...).
    allow : iterable of str
        Exact matches that are fine (the page's generation date).

    Examples
    --------
    >>> check_no_identifiers("median PFS 5.4 months")
    >>> check_no_identifiers("diagnosed 2019-03-04")
    Traceback (most recent call last):
    ...
    oncorwe.core.privacy.PrivacyError: report holds 1 disallowed value(s): exact date '2019-03-04' in text
    """
    found = find_identifiers(obj, patterns, min_cell=min_cell, count_cols=count_cols, allow=allow)
    if found:
        shown = "; ".join(map(str, found[:10]))
        raise PrivacyError(f"report holds {len(found)} disallowed value(s): {shown}")


# ------------------------------------------------------------- counts tied by sums
@dataclass(frozen=True)
class Sum:
    """``total = sum(parts)`` (``exhaustive``) or ``total = sum(parts) + a remainder``.

    The remainder is the unnamed rest (the rows without an event, say): it is never
    shown, but it is a cell too, and a small one can be given back by subtraction.
    """

    total: str
    parts: tuple[str, ...]
    exhaustive: bool = False


def suppress_related(
    counts: Mapping[str, int | None], sums: Sequence[Sum], min_cell: int
) -> dict[str, int | None]:
    """``counts`` with every count under ``min_cell`` withheld (None), and as many more
    as it takes that no withheld cell can be derived from the counts shown.

    A cell is withheld when it is under ``min_cell`` (zero included) or None already.
    For each :class:`Sum`, the cells are its total, its parts and (unless exhaustive) the
    remainder ``total - sum(parts)``, never shown. Where exactly one of them is unknown
    and it must stay hidden (a withheld count, or a remainder under ``min_cell``), the
    smallest part shown is withheld too (the total when no part is shown); this is
    repeated until no sum gives a hidden cell back. Keys a sum names that ``counts``
    lacks count as unknown (not published).

    Examples
    --------
    12 patients with 2 events: the events are withheld. 30 with 25: the 5 without an
    event would follow from the total, so the events are withheld.

    >>> ev = [Sum("n", ("events",))]
    >>> suppress_related({"n": 12, "events": 2}, ev, 11)
    {'n': 12, 'events': None}
    >>> suppress_related({"n": 30, "events": 25}, ev, 11)
    {'n': 30, 'events': None}
    >>> arms = [Sum("n", ("treated", "control"), exhaustive=True)]
    >>> suppress_related({"n": 60, "treated": 5, "control": 55}, arms, 11)
    {'n': 60, 'treated': None, 'control': None}
    """
    min_cell = check_min_cell(min_cell)
    value = {k: None if v is None else int(v) for k, v in counts.items()}
    hidden = {k for k, v in value.items() if v is None or v < min_cell}
    changed = True
    while changed:
        changed = False
        for s in sums:
            cells = [s.total, *s.parts]
            unknown = [c for c in cells if c not in value or c in hidden]
            remainder_small = False
            if not s.exhaustive:
                known = all(value.get(c) is not None for c in cells)
                rest = value[s.total] - sum(value[p] for p in s.parts) if known else None
                remainder_small = rest is not None and rest < min_cell
            n_unknown = len(unknown) + (0 if s.exhaustive else 1)
            if n_unknown != 1:
                continue
            sensitive = remainder_small if not unknown else unknown[0] in hidden
            if not sensitive:
                continue
            shown = [p for p in s.parts if p in value and p not in hidden]
            target = min(shown, key=lambda p: value[p]) if shown else s.total
            if target in value and target not in hidden:
                hidden.add(target)
                changed = True
    return {k: None if k in hidden else v for k, v in value.items()}


def suppress_records(
    records: Sequence[Mapping[str, Any]],
    min_cell: int,
    *,
    columns: Sequence[str],
    sums: Sequence[Sum] = (),
    derived: Mapping[str, str | Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Rows of a published table (dicts) with their counts suppressed, within and across rows.

    Within a row, :func:`suppress_related` over ``columns`` and ``sums`` (a group's
    events and its rows without one). Across rows, each column's total is taken as
    known (it is published elsewhere, or follows from another table of the same rows):
    where exactly one row's value is withheld, the smallest other is withheld too.
    A ``derived`` value (a rate, a score computed from a count) is withheld with its count.

    Examples
    --------
    >>> rows = [{"g": "a", "n": 40}, {"g": "b", "n": 5}, {"g": "c", "n": 30}]
    >>> [r["n"] for r in suppress_records(rows, 11, columns=["n"])]
    [40, None, None]
    """
    out = []
    for rec in records:
        counts = {c: rec[c] for c in columns if c in rec}
        out.append({**rec, **suppress_related(counts, sums, min_cell)})
    for c in columns:
        have = [r for r in out if c in r]
        if sum(r[c] is None for r in have) != 1:
            continue
        shown = [r for r in have if r[c] is not None]
        if shown:
            min(shown, key=lambda r: r[c])[c] = None
    for col, sources in (derived or {}).items():
        sources = [sources] if isinstance(sources, str) else list(sources)
        for r, rec in zip(out, records, strict=True):
            if col in r and any(rec.get(s) is not None and r.get(s) is None for s in sources):
                r[col] = None
    return out


# ------------------------------------------------------------- scanning outputs
#: A key or column that holds counts of patients or rows (``n``, ``n_treated``,
#: ``events``, ``outside_rows``, ``counts``...), or a mapping / list of them
#: (``treatments`` of an arm table, ``confirmation_arms``, a histogram's ``counts``).
COUNT_KEY = re.compile(
    r"^(n|counts?|rows|lines|patients|persons|events|tested|positive|known|parts|treatments)"
    r"(_.*)?$|_(n|counts?|rows|lines|patients|persons|events|arms)$"
)
#: Count-like names that count something other than patients or rows (models, trials
#: of a study or a simulation, hypotheses, groups, settings): never a small cell.
NOT_PATIENT_COUNTS = frozenset(
    {
        "n_trials",
        "n_candidates",
        "n_confirmed",
        "n_safety_candidates",
        "n_safety_confirmed",
        "n_blinded",
        "n_not_testable",
        "n_go",
        "n_groups",
        "n_splits",
        "n_estimators",
        "n_jobs",
        "n_replicates",
        "n_models",
    }
)


def _is_count(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def find_small_counts(
    obj: Any,
    min_cell: int,
    where: str = "",
    *,
    not_counts: Iterable[str] = NOT_PATIENT_COUNTS,
) -> list[Finding]:
    """Every count in 1..``min_cell - 1`` in a JSON-like object or a table.

    A count is an integer under a count-like key (:data:`COUNT_KEY`), or in a list or
    mapping under one (a histogram's ``counts``, an arm table's ``treatments``); a
    table's count is an integer in a count-like column. Zero is not flagged (a structural
    zero, such as no trimmed rows, is no patient), nor keys in ``not_counts``.

    Examples
    --------
    >>> find_small_counts({"by_site": [{"n": 40, "events": 3}]}, 11)
    [Finding(kind='count under 11', where='.by_site[0].events', value='3')]
    >>> find_small_counts({"n_trials": 2, "counts": [None, 25]}, 11)
    []
    """
    skip = set(not_counts)
    found: list[Finding] = []
    kind = f"count under {min_cell}"

    def small(v: Any) -> bool:
        return _is_count(v) and 0 < int(v) < min_cell

    def walk(o: Any, path: str, counted: bool) -> None:
        if isinstance(o, pd.DataFrame):
            for col in o.columns:
                if str(col) in skip or not is_count_name(str(col)):
                    continue
                s = o[col]
                if pd.api.types.is_integer_dtype(s):
                    for v in s.dropna().unique()[:5]:
                        if 0 < int(v) < min_cell:
                            found.append(Finding(kind, f"{path} column {col!r}", str(int(v))))
            return
        if isinstance(o, Mapping):
            for k, v in o.items():
                key = str(k)
                is_count = counted or (key not in skip and bool(COUNT_KEY.search(key)))
                if key in skip:
                    continue
                if is_count and small(v):
                    found.append(Finding(kind, f"{path}.{key}", str(int(v))))
                walk(v, f"{path}.{key}", is_count and isinstance(v, Mapping | list))
        elif isinstance(o, list | tuple):
            for i, v in enumerate(o):
                if counted and small(v):
                    found.append(Finding(kind, f"{path}[{i}]", str(int(v))))
                walk(v, f"{path}[{i}]", False)

    walk(obj, where, False)
    return found


def is_count_name(name: str) -> bool:
    """True for a column or key named like a count (:data:`COUNT_NAME` or :data:`COUNT_KEY`)."""
    return bool(COUNT_NAME.search(name) or COUNT_KEY.search(name))


# ------------------------------------------------------------- scanning rendered pages
#: Words that make a table header or a figure's trace / axis name a count of patients,
#: lines or rows ("lines", "drug lines", "confirmation rows on drug", "trial N").
COUNT_WORDS = frozenset(
    {"n", "count", "counts", "lines", "patients", "persons", "people", "events", "rows"}
    | {"tested", "positive", "known"}
)
#: Words that make such a name a quantity computed from counts, not a count ("share of
#: lines", "mean events", "rows needed per arm", "observed / expected").
DERIVED_WORDS = frozenset(
    {"share", "shares", "rate", "percent", "median", "mean", "needed", "expected", "ratio"}
    | {"power", "probability"}
)
#: A count written in prose or hover text: "n = 7", "7 patients", "1,234 lines".
COUNT_PHRASE = re.compile(
    r"(?<![\w.])n\s*[=:]\s*(\d[\d,]*)(?![\d.])"
    r"|(?<![\w.,<])(\d[\d,]*)\s+(?:patients|lines|persons|people|events|rows)\b",
    re.IGNORECASE,
)
#: A suppressed cell as the reports write it: ``<11``.
SUPPRESSED = re.compile(r"^\s*<\s*\d+\s*$")


def is_count_label(text: str) -> bool:
    """True for a human-readable header or axis title naming a count (a word of
    :data:`COUNT_WORDS` and none of :data:`DERIVED_WORDS`); :func:`is_count_name` is
    its counterpart for the keys and column names of the JSON and Parquet outputs.

    >>> is_count_label("drug lines"), is_count_label("share of lines"), is_count_label("auc")
    (True, False, False)
    """
    words = set(re.findall(r"[a-z]+", str(text).lower()))
    return bool(words & COUNT_WORDS) and not words & DERIVED_WORDS


def _as_count(text: Any) -> int | None:
    """A cell or hover string that reads as a whole number (``"1,234"``, ``"7"``,
    ``"7.0"``), as an int; None for anything else (``"<11"``, ``"12.5%"``, ``""``)."""
    if isinstance(text, bool | np.bool_):
        return None
    if isinstance(text, int | float | np.integer | np.floating):
        v = float(text)
        return int(v) if np.isfinite(v) and v == round(v) else None
    s = str(text).strip().replace(",", "")
    return int(float(s)) if re.fullmatch(r"\d+(?:\.0+)?", s) else None


class _TableParser(HTMLParser):
    """The ``<table>`` elements of a page as header and body rows of (tag, text, colspan)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict[str, list]] = []
        self._table: dict[str, list] | None = None
        self._row: list[tuple[str, str, int]] | None = None
        self._cell: list[str] | None = None
        self._cell_tag, self._span, self._in_head = "", 1, False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = {"head": [], "body": []}
        elif self._table is None:
            return
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell, self._cell_tag = [], tag
            span = str(dict(attrs).get("colspan") or "1")
            self._span = int(span) if span.isdigit() else 1
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self._table is None:
            return
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append((self._cell_tag, " ".join("".join(self._cell).split()), self._span))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table["head" if self._in_head else "body"].append(self._row)
            self._row = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "table":
            self.tables.append(self._table)
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_tables(page: str) -> list[tuple[list[str], list[list[str]]]]:
    """Each ``<table>`` of an HTML page as (column headers, body rows of cell texts).

    The headers are the last row of ``<thead>`` (pandas' and its Styler's tables), else
    the first row when every cell of it is a ``<th>``; a table with neither has no
    headers (``[]``). A cell spanning columns is repeated.

    >>> html_tables("<table><tr><th>n</th></tr><tr><td>40</td></tr></table>")
    [(['n'], [['40']])]
    """
    p = _TableParser()
    p.feed(page)
    p.close()

    def cells(row: list[tuple[str, str, int]]) -> list[str]:
        return [text for _, text, span in row for _ in range(span)]

    out = []
    for t in p.tables:
        head, body = t["head"], list(t["body"])
        if head:
            headers = cells(head[-1])
        elif body and all(tag == "th" for tag, _, _ in body[0]):
            headers = cells(body.pop(0))
        else:
            headers = []
        out.append((headers, [cells(r) for r in body]))
    return out


_NEWPLOT = re.compile(r"Plotly\.newPlot\(")
_SPACE_COMMA = re.compile(r"\s*,?\s*")


def plotly_figures(page: str) -> list[dict[str, Any]]:
    """The figures a page draws, as plotly JSON: ``{"data": [...], "layout": {...}}``
    for each ``Plotly.newPlot("id", data, layout, ...)`` call (how plotly's HTML and
    notebook renderers embed a figure). A call whose data cannot be read is returned
    as ``{"unreadable": position}``, so that a scan says so instead of passing it.

    >>> plotly_figures('Plotly.newPlot("d", [{"type": "bar", "y": [3]}], {})')
    [{'data': [{'type': 'bar', 'y': [3]}], 'layout': {}}]
    """
    decoder = json.JSONDecoder()

    def value_at(pos: int) -> tuple[Any, int]:
        return decoder.raw_decode(page, _SPACE_COMMA.match(page, pos).end())

    found: list[dict[str, Any]] = []
    for m in _NEWPLOT.finditer(page):
        try:
            div, pos = value_at(m.end())
        except json.JSONDecodeError:
            continue  # not a call on a figure (plotly.js's own source, if it was kept)
        if not isinstance(div, str):
            continue
        try:
            data, pos = value_at(pos)
            layout, _ = value_at(pos)
        except json.JSONDecodeError:
            found.append({"unreadable": m.start()})
            continue
        found.append({"data": data, "layout": layout})
    return found


def plotly_array(value: Any) -> np.ndarray:
    """A trace's array as numpy: a list as it is, or a typed-array spec (plotly >= 6
    writes ``{"dtype": "f8", "bdata": <base64>, "shape": "2, 3"}``) decoded."""
    if isinstance(value, Mapping) and "bdata" in value and "dtype" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            arr = arr.reshape([int(s) for s in str(shape).split(",")])
        return arr
    if value is None:
        return np.array([], dtype=object)
    return np.asarray(value if isinstance(value, list | tuple) else [value], dtype=object)


def _title(axis: Mapping[str, Any]) -> str:
    title = axis.get("title")
    return str(title.get("text") or "") if isinstance(title, Mapping) else str(title or "")


def _point_strings(trace: Mapping[str, Any], n: int) -> list[list[str]]:
    """Per point, the strings its hover box or label may show (text, hovertext,
    customdata)."""
    out: list[list[str]] = [[] for _ in range(n)]
    for key in ("text", "hovertext", "customdata"):
        value = trace.get(key)
        if isinstance(value, str):
            for strings in out:
                strings.append(value)
            continue
        arr = plotly_array(value)
        for i, v in enumerate(arr[:n] if arr.ndim else []):
            items = v if isinstance(v, list | tuple | np.ndarray) else [v]
            out[i] += [str(x) for x in items]
    return out


def _figure_small_counts(fig: Mapping[str, Any], min_cell: int, where: str) -> list[Finding]:
    """Counts in 1..``min_cell - 1`` a figure shows: the bar heights and per-point
    strings of a count-like trace (its name or its value axis' title names a count,
    :func:`is_count_label`; a point labelled suppressed, ``"<11"``, is a stub, not a
    count), and counts written as phrases in any trace's hover text (``"n = 7"``)."""
    kind = f"count under {min_cell}"
    layout = fig.get("layout") or {}
    found: list[Finding] = []
    for t_i, tr in enumerate(fig.get("data") or []):
        here = f"{where} trace {t_i} ({tr.get('name', '')})"
        letter = "x" if tr.get("orientation") == "h" else "y"
        ref = str(tr.get(f"{letter}axis") or letter)
        axis = layout.get(f"{letter}axis{ref[1:]}") or {}
        values = plotly_array(tr.get(letter))
        strings = _point_strings(tr, len(values))
        counted = tr.get("type", "scatter") in ("bar", "scatter", "histogram") and (
            is_count_label(tr.get("name", "")) or is_count_label(_title(axis))
        )
        if counted:
            for i, v in enumerate(values):
                if any(SUPPRESSED.match(s) for s in strings[i]):
                    continue
                shown = [_as_count(v), *(_as_count(s) for s in strings[i])]
                for c in dict.fromkeys(c for c in shown if c is not None and 0 < c < min_cell):
                    found.append(Finding(kind, f"{here} point {i}", str(c)))
        texts = [s for point in strings for s in point]
        texts += [str(tr.get(k)) for k in ("hovertemplate", "texttemplate") if tr.get(k)]
        found += _phrase_counts("\n".join(texts), min_cell, f"{here} hover text")
    return found


def _phrase_counts(text: str, min_cell: int, where: str) -> list[Finding]:
    """Counts under ``min_cell`` written as :data:`COUNT_PHRASE` in ``text``."""
    kind = f"count under {min_cell}"
    out = []
    for m in COUNT_PHRASE.finditer(text):
        c = _as_count(m.group(1) or m.group(2))
        if c is not None and 0 < c < min_cell:
            out.append(Finding(kind, where, m.group(0).strip()))
    return list(dict.fromkeys(out))[:5]


def find_small_counts_in_html(page: str, min_cell: int, where: str = "page") -> list[Finding]:
    """Every count in 1..``min_cell - 1`` a rendered page shows: in its tables, figures
    and text.

    * a table cell that reads as a whole number under a header naming a count
      (:func:`is_count_label`: ``lines``, ``patients``, ``drug lines``, ``n``; not
      ``share of lines`` or ``mean events``);
    * a figure's count (:func:`plotly_figures`; bar heights and hover strings of a
      count-like trace, count phrases in any hover text);
    * a count phrase in the page's text outside tables and scripts (``"7 patients"``).

    Zero is not flagged (as in :func:`find_small_counts`). Pass the page through
    :func:`oncorwe.report.render.visible_text` first to skip the embedded plotly.js
    library (the scan is the same, only faster).

    Examples
    --------
    >>> page = "<table><thead><tr><th>site</th><th>lines</th></tr></thead>"
    >>> page += "<tbody><tr><td>H1</td><td>7</td></tr><tr><td>H2</td><td>&lt;11</td></tr>"
    >>> find_small_counts_in_html(page + "</tbody></table>", 11)
    [Finding(kind='count under 11', where="page table 0 column 'lines' row 0", value='7')]
    """
    kind = f"count under {min_cell}"
    found: list[Finding] = []
    for t_i, (headers, rows) in enumerate(html_tables(page)):
        counted = [i for i, h in enumerate(headers) if is_count_label(h)]
        for r_i, row in enumerate(rows):
            for c_i in counted:
                c = _as_count(row[c_i]) if c_i < len(row) else None
                if c is not None and 0 < c < min_cell:
                    place = f"{where} table {t_i} column {headers[c_i]!r} row {r_i}"
                    found.append(Finding(kind, place, str(c)))
    for f_i, fig in enumerate(plotly_figures(page)):
        if "unreadable" in fig:
            found.append(Finding("unreadable figure", f"{where} figure {f_i}", "newPlot"))
            continue
        found += _figure_small_counts(fig, min_cell, f"{where} figure {f_i}")
    text = re.sub(r"<(script|style|table)\b.*?</\1\s*>", " ", page, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    found += _phrase_counts(html.unescape(text), min_cell, f"{where} text")
    return found


# ------------------------------------------------------------- k-anonymity
#: The quasi-identifiers a patient-level table is checked on, where it has them: age (as
#: its :data:`AGE_BAND_YEARS`-year band), sex, population and hospital / site. Together
#: they can single a patient out to someone who knows them from elsewhere.
QUASI_IDENTIFIERS = ("age", "sex", "population", "site", "hospital")
AGE_BAND_YEARS = 5
#: ``privacy.k``'s default in params.yaml; callers pass the configured value.
DEFAULT_K = 5


class KAnonymityError(PrivacyError):
    """A patient-level table with an equivalence class smaller than ``k``."""


def check_k(k: Any) -> int:
    """``k`` as an int, refusing anything but an integer >= 1 (a bool, 0, 2.5)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def age_band(age: Any, width: int = AGE_BAND_YEARS) -> pd.Series:
    """Ages as their ``width``-year band, ``"60-64"`` (missing stays missing).

    >>> age_band([64, 65.0, None]).tolist()
    ['60-64', '65-69', <NA>]
    """
    a = pd.to_numeric(pd.Series(age), errors="coerce")
    lo = np.floor(a / width) * width
    text = [pd.NA if pd.isna(v) else f"{int(v)}-{int(v) + width - 1}" for v in lo]
    return pd.Series(text, index=a.index, dtype="string")


def quasi_identifier_view(
    frame: pd.DataFrame,
    names: Sequence[str] = QUASI_IDENTIFIERS,
    *,
    age: str = "age",
    width: int = AGE_BAND_YEARS,
) -> pd.DataFrame:
    """The columns of ``frame`` among ``names``, the ``age`` column as its band (the
    quasi-identifiers :func:`require_k_anonymous` checks)."""
    cols = [c for c in names if c in frame.columns]
    view = frame[cols].copy()
    if age in view.columns:
        view[age] = age_band(view[age], width)
    return view


def k_anonymity_violations(frame: pd.DataFrame, quasi: Sequence[str], k: int) -> pd.DataFrame:
    """The equivalence classes of ``frame`` on ``quasi`` that hold fewer than ``k`` rows.

    An equivalence class is a combination of values of the quasi-identifier columns
    (a missing value, of any kind, is one value of its own: a blank is as telling as a
    code); a table is k-anonymous when every class holds at least ``k`` rows.

    Parameters
    ----------
    frame : DataFrame of shape (n, m)
    quasi : list of str
        Quasi-identifier columns (numeric or string codes, missing values allowed).
    k : int
        Smallest class allowed.

    Returns
    -------
    DataFrame
        One row per class under ``k``: its values of ``quasi`` and its size in
        ``class_size``, smallest first (empty when the table is k-anonymous).

    Examples
    --------
    >>> df = pd.DataFrame({"sex": ["F", "F", "M", None], "site": [1, 1, 1, 2]})
    >>> k_anonymity_violations(df, ["sex", "site"], 2)["class_size"].tolist()
    [1, 1]
    """
    k = check_k(k)
    quasi = list(quasi)
    missing = [c for c in quasi if c not in frame.columns]
    if missing:
        raise OncorweError(f"k_anonymity_violations: columns {missing} are not in the table")
    if not quasi or frame.empty:
        n = len(frame)
        return pd.DataFrame({"class_size": [n]} if 0 < n < k else {"class_size": []})
    # as Python objects: a code and its string ("1") stay apart, equal numbers (1, 1.0)
    # are one value, and every kind of missing value (None, NaN, NA) is one class
    keys = frame[quasi].astype(object).where(frame[quasi].notna(), None)
    sizes = keys.groupby(quasi, dropna=False, sort=False).size().rename("class_size")
    small = sizes[sizes < k].reset_index()
    return small.sort_values("class_size", kind="stable").reset_index(drop=True)


def require_k_anonymous(
    frame: pd.DataFrame,
    k: int,
    what: str,
    quasi: Sequence[str] | None = None,
    *,
    remedy: str = "coarsen or drop a quasi-identifier (wider age bands, hospitals grouped "
    "by region), or remove the rare rows, before exporting",
) -> None:
    """Raise :class:`KAnonymityError` (one paragraph naming ``what``, the
    quasi-identifiers and a class under ``k``) unless ``frame`` is k-anonymous on its
    quasi-identifiers (:func:`quasi_identifier_view` of ``quasi``, default
    :data:`QUASI_IDENTIFIERS`: 5-year age band, sex, population, hospital / site).

    This is the policy for a **user's** patient-level table on its way out: refused,
    never altered. Generalising a real table silently would change what the data owner
    analyses and shares, and which characteristic to coarsen (and how far) is the data
    owner's decision, made knowing the study; a data-protection officer expects the
    platform to stop and say why. (A synthetic export is generalised instead:
    :func:`code_age_bands`.) The message names a class by its values, not its size,
    and ends with ``remedy``.
    """
    view = quasi_identifier_view(frame, QUASI_IDENTIFIERS if quasi is None else quasi)
    bad = k_anonymity_violations(view, list(view.columns), k)
    if bad.empty:
        return
    first = ", ".join(
        f"{c} {'missing' if pd.isna(v) else v}" for c, v in bad.iloc[0].drop("class_size").items()
    )
    raise KAnonymityError(
        f"{what} is not {k}-anonymous: {len(bad)} combination(s) of its quasi-identifiers "
        f"({', '.join(view.columns) or 'none'}; age in {AGE_BAND_YEARS}-year bands) hold "
        f"fewer than {k} patients (e.g. {first or 'the whole table'}), and anyone who knows "
        f"those characteristics of a patient could find the patient's row; nothing was "
        f"written. Expected every combination to hold at least privacy.k = {k} rows: "
        f"{remedy}"
    )


def code_age_bands(
    age: Any, k: int, width: int = AGE_BAND_YEARS
) -> tuple[pd.Series, dict[int, int]]:
    """Recode the ages of thin ``width``-year bands into a neighbouring band, so that
    every band holds at least ``k`` rows; returns the coded ages and, for each band
    recoded, its lower edge -> the lower edge of the band its ages now lie in.

    Bands under ``k`` rows are merged with a neighbour, the smallest group first (into
    its smaller neighbour), until every group holds ``k``; a group's ages are then
    written into its largest band: ages below it as its lower edge, ages above it as its
    top year (lower edge + ``width`` - 1). At the ends of the distribution this is the
    usual bottom- and top-coding (as HIPAA's safe harbour writes ages over 89 as 90);
    inside it, local recoding of a gap. A band that held ``k`` rows keeps its ages as
    they were, and so do missing ages (their class is for :func:`require_k_anonymous`).
    With fewer than ``k`` ages in all, nothing is recoded and the check refuses.

    This is the policy for a **synthetic** export (``oncorwe export-flat``): no real
    patient is in it, so nothing of value is lost by moving a few ages by a band, while
    the file that leaves the platform still meets the same k-anonymity rule as any
    other (once it circulates, nobody has to know it was synthetic to trust it).

    Parameters
    ----------
    age : array-like of shape (n,)
        Ages in years (missing allowed).
    k : int
        Rows every band must hold.
    width : int
        Band width in years (>= 2, so that a band's top year lies in it).

    Examples
    --------
    >>> coded, moved = code_age_bands([21, 33, 34, 35, 36, 37, 38, 71, 72, 88], k=3)
    >>> coded.tolist()
    [30.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 71.0, 72.0, 74.0]
    >>> moved
    {20: 30, 85: 70}
    """
    k = check_k(k)
    if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 2:
        raise ValueError(f"width must be an integer >= 2, got {width!r}")
    a = pd.to_numeric(pd.Series(age), errors="coerce").astype(float)
    band = np.floor(a / width) * width
    counts = band.value_counts().sort_index()
    if counts.sum() < k:
        return a, {}
    groups = [([int(b)], int(n)) for b, n in counts.items()]
    while len(groups) > 1:
        i = min(range(len(groups)), key=lambda g: groups[g][1])
        if groups[i][1] >= k:
            break
        near = [j for j in (i - 1, i + 1) if 0 <= j < len(groups)]
        j = min(near, key=lambda g: groups[g][1])
        lo, hi = sorted((i, j))
        groups[lo : hi + 1] = [(groups[lo][0] + groups[hi][0], groups[lo][1] + groups[hi][1])]
    moved: dict[int, int] = {}
    for bands, _ in groups:
        into = max(bands, key=lambda b: (counts[b], -b))
        moved.update({b: into for b in bands if b != into})
    out = a.copy()
    for b, into in moved.items():
        out[band == b] = float(into if b < into else into + width - 1)
    return out, moved
