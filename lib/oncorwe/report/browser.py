"""Headless Chromium checks of rendered pages: the DOM after scripts ran, and screenshots.

The browser runs with networking blocked (every host name resolves to nothing), so a
page that still needed a CDN would show it here. Debian's ``chromium`` package is the
expected browser; ``ONCORWE_CHROMIUM`` points at another binary.

Example
-------
>>> exe = find_chromium()                                          # doctest: +SKIP
>>> "main-svg" in dom_after_scripts("reports/00_world.html")        # doctest: +SKIP
True
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from oncorwe.core.errors import OncorweError
from oncorwe.core.paths import resolve

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    # No network at all: a page that needs a CDN fails here as it would offline.
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary (``$ONCORWE_CHROMIUM`` first, then ``PATH``), or None."""
    env = os.environ.get("ONCORWE_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    exe = find_chromium()
    if exe is None:
        raise OncorweError(
            "no Chromium found (install Debian's `chromium` or set ONCORWE_CHROMIUM)"
        )
    with tempfile.TemporaryDirectory(prefix="oncorwe-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            res = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as err:
            raise OncorweError(f"chromium did not finish within {timeout:.0f} s: {args}") from err
    if res.returncode != 0:
        tail = "\n".join(res.stderr.splitlines()[-10:])
        raise OncorweError(f"chromium exited with {res.returncode}: {tail}")
    return res


def _url(html_path: str | os.PathLike[str]) -> str:
    path = resolve(html_path)
    if not path.is_file():
        raise OncorweError(f"{path} does not exist")
    return path.resolve().as_uri()


def dom_after_scripts(html_path: str | os.PathLike[str], *, timeout: float = 90) -> str:
    """The serialized DOM of ``html_path`` once the page loaded and its scripts ran.

    Plotly draws synchronously on load, so drawn figures appear as
    ``<svg class="main-svg">`` elements.
    """
    return _run(["--dump-dom", _url(html_path)], timeout).stdout


def screenshot(
    html_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    *,
    width: int = 1280,
    height: int = 2000,
    timeout: float = 90,
) -> Path:
    """Save a PNG of the page's first ``width`` x ``height`` pixels to ``png_path``."""
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={png}", f"--window-size={width},{height}", _url(html_path)], timeout)
    if not png.is_file():
        raise OncorweError(f"chromium wrote no screenshot to {png}")
    return png
