"""``python -m oncorwe.pipeline.report``: render the stakeholder reports and the index (a DVC stage).

Each report is ``notebooks/NAME.ipynb`` executed with parameters taken from
``params.yaml`` (only the keys ``dvc.yaml`` declares for the stage) into
``reports/NAME.html`` and ``reports/executed/NAME.ipynb``; the pages share one
``reports/plotly.min.js`` (``--single-file``: each page embeds it instead, to be sent on
its own); ``reports/index.html`` then lists every page in ``reports/``. Each page and
the index open with the run's privacy warnings (:func:`report_warnings`), where it has any.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from oncorwe.core.errors import OncorweError
from oncorwe.core.paths import Catalog

# the catalog relative to the project root (the notebooks run there): a rendered report
# names "data/hypothesis", never a path of the machine that rendered it
_DATA = Catalog(Path("."))

# NAME -> parameters of notebooks/NAME.ipynb, from the validated params.yaml and the
# catalog of the stage outputs it reads.
PARAMETERS: dict[str, Callable] = {
    "00_world": lambda p, data: {
        "analysis_dir": data.analysis.as_posix(),
        "min_cell": p.privacy.min_cell_count,
    },
    "02_validation": lambda p, data: {
        "validation_path": data.validation.as_posix(),
        "min_cell": p.privacy.min_cell_count,
    },
    "01_hypothesis": lambda p, data: {
        "hypothesis_dir": data.hypothesis.as_posix(),
        "analysis_dir": data.analysis.as_posix(),
        "min_cell": p.privacy.min_cell_count,
    },
}


def main(argv: list[str] | None = None) -> int:
    """Render the reports named on the command line (all by default), then the index;
    exit 2 with one line on stderr on a known error (an unknown report, a missing file)."""
    args = parser().parse_args(argv)
    try:
        from oncorwe.core.paths import catalog
        from oncorwe.pipeline.params import read_params
        from oncorwe.pipeline.resources import measured
        from oncorwe.report.render import write_index

        params = read_params(args.params)
        with measured("report", catalog()) as rec:
            for name in args.names:
                render_one(name, params, args)
            rec["reports"] = len(args.names)
        index = write_index(args.reports_dir, overview=index_overview(params))
        print(f"[oncorwe] index: {index}", file=sys.stderr)
    except (OncorweError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def key_parameters(params) -> dict[str, object]:
    """The parameters a reader of the index needs to judge the findings."""
    return {
        "confirmation q (Benjamini-Hochberg)": params.hypothesis.q,
        "smallest response difference": params.hypothesis.min_effect_response,
        "smallest PFS gain (months)": params.hypothesis.min_effect_pfs_months,
        "hypotheses validated": params.validation.top_k,
        "trial power": params.validation.target_power,
        "largest feasible trial": params.validation.max_patients,
        "small-cell threshold": params.privacy.min_cell_count,
    }


def report_warnings(params) -> list[str]:
    """The privacy warnings every page of this run carries: counts under the usual floor
    shown (``privacy.allow_small_cells`` let ``min_cell_count`` below
    :data:`~oncorwe.pipeline.params.SMALL_CELL_FLOOR`), and models trained over a
    federation without TLS (``compute.training: federated`` with ``compute.federated.tls:
    false``, which validation accepts only with ``allow_insecure: true``)."""
    from oncorwe.pipeline.params import SMALL_CELL_FLOOR
    from oncorwe.report.overview import run_warnings

    privacy, compute = params.privacy, params.compute
    return run_warnings(
        min_cell=privacy.min_cell_count,
        small_cells=privacy.allow_small_cells and privacy.min_cell_count < SMALL_CELL_FLOOR,
        federated_without_tls=compute.training == "federated" and not compute.federated.tls,
    )


def index_overview(params, where: Catalog | None = None) -> str:
    """The index's opening block, from the stage outputs (``where``, default the
    project's catalog), ``params`` and the checkout."""
    from oncorwe.core.paths import catalog, project_root
    from oncorwe.report import overview as ov
    from oncorwe.report.render import run_date

    root = project_root()
    where = catalog() if where is None else where
    inputs = ov.dvc_input_hashes(
        root / "dvc.lock", {"hypothesis": "data/hypothesis", "validation": "data/validation"}
    )
    prov = ov.provenance(
        commit=ov.git_commit(root),
        profile=params.cohort.profile,
        patients=params.cohort.n_patients,
        seed=params.cohort.seed,
        source=params.cohort.source,
        parameters=key_parameters(params),
        inputs=inputs,
        run_date=run_date(),  # the pages' date (SOURCE_DATE_EPOCH, when set)
    )
    found = ov.read_overview(
        where.hypothesis,
        where.validation,
        synthetic=params.cohort.source == "synthetic",
        provenance=prov,
        warnings=report_warnings(params),
    )
    return ov.overview_html(found)


def parser() -> argparse.ArgumentParser:
    """The stage's command line: which reports, and where params, notebooks and reports
    live (the defaults are the project's folders, as ``dvc.yaml`` runs it)."""
    p = argparse.ArgumentParser(prog="python -m oncorwe.pipeline.report", description=__doc__)
    p.add_argument(
        "names",
        nargs="*",
        default=sorted(PARAMETERS),
        help=f"reports to render (default: all of {sorted(PARAMETERS)})",
    )
    p.add_argument("--params", default="params.yaml", help="parameter file")
    p.add_argument("--reports-dir", default="reports", help="output folder")
    p.add_argument("--notebooks-dir", default="notebooks", help="source notebooks")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    p.add_argument(
        "--single-file",
        action="store_true",
        help="embed plotly.js in each page (about 5 MB a page, for e-mail) instead of "
        "loading the shared plotly.min.js beside the pages",
    )
    return p


def render_one(name: str, params, args: argparse.Namespace, data: Catalog = _DATA):
    """Execute ``notebooks/NAME.ipynb`` with its parameters from ``params`` (only the keys
    :data:`PARAMETERS` gives it, paths from ``data``: by default the project's, relative)
    with the run's warnings (:func:`report_warnings`), and log where it went, how long
    it took and the numbers it recorded; returns the
    :class:`~oncorwe.report.render.Report`. An unknown name is refused before anything
    runs for it."""
    from oncorwe.core.paths import resolve
    from oncorwe.report.render import render_report

    if name not in PARAMETERS:
        raise OncorweError(f"unknown report {name!r}; known: {sorted(PARAMETERS)}")
    t0 = time.perf_counter()
    report = render_report(
        resolve(args.notebooks_dir) / f"{name}.ipynb",
        name,
        PARAMETERS[name](params, data),
        args.reports_dir,
        timeout=args.timeout,
        warnings=report_warnings(params),
        self_contained=args.single_file,
    )
    print(
        f"[oncorwe] report {name}: {report.html} in {time.perf_counter() - t0:.1f}s "
        f"{json.dumps(report.metrics, sort_keys=True)}",
        file=sys.stderr,
    )
    return report


if __name__ == "__main__":
    raise SystemExit(main())
