"""Plotly figures for the stakeholder reports.

Pure functions of DataFrames and dicts that return a :class:`plotly.graph_objects.Figure`
with one house template (:data:`TEMPLATE`: white background, readable font sizes, a
colour-blind-safe palette). No LaTeX anywhere: the rendered pages must work offline and
MathJax is not shipped with them.

Figures receive aggregates only. A plotly histogram would embed every patient's value in
the page, so :func:`histogram_by_group` bins in Python and draws the (suppressed) counts.

Example
-------
>>> import pandas as pd
>>> rows = pd.DataFrame({"label": ["a", "b"], "estimate": [0.8, 1.1],
...                      "ci_low": [0.6, 0.9], "ci_high": [1.0, 1.4]})
>>> forest_plot(rows).layout.xaxis.type
'log'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from oncorwe.core.errors import OncorweError
from oncorwe.core.privacy import suppressed_label

#: Okabe & Ito's colour-blind-safe palette (black last).
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#56B4E9",
    "#CC79A7",
    "#F0E442",
    "#000000",
)
TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font=dict(family="Helvetica, Arial, sans-serif", size=14, color="#222"),
        title=dict(font=dict(size=18), x=0.0, xanchor="left"),
        paper_bgcolor="white",
        plot_bgcolor="white",
        colorway=list(PALETTE),
        xaxis=dict(
            showgrid=True,
            gridcolor="#e5e5e5",
            zeroline=False,
            linecolor="#888",
            ticks="outside",
            automargin=True,
            title=dict(standoff=8),
        ),
        yaxis=dict(
            showgrid=True,
            gridcolor="#e5e5e5",
            zeroline=False,
            linecolor="#888",
            ticks="outside",
            automargin=True,
            title=dict(standoff=8),
        ),
        legend=dict(bgcolor="rgba(255,255,255,0.8)", borderwidth=0),
        hoverlabel=dict(font=dict(size=13)),
        margin=dict(l=70, r=30, t=70, b=60),
    )
)
SUPPRESSED_COLOR = "#bbbbbb"


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _need(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise OncorweError(f"{what}: missing columns {missing} (have {list(df.columns)})")


def _finish(fig: go.Figure, title: str | None, height: int | None = None) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title_text=title)
    if height:
        fig.update_layout(height=height)
    return fig


def forest_plot(
    rows: pd.DataFrame,
    *,
    null_value: float = 1.0,
    log_scale: bool | None = None,
    x_title: str = "Hazard ratio (95% CI)",
    title: str | None = None,
) -> go.Figure:
    """Estimates with confidence intervals, one row each, and the no-effect line.

    Parameters
    ----------
    rows : DataFrame
        Columns ``label``, ``estimate``, ``ci_low``, ``ci_high`` and optionally ``group``
        (a colour per group); drawn top to bottom in the given order.
    null_value : float
        The no-effect value (1 for ratios, 0 for differences), drawn as a dashed line.
    log_scale : bool, optional
        Log x axis; default: when ``null_value == 1`` and every bound is positive.
    """
    _need(rows, ["label", "estimate", "ci_low", "ci_high"], "forest_plot")
    df = rows.reset_index(drop=True)
    if log_scale is None:
        log_scale = null_value == 1 and bool((df[["ci_low", "estimate"]] > 0).all().all())
    labels = df["label"].astype(str).tolist()
    groups = df["group"].astype(str) if "group" in df.columns else pd.Series([""] * len(df))
    fig = go.Figure()
    for i, (name, part) in enumerate(df.groupby(groups, sort=False)):
        est = part["estimate"].to_numpy(float)
        fig.add_trace(
            go.Scatter(
                x=est,
                y=part["label"].astype(str),
                mode="markers",
                name=name or "estimate",
                showlegend=bool(name),
                marker=dict(size=10, color=_color(i), symbol="square"),
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=part["ci_high"].to_numpy(float) - est,
                    arrayminus=est - part["ci_low"].to_numpy(float),
                    thickness=2,
                    width=6,
                    color=_color(i),
                ),
                customdata=np.c_[part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float)],
                hovertemplate="%{y}: %{x:.2f} (%{customdata[0]:.2f} to %{customdata[1]:.2f})"
                "<extra></extra>",
            )
        )
    fig.add_vline(x=null_value, line=dict(color="#555", dash="dash", width=1.5))
    fig.update_xaxes(title_text=x_title, type="log" if log_scale else "linear")
    fig.update_yaxes(
        categoryorder="array", categoryarray=labels[::-1], showgrid=False, title_text=None
    )
    return _finish(fig, title, height=max(260, 120 + 32 * len(df)))


def km_plot(
    curves: Mapping[str, tuple],
    *,
    title: str | None = None,
    x_title: str = "Months since the start of the line",
    y_title: str = "Progression-free",
) -> go.Figure:
    """Kaplan-Meier step curves, one per arm or group.

    Parameters
    ----------
    curves : mapping name -> (times, survival) or (times, survival, lower, upper)
        Step functions: ``survival[i]`` holds from ``times[i]`` until the next time;
        ``lower``/``upper`` draw a shaded confidence band.
    """
    fig = go.Figure()
    for i, (name, curve) in enumerate(curves.items()):
        if len(curve) not in (2, 4):
            raise OncorweError(
                f"km_plot: curve {name!r} must be (times, survival) or "
                f"(times, survival, lower, upper), got {len(curve)} arrays"
            )
        t = np.asarray(curve[0], float)
        s = np.asarray(curve[1], float)
        if t.shape != s.shape:
            raise OncorweError(f"km_plot: curve {name!r}: times and survival differ in length")
        color = _color(i)
        if len(curve) == 4:
            lo, hi = np.asarray(curve[2], float), np.asarray(curve[3], float)
            fig.add_trace(
                go.Scatter(
                    x=t,
                    y=hi,
                    mode="lines",
                    line=dict(width=0, shape="hv"),
                    showlegend=False,
                    hoverinfo="skip",
                    legendgroup=str(name),
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=t,
                    y=lo,
                    mode="lines",
                    line=dict(width=0, shape="hv"),
                    fill="tonexty",
                    fillcolor=_rgba(color, 0.15),
                    showlegend=False,
                    hoverinfo="skip",
                    legendgroup=str(name),
                )
            )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=s,
                mode="lines",
                name=str(name),
                legendgroup=str(name),
                line=dict(shape="hv", width=2.5, color=color),
                hovertemplate=f"{name}<br>%{{x:.1f}} months: %{{y:.0%}}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text=x_title, rangemode="tozero")
    fig.update_yaxes(title_text=y_title, range=[0, 1.02], tickformat=".0%")
    return _finish(fig, title, height=480)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def calibration_plot(
    by_group: Mapping[str, tuple],
    *,
    title: str | None = None,
    x_title: str = "Predicted probability",
    y_title: str = "Observed frequency",
) -> go.Figure:
    """Observed against predicted probability per group, with the diagonal of perfect fit.

    Parameters
    ----------
    by_group : mapping group -> (predicted, observed)
        Bin means of the predicted probability and the observed frequency in each bin.
    """
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfect calibration",
            line=dict(color="#777", dash="dash", width=1.5),
            hoverinfo="skip",
        )
    )
    for i, (name, (pred, obs)) in enumerate(by_group.items()):
        pred = np.asarray(pred, float)
        obs = np.asarray(obs, float)
        if pred.shape != obs.shape:
            raise OncorweError(f"calibration_plot: group {name!r}: lengths differ")
        fig.add_trace(
            go.Scatter(
                x=pred,
                y=obs,
                mode="lines+markers",
                name=str(name),
                line=dict(color=_color(i), width=2),
                marker=dict(size=8),
                hovertemplate=f"{name}<br>predicted %{{x:.0%}}, observed %{{y:.0%}}<extra></extra>",
            )
        )
    axis = dict(range=[0, 1], tickformat=".0%")
    fig.update_xaxes(title_text=x_title, **axis)
    fig.update_yaxes(title_text=y_title, scaleanchor="x", scaleratio=1, **axis)
    return _finish(fig, title, height=520)


def bar_counts(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str | None = None,
    *,
    facet: str | None = None,
    facet_wrap: int = 2,
    min_cell: int | None = None,
    percent: bool = False,
    title: str | None = None,
    x_title: str | None = None,
    y_title: str | None = None,
    horizontal: bool = False,
) -> go.Figure:
    """Bars of (already suppressed) counts or shares, grouped by ``color``.

    A suppressed value (``NA``) is drawn as a small grey stub labelled ``"<min_cell"``
    (or ``"suppressed"``) so that a reader sees that the cell exists but is hidden.

    Parameters
    ----------
    df : DataFrame
        One row per bar (see :func:`oncorwe.core.privacy.suppress_table`).
    x, y : str
        Category and value columns.
    color : str, optional
        Column whose values become side-by-side bar groups with a legend.
    facet : str, optional
        One panel per value of this column (``facet_wrap`` panels per row), each with its
        own categories.
    min_cell : int, optional
        The threshold in force: suppressed bars read ``"<min_cell"``, and when ``y`` holds
        counts a visible count under it is refused.
    percent : bool
        ``y`` holds shares in [0, 1] (suppressed where their count was); axis in percent.
    """
    _need(df, [c for c in (x, y, color, facet) if c], "bar_counts")
    values = pd.to_numeric(df[y], errors="coerce")
    if min_cell is not None and not percent:
        small = values.notna() & (values < min_cell)
        if small.any():
            raise OncorweError(
                f"bar_counts: {int(small.sum())} value(s) of {y!r} are under min_cell="
                f"{min_cell}; suppress them first (oncorwe.core.privacy.suppress_table)"
            )
    label = suppressed_label(min_cell) if min_cell is not None else "suppressed"
    panels = list(dict.fromkeys(df[facet].tolist())) if facet else [None]
    ncols = min(facet_wrap, len(panels)) if facet else 1
    nrows = -(-len(panels) // ncols)
    fig = make_subplots(
        rows=nrows,
        cols=ncols,
        subplot_titles=[str(p) for p in panels] if facet else None,
        horizontal_spacing=0.12 if facet else 0.02,
        vertical_spacing=min(0.35 / max(nrows - 1, 1), 0.12) if nrows > 1 else 0.1,
    )
    groups = list(dict.fromkeys(df[color].tolist())) if color else [None]
    for p_i, panel in enumerate(panels):
        part = df[df[facet] == panel] if facet else df
        row, col = p_i // ncols + 1, p_i % ncols + 1
        panel_values = pd.to_numeric(part[y], errors="coerce")
        stub = _stub_height(panel_values)
        value_axis = dict(rangemode="tozero", **value_ticks(panel_values, percent=percent))
        if horizontal:
            fig.update_xaxes(row=row, col=col, **value_axis)
        else:
            fig.update_yaxes(row=row, col=col, **value_axis)
        for g_i, group in enumerate(groups):
            sub = part[part[color] == group] if color else part
            if sub.empty:
                continue
            v = pd.to_numeric(sub[y], errors="coerce")
            hidden = v.isna().to_numpy()
            heights = np.where(hidden, stub, v.fillna(0).to_numpy(float))
            texts = [label if h else "" for h in hidden]
            colors = [SUPPRESSED_COLOR if h else _color(g_i) for h in hidden]
            integer = _is_integer(panel_values)
            shown = [
                label if h else _fmt(val, percent, integer)
                for h, val in zip(hidden, v, strict=True)
            ]
            cats = [_wrap(c) for c in sub[x].astype(str)]
            bar = go.Bar(
                x=heights if horizontal else cats,
                y=cats if horizontal else heights,
                orientation="h" if horizontal else "v",
                name=str(group) if color else y,
                legendgroup=str(group),
                showlegend=bool(color) and p_i == 0,
                marker=dict(color=colors),
                text=texts,
                textposition="outside",
                textangle=-90 if (color and not horizontal) else 0,
                textfont=dict(size=11, color="#555"),
                cliponaxis=False,
                customdata=shown,
                hovertemplate=(
                    f"%{{{'y' if horizontal else 'x'}}}"
                    + (f" ({group})" if color else "")
                    + ": %{customdata}<extra></extra>"
                ),
            )
            fig.add_trace(bar, row=row, col=col)
    if horizontal:
        fig.update_yaxes(autorange="reversed", showgrid=False)
    else:
        fig.update_xaxes(showgrid=False)
    if not facet:
        fig.update_xaxes(
            title_text=(y_title if horizontal else x_title) or (y if horizontal else x)
        )
        fig.update_yaxes(
            title_text=(x_title if horizontal else y_title) or (x if horizontal else y)
        )
    elif y_title:
        fig.add_annotation(
            text=y_title,
            xref="paper",
            yref="paper",
            x=-0.07 if not horizontal else 0.5,
            y=0.5 if not horizontal else -0.08,
            textangle=-90 if not horizontal else 0,
            showarrow=False,
            font=dict(size=14),
        )
    fig.update_layout(barmode="group", bargap=0.2, uniformtext_minsize=10)
    per_row = 300 if facet else 450
    if horizontal and not facet:
        per_row = max(300, 60 + 28 * df[x].nunique() * max(len(groups), 1))
    return _finish(fig, title, height=80 + per_row * nrows)


def _wrap(label: str, width: int = 16) -> str:
    """Readable category label: underscores become spaces, long labels wrap."""
    words = label.replace("_", " ").split(" ")
    lines, current = [], ""
    for w in words:
        if current and len(current) + 1 + len(w) > width:
            lines.append(current)
            current = w
        else:
            current = f"{current} {w}".strip()
    lines.append(current)
    return "<br>".join(lines)


def _fmt(v: float, percent: bool, integer: bool = True) -> str:
    if percent:
        return f"{v:.1%}"
    return f"{v:,.0f}" if integer else f"{v:.3g}"


def _is_integer(values: pd.Series) -> bool:
    finite = pd.to_numeric(values, errors="coerce").dropna().to_numpy(float)
    return bool(len(finite)) and bool(np.all(finite == np.round(finite)))


def _stub_height(values: pd.Series) -> float:
    """Height of a suppressed bar's stub: visible, yet never taller than a real bar
    beside it (a hidden count is smaller than every shown one)."""
    finite = pd.to_numeric(values, errors="coerce").dropna().to_numpy(float)
    positive = finite[finite > 0]
    if not len(positive):
        return 1.0
    return float(min(0.015 * positive.max(), 0.5 * positive.min()))


def _nice_step(span: float, target: int = 6) -> float:
    """The 1-2-5 step that cuts ``span`` into about ``target`` intervals."""
    rough = span / target
    base = 10 ** np.floor(np.log10(rough))
    for m in (1, 2, 5, 10):
        if m * base >= rough:
            return float(m * base)
    return float(10 * base)  # pragma: no cover


def value_ticks(values: Sequence[float] | pd.Series, *, percent: bool = False) -> dict:
    """Tick spacing and format for a value axis, from the data's own scale.

    A fixed format breaks at the other scale (``,.0f`` reads every tick of a SHAP
    chart as 0 or 1; ``.0%`` every tick of shares under 2 %). The step is a 1-2-5 step
    of the data's span (at least 1 for counts) and the format shows just the decimals
    that step needs, so neighbouring ticks never read the same.

    >>> value_ticks([0.0, 0.31])
    {'dtick': 0.1, 'tick0': 0, 'tickformat': ',.1f'}
    >>> value_ticks([0, 3])
    {'dtick': 1.0, 'tick0': 0, 'tickformat': ',.0f'}
    >>> value_ticks([0.0, 0.012], percent=True)["tickformat"]
    '.1%'
    """
    v = pd.to_numeric(pd.Series(np.asarray(values, dtype=float)), errors="coerce").dropna()
    v = v[np.isfinite(v)]
    lo, hi = (min(0.0, float(v.min())), max(0.0, float(v.max()))) if len(v) else (0.0, 1.0)
    span = hi - lo if hi > lo else (abs(hi) or 1.0)
    step = _nice_step(span)
    if not percent and _is_integer(v):
        step = max(step, 1.0)
    shown = step * 100 if percent else step
    decimals = max(0, int(np.ceil(-np.log10(shown) - 1e-9)))
    fmt = f".{decimals}%" if percent else f",.{decimals}f"
    return {"dtick": round(step, 12), "tick0": 0, "tickformat": fmt}


def histogram_by_group(
    values: Sequence[float] | pd.Series,
    groups: Sequence[str] | pd.Series,
    *,
    bins: int | Sequence[float] = 20,
    min_cell: int | None = None,
    normalize: bool = True,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
    x_title: str = "value",
) -> go.Figure:
    """Distribution of ``values`` per group, binned here (no patient value reaches the page).

    Parameters
    ----------
    values, groups : array-like of equal length
        One value and its group per row; missing values are dropped.
    bins : int or bin edges
        Common bin edges for every group.
    min_cell : int, optional
        Bins holding fewer rows than this are suppressed (drawn empty).
    normalize : bool
        Show the share of the group's rows per bin (groups of different size compare).
    labels : mapping group -> legend text, optional
        E.g. ``{"F": "women", "M": "men"}``.
    """
    v = pd.Series(np.asarray(values, dtype=float))
    g = pd.Series(np.asarray(groups, dtype=object)).astype(str)
    if len(v) != len(g):
        raise OncorweError("histogram_by_group: values and groups differ in length")
    keep = v.notna().to_numpy()
    v, g = v[keep], g[keep]
    if v.empty:
        raise OncorweError("histogram_by_group: no values to draw")
    edges = np.histogram_bin_edges(v.to_numpy(), bins=bins)
    mids = (edges[:-1] + edges[1:]) / 2
    labels = dict(labels or {})
    fig = go.Figure()
    for i, name in enumerate(sorted(g.unique())):
        counts, _ = np.histogram(v[g == name].to_numpy(), bins=edges)
        total = counts.sum()
        shown = counts.astype(float)
        if min_cell is not None:
            shown[counts < min_cell] = np.nan
        y = shown / total if normalize else shown
        legend = labels.get(name, name)
        fig.add_trace(
            go.Bar(
                x=mids,
                y=y,
                name=legend,
                marker=dict(color=_color(i), line=dict(width=0)),
                customdata=np.c_[edges[:-1], edges[1:]],
                hovertemplate=f"{legend}<br>%{{customdata[0]:.3g}} to %{{customdata[1]:.3g}}: "
                + ("%{y:.1%}" if normalize else "%{y:,.0f}")
                + "<extra></extra>",
            )
        )
    fig.update_layout(barmode="group", bargap=0.08, bargroupgap=0.0)
    fig.update_xaxes(title_text=x_title, tickvals=edges if len(edges) <= 25 else None)
    fig.update_yaxes(
        title_text="share of the group" if normalize else "count",
        **value_ticks(
            np.concatenate([np.asarray(t.y, float) for t in fig.data]), percent=normalize
        ),
    )
    return _finish(fig, title, height=420)


def balance_plot(
    rows: pd.DataFrame,
    *,
    threshold: float = 0.1,
    title: str | None = None,
) -> go.Figure:
    """Love plot: absolute standardized mean difference per covariate, before and after.

    Parameters
    ----------
    rows : DataFrame
        Columns ``covariate``, ``smd_before``, ``smd_after``; sorted here by the
        imbalance before adjustment, largest on top.
    threshold : float
        The conventional balance line (|SMD| = 0.1).
    """
    _need(rows, ["covariate", "smd_before", "smd_after"], "balance_plot")
    df = rows.assign(before=rows["smd_before"].abs(), after=rows["smd_after"].abs()).sort_values(
        "before", ascending=True
    )
    fig = go.Figure()
    for i, (col, name, symbol) in enumerate(
        (("before", "before weighting", "circle-open"), ("after", "after weighting", "circle"))
    ):
        fig.add_trace(
            go.Scatter(
                x=df[col],
                y=df["covariate"].astype(str),
                mode="markers",
                name=name,
                marker=dict(size=10, symbol=symbol, color=_color(i), line=dict(width=2)),
                hovertemplate="%{y}: |SMD| %{x:.3f}<extra>" + name + "</extra>",
            )
        )
    fig.add_vline(x=threshold, line=dict(color="#555", dash="dash", width=1.5))
    fig.update_xaxes(title_text="Absolute standardized mean difference", rangemode="tozero")
    fig.update_yaxes(title_text=None, showgrid=True)
    return _finish(fig, title, height=max(300, 120 + 26 * len(df)))


# --------------------------------------------------------------------------- checks

_D3_FORMAT = re.compile(r"^(?P<comma>,)?(?:\.(?P<precision>\d+))?(?P<kind>[fdeg%s])?$")


def _d3_format(value: float, tickformat: str) -> str:
    """``value`` as plotly (d3-format) writes it with ``tickformat``; the subset used here."""
    m = _D3_FORMAT.match(tickformat)
    if m is None:
        raise OncorweError(f"tick format {tickformat!r} is not one the checks know")
    comma = "," if m["comma"] else ""
    kind = m["kind"] or "g"
    precision = m["precision"]
    if kind == "d":
        return f"{round(value):{comma}d}"
    if kind == "s":
        kind = "g"
    spec = f"{comma}.{precision}{kind}" if precision is not None else f"{comma}{kind}"
    return format(value, spec)


def _auto_step(span: float, n_ticks: int) -> float:
    # plotly's autoTicks: span / n_ticks rounded up to 2, 5 or 10 times a power of ten
    rough = span / n_ticks
    base = 10 ** np.floor(np.log10(rough))
    return float(next(m * base for m in (2, 5, 10) if m * base >= rough * (1 - 1e-12)))


def _axis_values(fig: go.Figure, axis_name: str) -> tuple[np.ndarray, bool]:
    """The numbers plotted against one axis (error bars and bar bases included) and
    whether the axis is categorical (a trace put strings on it)."""
    letter = axis_name[0]
    ref = letter + axis_name[5:]  # xaxis2 -> x2, yaxis -> y
    out: list[np.ndarray] = []
    for tr in fig.data:
        if (getattr(tr, f"{letter}axis", None) or letter) != ref:
            continue
        raw = getattr(tr, letter, None)
        if raw is None:
            continue
        arr = np.asarray(raw, dtype=object)
        if any(isinstance(x, str) for x in arr.ravel()):
            return np.array([]), True
        vals = pd.to_numeric(pd.Series(arr.ravel()), errors="coerce").to_numpy(float)
        out.append(vals)
        err = getattr(tr, f"error_{letter}", None)
        if err is not None and err.array is not None:
            hi = np.asarray(err.array, float)
            lo = np.asarray(err.arrayminus if err.arrayminus is not None else err.array, float)
            out += [vals + hi, vals - lo]
        if tr.type == "bar":
            out.append(np.zeros(1))
    values = np.concatenate(out) if out else np.array([])
    return values[np.isfinite(values)], False


def tick_labels(fig: go.Figure) -> dict[str, list[list[str]]]:
    """The tick labels a browser would draw on each numeric linear axis of ``fig``.

    Computed as plotly.js does from the axis range (its own, or the data's with 5 %
    padding) and ``dtick``/``tick0`` when set; otherwise from plotly's automatic step
    for both ends of its tick count (4 to 9 intervals, depending on the drawn size),
    so each axis has one or two candidate label lists. Categorical, log and date axes,
    and axes without data, are left out: their labels are the categories or plotly's own.
    """
    layout = fig.layout.to_plotly_json()
    names = sorted(k for k in layout if re.fullmatch(r"[xy]axis\d*", k))
    for tr in fig.data:  # an axis only a trace names (no layout entry yet)
        for letter in "xy":
            ref = getattr(tr, f"{letter}axis", None) or letter
            name = f"{letter}axis{ref[1:]}"
            if name not in names:
                names.append(name)
    result: dict[str, list[list[str]]] = {}
    for name in names:
        ax = layout.get(name, {})
        if ax.get("type") in ("log", "date", "category", "multicategory"):
            continue
        values, categorical = _axis_values(fig, name)
        if categorical or (not len(values) and not ax.get("range")):
            continue
        if ax.get("range"):
            lo, hi = sorted(float(r) for r in ax["range"])
        else:
            lo, hi = float(values.min()), float(values.max())
            if ax.get("rangemode") == "tozero":
                lo, hi = min(lo, 0.0), max(hi, 0.0)
            pad = 0.05 * (hi - lo) if hi > lo else (abs(hi) or 1.0)
            lo, hi = lo - pad, hi + pad
        if ax.get("dtick"):
            steps = [float(ax["dtick"])]
        else:
            steps = [_auto_step(hi - lo, n) for n in (5, 10)]
        fmt = ax.get("tickformat") or ""
        candidates = []
        for step in steps:
            start = float(ax.get("tick0", 0) or 0)
            k = np.arange(
                np.ceil((lo - start) / step - 1e-9), np.floor((hi - start) / step + 1e-9) + 1
            )
            ticks = start + k * step
            if fmt:
                candidates.append([_d3_format(t, fmt) for t in ticks])
            else:  # plotly picks enough digits for its step
                decimals = max(0, int(np.ceil(-np.log10(step) - 1e-9)))
                candidates.append([f"{t:.{decimals}f}" for t in ticks])
        result[name] = candidates
    return result


def unreadable_axes(fig: go.Figure) -> list[str]:
    """Axes of ``fig`` on which two ticks would read the same (e.g. ``0, 0, 0, 1, 1``
    for shares formatted as whole numbers); empty when every axis reads well.

    >>> unreadable_axes(go.Figure(go.Bar(x=["a", "b"], y=[0.1, 0.3])).update_yaxes(
    ...     tickformat=",.0f"))
    ["yaxis: ticks read ['0', '0', '0', '0']"]
    >>> unreadable_axes(bar_counts(pd.DataFrame({"f": ["a", "b"], "v": [0.1, 0.3]}), "f", "v"))
    []
    """
    bad = []
    for name, candidates in tick_labels(fig).items():
        for labels in candidates:
            if len(labels) >= 2 and len(set(labels)) < len(labels):
                bad.append(f"{name}: ticks read {labels}")
                break
    return bad
