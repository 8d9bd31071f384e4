"""Execute a parameterized notebook and turn it into an offline stakeholder page.

* :func:`execute_notebook` runs papermill from the project root with the project
  environment's own kernel, ``PLOTLY_RENDERER=notebook`` (plotly.js embedded once in
  the executed notebook, so figures draw offline) and writes that notebook atomically,
  without what changes from one run to the next (:func:`reproducible`: run times, random ids,
  object addresses), so a rerun of the same inputs writes the same bytes. A failing
  cell raises :class:`~oncorwe.core.errors.OncorweError` naming the notebook, the cell and the
  error, and leaves nothing behind; a run killed mid-way leaves nothing (the kernel's
  connection file included) that the next run of the same notebook does not remove.
* :func:`export_html` converts it with nbconvert, code hidden, and removes every script
  that would be fetched from the network (nbconvert's require.js, MathJax and mermaid
  loaders, and the MathJax loader plotly adds to each figure): the page needs no network.
  Plotly's bundle does not need require.js (it sets ``window.Plotly``). By default the
  page loads it from ``plotly.min.js`` beside it, written once per folder
  (:func:`write_plotly_bundle`): the bundle is 95 % of a page, so three pages are about
  5 MB together instead of 15 MB. ``self_contained=True`` embeds it once instead, a
  single file to send on its own (the stage's ``--single-file``).
* :func:`render_report` does both into ``reports/NAME.html`` (executed notebook in
  ``reports/executed/NAME.ipynb``, plotly.js in ``reports/plotly.min.js``);
  :func:`write_index` writes ``reports/index.html``.
* Printed, or saved as PDF, a page keeps every table column (the print stylesheet of
  the page template: tables shrink and wrap, rows and figures are not split over pages,
  plotly's toolbar is hidden).

Example
-------
>>> report = render_report("notebooks/00_world.ipynb", "00_world",
...                        {"min_cell": 11}, "reports")          # doctest: +SKIP
>>> write_index("reports", [report.entry])                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import html
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from oncorwe.core.errors import OncorweError
from oncorwe.core.io import atomic_path, scratch_beside
from oncorwe.core.paths import project_root, resolve

KERNEL_NAME = "python3"
#: Output metadata key under which a notebook records its key numbers
#: (:func:`oncorwe.report.describe.show_summary`, read back by :func:`read_metrics`).
METRICS_KEY = "oncorwe.metrics"
DEFAULT_TIMEOUT_S = 600

# A <script src="..."> whose source is fetched over the network (http, https or
# protocol-relative), with its (empty) body.
_REMOTE_SCRIPT = re.compile(
    r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script\s*>", re.IGNORECASE
)
_REMOTE_REF = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//[^>]*>",
    re.IGNORECASE,
)
_REMOTE_IMPORT = re.compile(r"\bimport\s*\(\s*[\"'](?:https?:)?//", re.IGNORECASE)
PLOTLY_BUNDLE_MARK = "* plotly.js v"
_PLOTLY_VERSION = re.compile(r"\* plotly\.js v(\S+)")
#: The shared plotly.js beside the pages (:func:`write_plotly_bundle`), and the tag with
#: which a page loads it where the executed notebook embedded the bundle.
PLOTLY_BUNDLE_FILE = "plotly.min.js"
PLOTLY_SCRIPT_TAG = f'<script src="{PLOTLY_BUNDLE_FILE}"></script>'
_SCRIPT_BLOCK = re.compile(r"<script\b[^>]*>(.*?)</script\s*>", re.S | re.I)

# DOM ids that an output got from a random generator: plotly's figure div (a version-4
# UUID) and a pandas Styler's table (``T_`` and five hex digits; the cell ids and CSS
# selectors it derives, ``T_1a2b3_row0_col1``, contain it)
_RANDOM_DOM_ID = re.compile(
    r'\bid="([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}|T_[0-9a-f]{5})"'
)
# an object's default repr (``<pandas.io.formats.style.Styler at 0x7f5e27d3e850>``)
_OBJECT_ADDRESS = re.compile(r"(<[A-Za-z_][\w.]*(?: object)? at )0x[0-9a-fA-F]+>")
_RUN_TIMES = ("start_time", "end_time", "duration")
INJECTED_CELL_ID = "injected-parameters"

# The lab template without its network loaders. Math is not rendered (no LaTeX in the
# reports); the page still shows the markdown as written.
_TEMPLATE_NAME = "oncorwe_report.html.j2"
_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<meta name="description" content="{{ resources.oncorwe.description | e }}">
<meta name="oncorwe:generated" content="{{ resources.oncorwe.generated | e }}">
<style type="text/css">
  body.jp-Notebook { max-width: 1180px; margin: 0 auto; padding: 8px 24px 48px; }
  .jp-RenderedHTMLCommon table { font-size: 13px; }
  /* Printed (or saved as PDF) a page keeps every table column: tables shrink and wrap
     instead of being cut at the paper's edge (the go/no-go table is wider than a
     portrait page), a row or a figure is not split over pages, a long table repeats
     its header, and the screen's chrome (plotly's toolbar, collapsers) is left out. */
  @media print {
    @page { size: A4 landscape; margin: 12mm; }
    body.jp-Notebook { max-width: none; padding: 0; }
    .jp-OutputArea, .jp-OutputArea-output, .jp-RenderedHTMLCommon, .jp-Cell-outputWrapper,
    .dataframe {
      overflow: visible !important; max-width: 100% !important; }
    .jp-RenderedHTMLCommon table, table.dataframe {
      font-size: 8.5pt; table-layout: auto; width: 100%; max-width: 100%; }
    .jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon td {
      white-space: normal !important; overflow-wrap: anywhere; padding: 2px 4px; }
    thead { display: table-header-group; }
    tr, td, th { page-break-inside: avoid; break-inside: avoid; }
    .js-plotly-plot, .plotly-graph-div, .jp-OutputArea-child {
      page-break-inside: avoid; break-inside: avoid; }
    .jp-OutputArea-output pre { white-space: pre-wrap; }
    .modebar-container, .modebar, .jp-Collapser, .anchor-link { display: none !important; }
  }
  .oncorwe-footer { color: #666; font-size: 12px; margin: 32px 0 0 0;
                    font-family: var(--jp-ui-font-family, Helvetica, Arial, sans-serif);
                    border-top: 1px solid #ddd; padding-top: 8px; }
</style>
{%- endblock html_head_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.oncorwe.banner }}
{%- endblock body_header -%}
{% block body_footer %}
<footer class="oncorwe-footer">Generated {{ resources.oncorwe.generated | e }} by oncorwe
  from the notebook {{ resources.oncorwe.source | e }}. Counts under
  the small-cell threshold are suppressed.</footer>
</main>
</body>
{% endblock body_footer %}
"""


# --------------------------------------------------------------------------- execution


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the duration (the kernel inherits them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def kernel_python(kernel_name: str = KERNEL_NAME) -> str:
    """The interpreter the kernel ``kernel_name`` starts, as jupyter_client will launch it.

    Raises :class:`OncorweError` when it is not this environment's interpreter (a user-wide
    ``python3`` kernelspec pointing at another Python would import another ``oncorwe``).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel as err:
        raise OncorweError(
            f"no Jupyter kernel named {kernel_name!r}; install this environment's kernel with "
            f"`{sys.executable} -m ipykernel install --sys-prefix --name {kernel_name}`"
        ) from err
    argv0 = spec.argv[0]
    v = sys.version_info
    if argv0 in {"python", f"python{v[0]}", f"python{v[0]}.{v[1]}"}:
        return sys.executable  # jupyter_client substitutes sys.executable for these
    if Path(argv0).absolute().parent == Path(sys.executable).absolute().parent:
        return argv0
    raise OncorweError(
        f"the Jupyter kernel {kernel_name!r} ({spec.resource_dir}) runs {argv0}, not this "
        f"environment's {sys.executable}; reinstall it with `{sys.executable} -m ipykernel "
        f"install --sys-prefix --name {kernel_name}` or remove the other kernelspec"
    )


def execute_notebook(
    src: str | os.PathLike[str],
    dst_ipynb: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: int = DEFAULT_TIMEOUT_S,
    kernel_name: str = KERNEL_NAME,
) -> Path:
    """Run ``src`` with papermill and write the executed notebook to ``dst_ipynb`` atomically.

    Parameters
    ----------
    src, dst_ipynb : path
        Source notebook (with a ``parameters``-tagged cell) and where the executed copy
        goes; relative paths resolve against the project root.
    parameters : mapping
        Values injected after the parameters cell (any JSON-able type, lists included).
    cwd : path, optional
        Working directory of the kernel; default the project root.
    timeout : int
        Seconds allowed per cell (kernel start-up is allowed 60 s).
    kernel_name : str
        Kernelspec to use; it must start this environment's Python (:func:`kernel_python`).

    Returns
    -------
    Path
        ``dst_ipynb``.

    Raises
    ------
    OncorweError
        A missing notebook, a wrong kernel, or a cell that raised (the message names the
        notebook, the cell number and the error; no output file is left).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    from traitlets.config import Config

    src = resolve(src)
    dst = resolve(dst_ipynb)
    if not src.is_file():
        raise OncorweError(f"notebook {src} does not exist")
    workdir = Path(cwd).resolve() if cwd is not None else project_root()
    env = {
        "PLOTLY_RENDERER": "notebook",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # silences debugpy's frozen-modules note
        # Kernelspecs of this environment win over user-wide ones of the same name.
        "JUPYTER_PREFER_ENV_PATH": "1",
    }
    # the kernel's connection file (its ports and signing key) lies in a scratch folder
    # beside the output, not in the system's temp folder: a run killed mid-way leaves it
    # where the next run of the same notebook removes it
    with _environ(**env), atomic_path(dst) as tmp, scratch_beside(dst) as scratch:
        kernel_python(kernel_name)
        kernel_files = Config({"KernelManager": {"connection_file": str(scratch / "kernel.json")}})
        try:
            pm.execute_notebook(
                str(src),
                str(tmp),
                parameters=dict(parameters or {}),
                kernel_name=kernel_name,
                language="python",
                cwd=str(workdir),
                progress_bar=False,
                log_output=False,
                request_save_on_cell_execute=False,
                execution_timeout=timeout,
                start_timeout=60,
                record_timing=False,  # nbclient's per-cell times: logged, not kept
                config=kernel_files,
            )
        except PapermillExecutionError as err:
            first = next((ln for ln in err.source.splitlines() if ln.strip()), "")[:80]
            raise OncorweError(
                f"notebook {src.name}: cell {err.cell_index} of the executed notebook "
                f"(starting `{first}`) raised {err.ename}: {err.evalue}"
            ) from None
        except Exception as err:  # kernel died, timeout, bad parameters...
            raise OncorweError(f"notebook {src.name}: execution failed: {err}") from err
        nbformat.write(reproducible(nbformat.read(tmp, as_version=4), src), tmp)
    return dst


def reproducible(nb: nbformat.NotebookNode, src: Path) -> nbformat.NotebookNode:
    """``nb``, executed from ``src``, without what differs between two runs of the same
    inputs, so that a rerun (of a killed stage, or on a fresh clone) writes the executed
    copy and its page byte for byte again:

    * papermill's run times (start, end, duration) of the notebook and of each cell:
      the stage logs its time under ``logs/`` (which no stage reads);
    * the random id papermill gives the cell it injects: :data:`INJECTED_CELL_ID`;
    * the paths papermill records: the source's, relative to the project root (not the
      machine's path), and the output's (a temporary folder's, named by the process id);
    * the random DOM ids outputs carry (plotly's figure ``div``, a Styler's table), each
      renamed ``oncorwe-<n>`` in the order they first appear in the notebook;
    * the memory address in an object's default repr (``<... at 0x7f...>``): ``0x0``.

    Changes ``nb`` in place and returns it.

    Examples
    --------
    >>> nb = nbformat.v4.new_notebook()
    >>> nb.cells = [nbformat.v4.new_code_cell("fig")]
    >>> nb.cells[0].outputs = [nbformat.v4.new_output("display_data", {
    ...     "text/html": '<div id="0f8a8c1e-3b7e-4c0e-9d5a-2b1c3d4e5f60"></div>',
    ...     "text/plain": "<Figure at 0x7f5e27d3e850>"})]
    >>> nb.cells[0].metadata["papermill"] = {"duration": 0.4, "status": "completed"}
    >>> out = reproducible(nb, Path("notebooks/00_world.ipynb"))
    >>> dict(out.cells[0].outputs[0].data)
    {'text/html': '<div id="oncorwe-1"></div>', 'text/plain': '<Figure at 0x0>'}
    >>> dict(out.cells[0].metadata.papermill)
    {'status': 'completed'}
    """
    run = nb.metadata.get("papermill")
    if run is not None:
        for key in _RUN_TIMES:
            run.pop(key, None)
        run.pop("output_path", None)
        src = Path(src).resolve()
        root = project_root()
        run["input_path"] = (
            src.relative_to(root).as_posix() if src.is_relative_to(root) else src.name
        )
    renamed: dict[str, str] = {}
    for cell in nb.cells:
        for key in _RUN_TIMES:
            cell.metadata.get("papermill", {}).pop(key, None)
        if INJECTED_CELL_ID in cell.metadata.get("tags", []):
            cell["id"] = INJECTED_CELL_ID
        for out in cell.get("outputs", []):
            for text in out.get("data", {}).values():
                if isinstance(text, str):
                    for found in _RANDOM_DOM_ID.findall(text):
                        renamed.setdefault(found, f"oncorwe-{len(renamed) + 1}")
    ids = re.compile("|".join(map(re.escape, renamed))) if renamed else None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            for mime, text in data.items():
                if isinstance(text, str):
                    text = ids.sub(lambda m: renamed[m.group(0)], text) if ids else text
                    data[mime] = _OBJECT_ADDRESS.sub(r"\g<1>0x0>", text)
    return nb


def read_metrics(executed_ipynb: str | os.PathLike[str]) -> dict:
    """Merge the metrics a notebook recorded (``metadata["oncorwe.metrics"]`` of outputs).

    Notebooks record them with :func:`oncorwe.report.describe.show_summary` (or any
    ``display(obj, metadata={"oncorwe.metrics": {...}})``); later outputs win.
    """
    nb = nbformat.read(resolve(executed_ipynb), as_version=4)
    merged: dict = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            found = out.get("metadata", {}).get(METRICS_KEY)
            if isinstance(found, dict):
                merged.update(found)
    return merged


# --------------------------------------------------------------------------- export


def run_date() -> dt.date:
    """The date a page says it was generated: today, or the UTC day of
    ``SOURCE_DATE_EPOCH`` (seconds since 1970) when that is set, the reproducible-builds
    convention: a rebuild of the same inputs after midnight writes the same bytes.

    >>> os.environ["SOURCE_DATE_EPOCH"] = "1764633600"
    >>> run_date()
    datetime.date(2025, 12, 2)
    >>> del os.environ["SOURCE_DATE_EPOCH"]
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return dt.date.today()
    try:
        return dt.datetime.fromtimestamp(int(epoch), dt.UTC).date()
    except (ValueError, OverflowError, OSError):
        raise OncorweError(
            f"SOURCE_DATE_EPOCH={epoch!r} is not a time; expected whole seconds since "
            "1970-01-01 UTC (or unset it: the pages then carry today's date)"
        ) from None


def _export_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Copy of ``nb`` for readers: no stderr streams (warnings belong in the executed copy)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [
                o
                for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]
    return nb


def strip_remote_scripts(page: str) -> str:
    """Remove every ``<script src=...>`` that points at the network (CDN loaders)."""
    return _REMOTE_SCRIPT.sub("", page)


def assert_no_cdn(html_text: str) -> None:
    """Raise :class:`OncorweError` if the page would fetch anything from the network.

    Checks ``<script>``, ``<link>``, ``<img>`` and ``<iframe>`` tags with an ``http(s)://``
    or ``//`` source, and dynamic ``import("https://...")`` calls.
    """
    refs = _REMOTE_REF.findall(html_text) + _REMOTE_IMPORT.findall(html_text)
    if refs:
        shown = "; ".join(r[:120] for r in refs[:5])
        raise OncorweError(f"page references {len(refs)} network resource(s): {shown}")


def plotly_bundle_count(html_text: str) -> int:
    """How many copies of the plotly.js library a page embeds: 0 for a page that loads
    the shared ``plotly.min.js`` (:func:`export_html`), 1 for a single-file page with
    figures."""
    return html_text.count(PLOTLY_BUNDLE_MARK)


def visible_text(html_text: str) -> str:
    """The page without ``<style>`` blocks and without the embedded plotly.js library.

    What remains is what a reader can see or extract (text, tables, figure data): the
    input for :func:`oncorwe.core.privacy.check_no_identifiers`.
    """
    text = re.sub(r"<style\b.*?</style\s*>", " ", html_text, flags=re.S | re.I)

    def drop_bundle(m: re.Match[str]) -> str:
        return " " if PLOTLY_BUNDLE_MARK in m.group(0) else m.group(0)

    return re.sub(r"<script\b[^>]*>.*?</script\s*>", drop_bundle, text, flags=re.S | re.I)


def plotly_bundle() -> str:
    """The plotly.js library of the installed plotly package: what the ``notebook``
    renderer embeds in an executed notebook (``plotly.offline.get_plotlyjs()``)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def write_plotly_bundle(folder: str | os.PathLike[str]) -> Path:
    """Write :func:`plotly_bundle` to ``folder/plotly.min.js`` (atomically), the file the
    pages in ``folder`` load; a file already holding those bytes is left as it is, so
    the pages of one run write it once. Returns its path."""
    data = plotly_bundle().encode("utf-8")
    dst = resolve(folder) / PLOTLY_BUNDLE_FILE
    if dst.is_file() and dst.stat().st_size == len(data) and dst.read_bytes() == data:
        return dst
    with atomic_path(dst) as tmp:
        tmp.write_bytes(data)
    return dst


def _plotly_once(page: str, *, self_contained: bool, source: str) -> tuple[str, bool]:
    """``page`` with plotly.js once, where the notebook first embedded it: that copy kept
    (``self_contained``) or replaced by :data:`PLOTLY_SCRIPT_TAG`; every later copy
    removed. Returns the page and whether it needs plotly.js.

    Shared, the embedded bundle must be this environment's (:func:`plotly_bundle`): a
    notebook executed with another plotly would load a library its figures were not
    made for.
    """
    if PLOTLY_BUNDLE_MARK not in page:
        return page, False
    shared = None if self_contained else plotly_bundle()
    seen = False

    def once(m: re.Match[str]) -> str:
        nonlocal seen
        if PLOTLY_BUNDLE_MARK not in m.group(1):
            return m.group(0)
        if seen:
            return ""
        seen = True
        if shared is None:
            return m.group(0)
        if m.group(1) != shared:
            found = _PLOTLY_VERSION.search(m.group(1))
            ours = _PLOTLY_VERSION.search(shared)
            raise OncorweError(
                f"{source} embeds plotly.js {found.group(1) if found else '(unknown)'}, "
                f"not this environment's {ours.group(1) if ours else '(unknown)'}: execute "
                "it again, or export it as a single file (self_contained=True)"
            )
        return PLOTLY_SCRIPT_TAG

    return _SCRIPT_BLOCK.sub(once, page), seen


def export_html(
    executed_ipynb: str | os.PathLike[str],
    dst_html: str | os.PathLike[str],
    *,
    title: str,
    description: str = "",
    generated: dt.date | None = None,
    check_privacy: bool = True,
    warnings: Sequence[str] = (),
    self_contained: bool = False,
) -> Path:
    """Convert an executed notebook into an offline HTML page, code hidden.

    The page embeds its CSS (print stylesheet included) and loads plotly.js from
    ``plotly.min.js`` beside it (:func:`write_plotly_bundle`, written before the page),
    at the place the ``notebook`` renderer embedded the bundle, before the first
    figure; or, ``self_contained``, embeds that bundle once. Every network script is
    removed and :func:`assert_no_cdn` checks the result before the atomic write. stderr
    output (warnings) is left out of the page.

    Parameters
    ----------
    executed_ipynb : path
        Output of :func:`execute_notebook`.
    dst_html : path
        Destination page.
    title : str
        The page title (``<title>``).
    description : str
        One line for ``<meta name="description">`` (read back by :func:`scan_reports`).
    generated : date, optional
        Generation date shown in the footer (default :func:`run_date`; a date, never a
        time).
    check_privacy : bool
        Refuse to write a page whose visible text or figure data holds a patient key or
        an exact date (:func:`oncorwe.core.privacy.check_no_identifiers`; raises
        :class:`~oncorwe.core.privacy.PrivacyError`).
    warnings : list of str
        The run's privacy warnings, shown as a banner at the top of the page
        (:func:`oncorwe.report.overview.warnings_html`, the index's banner).
    self_contained : bool
        Embed plotly.js in the page (about 4.8 MB) instead of loading the shared
        ``plotly.min.js``: one file that draws its figures on its own, for e-mail.
        A page without figures is the same either way.

    Raises
    ------
    OncorweError
        A network reference left in the page, or (shared) a notebook that embeds
        another plotly.js than this environment's.
    """
    import jinja2
    from nbconvert import HTMLExporter

    from oncorwe.report.overview import warnings_html

    src = resolve(executed_ipynb)
    nb = _export_notebook(nbformat.read(src, as_version=4))
    nb.metadata["title"] = title
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
        template_file=_TEMPLATE_NAME,
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    generated = generated or run_date()
    resources = {
        "metadata": {"name": title},
        "oncorwe": {
            "description": description,
            "generated": generated.isoformat(),
            "source": _source_name(nb, src),
            "banner": warnings_html(warnings),
        },
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    body = strip_remote_scripts(body)
    body, uses_plotly = _plotly_once(body, self_contained=self_contained, source=src.name)
    assert_no_cdn(body)
    if check_privacy:
        from oncorwe.core.privacy import check_no_identifiers

        check_no_identifiers(visible_text(body), allow=[generated.isoformat()])
    dst = resolve(dst_html)
    if uses_plotly and not self_contained:
        write_plotly_bundle(dst.parent)  # first: a page is never there without it
    with atomic_path(dst) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return dst


def _source_name(nb: nbformat.NotebookNode, path: Path) -> str:
    pm_meta = nb.metadata.get("papermill", {})
    return Path(pm_meta.get("input_path") or path).name


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class ReportEntry:
    """One line of the index page."""

    name: str
    title: str
    description: str
    generated: str  # ISO date, YYYY-MM-DD

    @property
    def href(self) -> str:
        return f"{self.name}.html"


@dataclass(frozen=True)
class Report:
    """What :func:`render_report` produced."""

    html: Path
    executed: Path
    entry: ReportEntry
    metrics: dict = field(default_factory=dict)


def notebook_info(src: str | os.PathLike[str]) -> tuple[str, str]:
    """Title and one-line description of a source notebook.

    From ``metadata["oncorwe"]["title"|"description"]``, else the first ``# heading``
    and the first paragraph after it (the whole paragraph; one that ends in a colon
    keeps the list it introduces, its items joined with semicolons).
    """
    nb = nbformat.read(resolve(src), as_version=4)
    meta = nb.metadata.get("oncorwe", {})
    title, description = meta.get("title"), meta.get("description")
    for cell in nb.cells:
        if cell.cell_type != "markdown" or (title and description):
            continue
        lines = [ln.strip() for ln in cell.source.splitlines()]
        for i, ln in enumerate(lines):
            if ln.startswith("# ") and not title:
                title = ln[2:].strip()
                if not description:
                    description = _first_paragraph(lines[i + 1 :])
                break
    return title or Path(src).stem, description or ""


_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+")


def _first_paragraph(lines: list[str]) -> str:
    """The first paragraph of Markdown ``lines`` as one line; when it ends in a colon,
    the list right after it follows, its items joined with ``; ``."""
    paragraphs: list[list[str]] = [[]]
    for ln in lines:
        if not ln or ln.startswith("#"):
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        paragraphs[-1].append(ln)
    paragraphs = [p for p in paragraphs if p]
    if not paragraphs:
        return ""
    first = paragraphs[0]
    items = [ln for ln in first if _LIST_ITEM.match(ln)]
    text = " ".join(ln for ln in first if not _LIST_ITEM.match(ln))
    if text.endswith(":") and not items and len(paragraphs) > 1:
        items = [ln for ln in paragraphs[1] if _LIST_ITEM.match(ln)]
    if text.endswith(":") and items:
        text += " " + "; ".join(_LIST_ITEM.sub("", ln).rstrip(";.") for ln in items) + "."
    return text


def render_report(
    src: str | os.PathLike[str],
    name: str,
    parameters: Mapping[str, Any] | None,
    reports_dir: str | os.PathLike[str] = "reports",
    *,
    title: str | None = None,
    description: str | None = None,
    timeout: int = DEFAULT_TIMEOUT_S,
    cwd: str | os.PathLike[str] | None = None,
    warnings: Sequence[str] = (),
    self_contained: bool = False,
) -> Report:
    """Execute ``src`` and export it: ``reports_dir/NAME.html`` + ``executed/NAME.ipynb``
    (+ ``reports_dir/plotly.min.js``, shared by the folder's pages, when it has figures).

    The HTML is written only after the notebook ran to the end; a failing notebook
    raises :class:`OncorweError` and leaves both outputs as they were. ``warnings``: the
    run's privacy warnings, a banner on the page; ``self_contained``: plotly.js embedded
    in the page instead of shared (:func:`export_html`).

    Returns
    -------
    Report
        Paths, the index entry and the metrics the notebook recorded (:func:`read_metrics`).
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise OncorweError(f"report name {name!r}: use letters, digits, '_', '-' and '.'")
    out_dir = resolve(reports_dir)
    nb_title, nb_description = notebook_info(src)
    title = title or nb_title
    description = nb_description if description is None else description
    executed = out_dir / "executed" / f"{name}.ipynb"
    with atomic_path(executed) as tmp_nb:
        execute_notebook(src, tmp_nb, parameters, cwd=cwd, timeout=timeout)
        today = run_date()
        page = export_html(
            tmp_nb,
            out_dir / f"{name}.html",
            title=title,
            description=description,
            generated=today,
            warnings=warnings,
            self_contained=self_contained,
        )
        metrics = read_metrics(tmp_nb)
    entry = ReportEntry(name, title, description, today.isoformat())
    return Report(html=page, executed=executed, entry=entry, metrics=metrics)


def scan_reports(reports_dir: str | os.PathLike[str]) -> list[ReportEntry]:
    """Index entries of the pages in ``reports_dir`` (from their title and meta tags)."""
    out = []
    for page in sorted(resolve(reports_dir).glob("*.html")):
        if page.name == "index.html":
            continue
        head = page.read_text(encoding="utf-8", errors="replace")[:400_000]
        head = head[: head.find("</head>")] if "</head>" in head else head

        def meta(key: str, text: str = head) -> str:
            # Attribute order is not fixed (nbconvert rewrites the page).
            for tag in re.findall(r"<meta\b[^>]*>", text):
                if re.search(rf'\bname="{re.escape(key)}"', tag):
                    m = re.search(r'\bcontent="([^"]*)"', tag)
                    return html.unescape(m.group(1)) if m else ""
            return ""

        t = re.search(r"<title>(.*?)</title>", head, flags=re.S)
        out.append(
            ReportEntry(
                name=page.stem,
                title=html.unescape(t.group(1).strip()) if t else page.stem,
                description=meta("description"),
                generated=meta("oncorwe:generated"),
            )
        )
    return out


_INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
<style>
  body {{ font-family: Helvetica, Arial, sans-serif; color: #222; max-width: 860px;
         margin: 40px auto; padding: 0 24px; line-height: 1.45; }}
  h1 {{ font-size: 26px; margin-bottom: 4px; }}
  p.lead {{ color: #555; margin-top: 0; }}
  ul.reports {{ list-style: none; padding: 0; }}
  ul.reports li {{ border-top: 1px solid #e3e3e3; padding: 14px 0; }}
  ul.reports a {{ font-size: 18px; color: #0b5cad; text-decoration: none; }}
  ul.reports a:hover {{ text-decoration: underline; }}
  .desc {{ margin: 4px 0 0 0; }}
  .date {{ color: #777; font-size: 13px; }}
  .banner {{ border-radius: 4px; padding: 10px 14px; margin: 12px 0 18px 0; }}
  .banner.synthetic {{ background: #fff4d6; border: 1px solid #e0b43c; }}
  section.headline h2, section.provenance h2 {{ font-size: 18px; margin: 18px 0 6px 0; }}
  section.headline p {{ font-size: 17px; margin: 4px 0; }}
  ol.top {{ margin: 4px 0 0 0; padding-left: 22px; }}
  ol.top li {{ margin: 3px 0; }}
  .top-title {{ font-weight: bold; margin: 10px 0 0 0; }}
  section.provenance table {{ border-collapse: collapse; font-size: 13px; }}
  section.provenance th {{ text-align: left; padding: 2px 14px 2px 0; color: #555;
                           font-weight: normal; vertical-align: top; white-space: nowrap; }}
  section.provenance td {{ padding: 2px 0; }}
  @media print {{ body {{ max-width: none; margin: 0; }} a {{ color: #000; }} }}
  footer {{ color: #777; font-size: 12px; border-top: 1px solid #e3e3e3; padding-top: 8px;
           margin-top: 24px; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="lead">{lead}</p>
{overview}
<h2>Reports</h2>
<ul class="reports">
{items}
</ul>
<footer>Aggregates only: counts under the small-cell threshold are suppressed in every
report. Every page opens without a network connection; its figures load plotly.min.js
from this folder (keep the folder together), unless it was rendered as a single file.</footer>
</body>
</html>
"""


def write_index(
    reports_dir: str | os.PathLike[str],
    entries: Sequence[ReportEntry] | None = None,
    *,
    title: str = "oncorwe reports",
    lead: str = "Rendered analyses of the oncology real-world evidence pipeline.",
    overview: str = "",
) -> Path:
    """Write ``reports_dir/index.html``: a link, title, description and date per report.

    ``entries`` default to :func:`scan_reports` of the folder; a description's inline
    Markdown (``**bold**``) is rendered. ``overview`` is the HTML block the page opens
    with (:func:`oncorwe.report.overview.overview_html`: headline, synthetic-data
    banner, provenance). The page has no script.
    """
    from oncorwe.report.overview import inline_markdown

    out_dir = resolve(reports_dir)
    entries = list(scan_reports(out_dir) if entries is None else entries)
    items = "\n".join(
        f'<li><a href="{html.escape(e.href)}">{html.escape(e.title)}</a>'
        f'<p class="desc">{inline_markdown(e.description)}</p>'
        f'<span class="date">generated {html.escape(e.generated)}</span></li>'
        for e in sorted(entries, key=lambda e: e.name)
    )
    page = _INDEX_TEMPLATE.format(
        title=html.escape(title), lead=html.escape(lead), overview=overview, items=items
    )
    assert_no_cdn(page)
    dst = out_dir / "index.html"
    with atomic_path(dst) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return dst


def entries_to_json(entries: Sequence[ReportEntry]) -> list[dict]:
    """Entries as plain dicts (for logs and metrics)."""
    return [asdict(e) for e in entries]
