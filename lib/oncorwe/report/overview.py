"""What the index page opens with: the headline, the synthetic-data banner, provenance,
and the run's privacy warnings, which every page carries.

Everything is read from the stages' outputs (``hypotheses.json``, ``validation.json``),
the validated parameters and the repository; no count is computed here (the stages
wrote them, suppressed). :func:`overview_html` is the block
:func:`oncorwe.report.render.write_index` puts above the list of reports;
:func:`warnings_html` is the banner it opens with, and the one
:func:`oncorwe.report.render.export_html` puts at the top of every report page.

Example
-------
>>> inline_markdown("the **confirmed** ones")
'the <strong>confirmed</strong> ones'
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oncorwe.report import hypothesis_view as hv
from oncorwe.report.labels import label, subgroup_label

_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_CODE = re.compile(r"`([^`]+)`")


def inline_markdown(text: str) -> str:
    """``text`` (inline Markdown: bold, italic, code) as escaped HTML: a description
    written for the notebook reads the same on the index, without its asterisks.

    >>> inline_markdown("*not* <b> and `x`")
    '<em>not</em> &lt;b&gt; and <code>x</code>'
    """
    out = html.escape(text, quote=False)
    out = _CODE.sub(r"<code>\1</code>", out)
    out = _BOLD.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", out)
    return _ITALIC.sub(r"<em>\1</em>", out)


@dataclass(frozen=True)
class Overview:
    """The numbers and lines the index opens with."""

    confirmed: int | None = None
    findings: int | None = None
    harms: int | None = None
    validated: int | None = None
    go: int | None = None
    top: list[str] = field(default_factory=list)
    synthetic: bool = False
    provenance: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def run_warnings(*, min_cell: int, small_cells: bool, federated_without_tls: bool) -> list[str]:
    """What every page of a run must warn its reader about, one sentence each.

    ``small_cells``: ``privacy.allow_small_cells`` let a ``min_cell`` under the floor
    through, so counts that small are shown. ``federated_without_tls``: the models
    trained over a federation without TLS (``compute.federated.tls: false`` with
    ``allow_insecure: true``).

    >>> run_warnings(min_cell=11, small_cells=False, federated_without_tls=False)
    []
    """
    out = []
    if small_cells:
        out.append(
            f"Small counts shown: the small-cell threshold is {min_cell} "
            "(privacy.allow_small_cells: true accepted it below the usual floor), so "
            f"counts of as few as {min_cell} patients or lines appear in these reports. "
            "They can single patients out: do not share the reports beyond those allowed "
            "to see patient-level data."
        )
    if federated_without_tls:
        out.append(
            "Federation without TLS: the models behind these reports were trained with "
            "compute.federated.tls: false (allow_insecure: true), so any process that could "
            "reach the federated server's port could have joined as a site and read the "
            "gradient histograms the sites exchanged."
        )
    return out


def warnings_html(warnings: Sequence[str]) -> str:
    """The warning banner (empty without warnings): styled inline, so that the index and
    the notebook pages, which have different style sheets, show the same banner.

    >>> warnings_html([])
    ''
    >>> 'role="alert"' in warnings_html(["Small counts shown."])
    True
    """
    if not warnings:
        return ""
    items = "".join(f'<p style="margin:4px 0">{html.escape(w)}</p>' for w in warnings)
    return (
        '<div class="banner oncorwe-warning" role="alert" style="background:#fde8e8;'
        "border:2px solid #c0392b;border-radius:4px;color:#5a1010;padding:10px 14px;"
        'margin:12px 0 18px 0;font-family:Helvetica,Arial,sans-serif;font-size:15px">'
        f"<strong>Privacy warning.</strong>{items}</div>"
    )


def _decisions(validation: Mapping | None) -> dict[int, str]:
    return {h["rank"]: h.get("decision", "") for h in (validation or {}).get("hypotheses", [])}


def finding_line(finding: Mapping, decision: str = "") -> str:
    """``Pembrolizumab in NSCLC, PD-L1 TPS status >=50: PFS +2.4 months [+1.8, +3.0],
    q<0.001 (go in validation)``."""
    h = finding["headline"]
    endpoint = hv.primary(h)
    res = h.get("confirmation", {}).get(endpoint) or {}
    drug = label(h["drug"])
    text = (
        f"{drug[:1].upper() + drug[1:]} in {subgroup_label(h.get('conditions'), h['subgroup'])}: "
        f"{label(endpoint)} {hv.effect_text(res, endpoint)}, "
        f"{hv.p_text(res.get('q_value', res.get('p_value')))}"
    )
    if finding["variants"]:
        n = len(finding["variants"])
        text += f"; {n} overlapping variant{'s' if n > 1 else ''}"
    if decision:
        text += f" ({decision} in validation)"
    return text


def overview(
    hypotheses: list[dict] | None,
    validation: Mapping | None,
    *,
    synthetic: bool,
    provenance: Mapping[str, str] | None = None,
    top: int = 3,
    warnings: Sequence[str] = (),
) -> Overview:
    """The headline of a run from its stage outputs (``None`` for a stage not run)."""
    decisions = _decisions(validation)
    benefits = hv.findings(hypotheses or [])
    harms = hv.findings(hypotheses or [], harms=True)
    vals = (validation or {}).get("hypotheses")
    return Overview(
        confirmed=None if hypotheses is None else sum(bool(h["confirmed"]) for h in hypotheses),
        findings=None if hypotheses is None else len(benefits),
        harms=None if hypotheses is None else len(harms),
        validated=None if vals is None else len(vals),
        go=None if vals is None else sum(h.get("decision") == "go" for h in vals),
        top=[finding_line(f, decisions.get(f["headline"]["rank"], "")) for f in benefits[:top]],
        synthetic=synthetic,
        provenance=dict(provenance or {}),
        warnings=list(warnings),
    )


def read_overview(
    hypothesis_dir: str | Path,
    validation_path: str | Path,
    *,
    synthetic: bool,
    provenance: Mapping[str, str] | None = None,
    warnings: Sequence[str] = (),
) -> Overview:
    """:func:`overview` of the files the hypothesis and validation stages wrote (a
    missing file: that part of the headline is left out)."""
    hyp_file = Path(hypothesis_dir) / "hypotheses.json"
    hyps = json.loads(hyp_file.read_text())["hypotheses"] if hyp_file.is_file() else None
    val = Path(validation_path)
    res = json.loads(val.read_text()) if val.is_file() else None
    return overview(hyps, res, synthetic=synthetic, provenance=provenance, warnings=warnings)


def git_commit(root: str | Path) -> str | None:
    """The checked-out commit of ``root`` (short hash, ``+`` when the tree has
    uncommitted changes), or None outside a git repository or without git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+" if dirty else head or None


def dvc_input_hashes(lock_path: str | Path, outputs: Mapping[str, str]) -> dict[str, str]:
    """The md5 that ``dvc.lock`` records for each stage output named in ``outputs``
    (stage -> output path), short; empty when there is no lock file yet."""
    import yaml

    lock = Path(lock_path)
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    found = {}
    for stage, path in outputs.items():
        for out in stages.get(stage, {}).get("outs", []):
            if out.get("path") == path and out.get("md5"):
                found[path] = out["md5"].removesuffix(".dir")[:12]
    return found


def provenance(
    *,
    commit: str | None,
    profile: str,
    patients: int,
    seed: int,
    source: str,
    parameters: Mapping[str, Any],
    inputs: Mapping[str, str] | None = None,
    run_date: dt.date | None = None,
) -> dict[str, str]:
    """The provenance lines of the index, in reading order."""
    out = {
        "run date": (run_date or dt.date.today()).isoformat(),
        "code (git commit)": commit or "not a git checkout",
        "data": f"{source}, profile {profile} ({patients:,} patients), seed {seed}",
    }
    if inputs:
        out["inputs (DVC md5)"] = ", ".join(f"{p} {h}" for p, h in inputs.items())
    out["key parameters"] = ", ".join(f"{k} = {v}" for k, v in parameters.items())
    return out


def _n(v: int | None) -> str:
    return "?" if v is None else f"{v:,}"


def overview_html(ov: Overview) -> str:
    """The index's opening block: warnings, banner, headline, top findings, provenance."""
    parts = [warnings_html(ov.warnings)] if ov.warnings else []
    if ov.synthetic:
        parts.append(
            '<div class="banner synthetic" role="note"><strong>Synthetic data.</strong> '
            "Every patient in these reports was drawn by the project's simulator; the "
            "findings show what the methods recover, not evidence about real patients.</div>"
        )
    lines = []
    if ov.confirmed is not None:
        harm = f", and {ov.harms} confirmed harm{'s' if ov.harms != 1 else ''}" if ov.harms else ""
        lines.append(
            f"<strong>{_n(ov.confirmed)}</strong> confirmed hypotheses, "
            f"<strong>{_n(ov.findings)}</strong> distinct benefit findings{harm}."
        )
    if ov.validated is not None:
        lines.append(
            f"<strong>{_n(ov.go)}</strong> of <strong>{_n(ov.validated)}</strong> validated "
            "hypotheses get a <strong>go</strong> in the held-out trial emulation."
        )
    if lines:
        parts.append('<section class="headline"><h2>Headline</h2><p>' + " ".join(lines) + "</p>")
        if ov.top:
            items = "".join(f"<li>{html.escape(t)}</li>" for t in ov.top)
            parts.append(f'<p class="top-title">Top findings</p><ol class="top">{items}</ol>')
        parts.append("</section>")
    if ov.provenance:
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in ov.provenance.items()
        )
        parts.append(
            f'<section class="provenance"><h2>Provenance</h2><table>{rows}</table></section>'
        )
    return "\n".join(parts)
