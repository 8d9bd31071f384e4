"""The generator's ground truth, for measuring recovery. Never imported by a stage.

Only tests and benchmarks read ``truth/``: the pipeline's stages and notebooks must not
(a test checks that no other module of the package refers to this one or to the truth
files). The analysis table carries keyed hashes of the line ids; this module hashes the
truth's ids with the same key to join them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.special import gamma, gammainc

from oncorwe.core.pseudonym import pseudonym
from oncorwe.core.rules import Condition


def line_key(line_id: int, key: str) -> str:
    """The analysis table's ``line_key`` for a truth ``line_id``."""
    return pseudonym(key, "line", line_id)


def weibull_rmst(eta: np.ndarray, kappa: float, horizon: float) -> np.ndarray:
    """Restricted mean of ``S(t) = exp(-exp(eta) t^kappa)`` up to ``horizon``.

    ``int_0^tau exp(-lam t^k) dt = Gamma(1/k) P(1/k, lam tau^k) / (k lam^(1/k))`` with
    ``P`` the regularized lower incomplete gamma function.

    Examples
    --------
    >>> round(float(weibull_rmst(np.log([0.1]), 1.0, 12.0)[0]), 4)  # (1 - e^-1.2) / 0.1
    6.9881
    """
    lam = np.exp(np.asarray(eta, float))
    a = 1.0 / kappa
    return gamma(a) * gammainc(a, lam * horizon**kappa) / (kappa * lam**a)


@dataclass
class Truth:
    lines: pd.DataFrame  # one row per line, with line_key
    po: pd.DataFrame  # potential outcomes, indexed by (line_key, drug)
    rules: list[dict[str, Any]]
    kappa: float

    @classmethod
    def load(cls, world: str | Path, key: str, cancers: list[str] | None = None) -> Truth:
        """Read the truth of ``world``, keyed like the analysis table; with ``cancers``,
        only those cancer types' lines. Only the columns recovery needs are read (the
        full profile's truth has 8.4M lines and 26M potential outcomes)."""
        world = Path(world) / "truth"
        rule_cols = [
            c for c in pq.read_schema(world / "lines.parquet").names if c.startswith("rule_")
        ]
        lines = pd.read_parquet(world / "lines.parquet", columns=["line_id", "cancer", *rule_cols])
        po = pd.read_parquet(
            world / "potential_outcomes.parquet",
            columns=["line_id", "drug", "p_response", "pfs_log_hazard", "p_toxicity"],
        )
        if cancers is not None:
            lines = lines[lines["cancer"].isin(cancers)].reset_index(drop=True)
            po = po[po["line_id"].isin(lines["line_id"])].reset_index(drop=True)
        keys = pd.Series([line_key(i, key) for i in lines["line_id"]], index=lines["line_id"])
        lines["line_key"] = keys.to_numpy()
        po["line_key"] = po["line_id"].map(keys)
        po["drug"] = po["drug"].astype("category")
        po = po.drop(columns="line_id").set_index(["line_key", "drug"])
        rules = json.loads((world / "planted_effects.json").read_text())
        meta = json.loads((world / "world.json").read_text())
        return cls(lines, po, rules, float(meta["weibull_shape"]))

    def true_effects(
        self, keys: np.ndarray, drug: str, comparator: np.ndarray, horizon: float
    ) -> dict[str, float]:
        """Mean potential-outcome contrasts of ``drug`` vs each row's comparator."""
        po = self.po  # indexed by (line_key, drug)
        idx_d = pd.MultiIndex.from_arrays([keys, np.full(len(keys), drug)])
        idx_c = pd.MultiIndex.from_arrays([keys, comparator])
        d, c = po.reindex(idx_d), po.reindex(idx_c)
        ok = d["p_response"].notna().to_numpy() & c["p_response"].notna().to_numpy()
        d, c = d[ok], c[ok]
        return {
            "response": float((d["p_response"].to_numpy() - c["p_response"].to_numpy()).mean()),
            "pfs": float(
                (
                    weibull_rmst(d["pfs_log_hazard"].to_numpy(), self.kappa, horizon)
                    - weibull_rmst(c["pfs_log_hazard"].to_numpy(), self.kappa, horizon)
                ).mean()
            ),
            "toxicity": float((d["p_toxicity"].to_numpy() - c["p_toxicity"].to_numpy()).mean()),
            "n": int(ok.sum()),
        }

    def rule_share_of_cancer(self) -> dict[str, float]:
        """Each planted rule's share of its cancer type's lines (true markers)."""
        out = {}
        for r in self.rules:
            col = f"rule_{r['name']}"
            cancer = Condition.parse(r["when"]).to_spec().get("cancer")
            sub = (
                self.lines
                if cancer is None
                else self.lines[
                    self.lines["cancer"].isin(cancer if isinstance(cancer, list) else [cancer])
                ]
            )
            out[r["name"]] = float(sub[col].mean()) if len(sub) else 0.0
        return out


def _direction_ok(rule: dict[str, Any], endpoint: str, effect: float) -> bool:
    if endpoint == "response":
        return rule["response_log_odds"] != 0 and np.sign(effect) == np.sign(
            rule["response_log_odds"]
        )
    if endpoint == "pfs":
        return rule["pfs_log_hazard"] != 0 and np.sign(effect) == -np.sign(rule["pfs_log_hazard"])
    return False


def evaluate(
    result: dict[str, Any],
    truth: Truth,
    *,
    horizon: float,
    min_share: float = 0.02,
    overlap: float = 0.5,
) -> dict[str, Any]:
    """Recall, precision, ranks and CI coverage of track 1's hypotheses against the truth.

    A confirmed hypothesis *matches* a planted rule when it is about the same drug and
    either at least ``overlap`` of its confirmation rows fall in the rule's true subgroup
    (a subset) or it covers at least ``overlap`` of the rule's rows in the comparison (a
    superset), and its confirmed endpoint moves in the rule's direction.
    """
    part = result["confirmation"]
    frame = part.frame
    lines = truth.lines.set_index("line_key")
    shares = truth.rule_share_of_cancer()
    hyps = [h for h in result["hypotheses"] if h.confirmed]
    ranked = sorted(
        hyps,
        key=lambda h: -abs(h.confirmation[h.primary]["effect"] / h.confirmation[h.primary]["se"]),
    )
    rows_of = {}
    for h in hyps:
        comp = part.comparison(h.group, h.drug)
        rows_of[id(h)] = np.flatnonzero(comp.rows & h.condition.mask(frame))
    untested = list(result.get("not_testable", []))
    for h in untested:
        comp = part.comparison(h.group, h.drug)
        rows_of[id(h)] = (
            np.flatnonzero(comp.rows & h.condition.mask(frame)) if comp else np.array([], int)
        )

    def match(h, r, in_rule: np.ndarray, effect: float) -> bool:
        comp = part.comparison(h.group, h.drug)
        rows = rows_of[id(h)]
        if h.drug != r["drug"] or comp is None:
            return False
        rule_rows = np.flatnonzero(comp.rows & in_rule)
        if not len(rows) or not len(rule_rows):
            return False
        inside = in_rule[rows].mean()
        covered = np.isin(rule_rows, rows).mean()
        return (inside >= overlap or covered >= overlap) and _direction_ok(r, h.primary, effect)

    matches: dict[int, list[str]] = {id(h): [] for h in hyps}
    per_rule = []
    for r in truth.rules:
        col = f"rule_{r['name']}"
        in_rule = lines.reindex(frame["line_key"])[col].fillna(False).to_numpy(bool)
        found, rank = False, None
        for h in hyps:
            if match(h, r, in_rule, h.confirmation[h.primary]["effect"]):
                matches[id(h)].append(r["name"])
                found = True
                rk = ranked.index(h) + 1
                rank = rk if rank is None else min(rank, rk)
        # a signal screened in but beyond the confirmation part (too few rows per arm)
        flagged = any(match(h, r, in_rule, h.discovery[h.primary]["effect"]) for h in untested)
        per_rule.append(
            {
                "rule": r["name"],
                "share_of_cancer": shares[r["name"]],
                "eligible": shares[r["name"]] >= min_share,
                "recovered": found,
                "rank": rank,
                "not_testable": flagged,
            }
        )
    coverage = []
    for h in hyps:
        rows = rows_of[id(h)]
        comp = part.comparison(h.group, h.drug)
        truth_eff = {}
        for name in ("response", "pfs", "toxicity"):
            psi = comp.psi.get(name)
            if psi is None or name not in h.confirmation:
                continue
            ok = rows[~np.isnan(psi[rows])]
            keys = frame["line_key"].to_numpy()[ok]
            comparator = (
                frame["standard_of_care"].astype(str).to_numpy()[ok]
                if "standard_of_care" in frame
                else None
            )
            te = truth.true_effects(keys, h.drug, comparator, horizon)
            c = h.confirmation[name]
            truth_eff[name] = {
                "true": te[name],
                "ci_low": c["ci_low"],
                "ci_high": c["ci_high"],
                "covered": bool(c["ci_low"] <= te[name] <= c["ci_high"]),
            }
        coverage.append(
            {
                "drug": h.drug,
                "subgroup": h.condition.describe(),
                "primary": h.primary,
                "matches": matches[id(h)],
                "effects": truth_eff,
            }
        )
    eligible = [p for p in per_rule if p["eligible"]]
    matched = [c for c in coverage if c["matches"]]
    return {
        "recall": sum(p["recovered"] for p in eligible) / max(1, len(eligible)),
        "precision": (len(matched) / len(coverage)) if coverage else None,
        "n_confirmed": len(coverage),
        "rules": per_rule,
        "hypotheses": coverage,
        "coverage_primary": (
            sum(c["effects"][c["primary"]]["covered"] for c in matched) / len(matched)
            if matched
            else None
        ),
    }


def evaluate_safety(result: dict[str, Any], truth: Truth, *, horizon: float) -> dict[str, Any]:
    """Precision and CI coverage of track 1's confirmed safety hypotheses against the
    truth: each one's true toxicity risk difference over its confirmation rows (drug vs
    each row's comparator, from the potential outcomes). A confirmed safety hypothesis is
    *true* when that difference is an increase."""
    part = result["confirmation"]
    frame = part.frame
    out = []
    for h in (h for h in result.get("safety", []) if h.confirmed):
        comp = part.comparison(h.group, h.drug)
        rows = np.flatnonzero(comp.rows & h.condition.mask(frame))
        ok = rows[~np.isnan(comp.psi["toxicity"][rows])]
        comparator = (
            frame["standard_of_care"].astype(str).to_numpy()[ok]
            if "standard_of_care" in frame
            else None
        )
        true = truth.true_effects(frame["line_key"].to_numpy()[ok], h.drug, comparator, horizon)
        c = h.confirmation["toxicity"]
        out.append(
            {
                "drug": h.drug,
                "subgroup": h.condition.describe(),
                "true": true["toxicity"],
                "effect": c["effect"],
                "ci_low": c["ci_low"],
                "ci_high": c["ci_high"],
                "harm": true["toxicity"] > 0,
                "covered": bool(c["ci_low"] <= true["toxicity"] <= c["ci_high"]),
            }
        )
    return {
        "n_confirmed": len(out),
        "precision": sum(h["harm"] for h in out) / len(out) if out else None,
        "coverage": sum(h["covered"] for h in out) / len(out) if out else None,
        "hypotheses": out,
    }
