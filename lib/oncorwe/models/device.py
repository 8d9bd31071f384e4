"""Choose where XGBoost trains: ``"cpu"`` or ``"cuda"``.

The same code runs on a 2-core laptop and on a GPU node; the estimators call
:func:`resolve_device` once in ``fit`` so that ``device="auto"`` means "the GPU when
there is one XGBoost can use, else the CPU", and ``device="cuda"`` fails early, with a
message, instead of deep inside XGBoost.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache

import xgboost

DEVICES = ("auto", "cpu", "cuda")

# Values of CUDA_VISIBLE_DEVICES that hide every GPU from CUDA programs.
_HIDDEN = {"", "-1", "none", "void", "nodevfiles"}


def _cuda_visible_devices() -> str | None:
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return None if value is None else value.strip()


@lru_cache(maxsize=1)
def _nvidia_smi_lists_gpu() -> bool | None:
    """True/False when ``nvidia-smi -L`` ran; None when the tool is absent."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def gpu_visible() -> bool:
    """Whether a CUDA GPU is visible to this process.

    ``CUDA_VISIBLE_DEVICES`` set to an empty string or ``-1`` hides every GPU, whatever
    the hardware. Otherwise ``nvidia-smi -L`` listing a GPU decides; where
    ``nvidia-smi`` is not installed (some containers), a ``CUDA_VISIBLE_DEVICES`` that
    names devices is taken as the scheduler's word that they exist.

    Returns
    -------
    bool
    """
    cvd = _cuda_visible_devices()
    if cvd is not None and cvd.lower() in _HIDDEN:
        return False
    smi = _nvidia_smi_lists_gpu()
    if smi is not None:
        return smi
    return cvd is not None


def xgboost_has_cuda() -> bool:
    """Whether the installed XGBoost was built with CUDA (``xgboost.build_info()``).

    The ``xgboost-cpu`` wheel was not; the full ``xgboost`` wheel on Linux x86-64 was.
    """
    return bool(xgboost.build_info().get("USE_CUDA", False))


def resolve_device(device: str = "auto") -> str:
    """Turn a device request into the value for XGBoost's ``device`` parameter.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` picks ``"cuda"`` when a GPU is visible (:func:`gpu_visible`) and
        XGBoost was built with CUDA (:func:`xgboost_has_cuda`), else ``"cpu"``.
        ``"cuda"`` (or ``"cuda:<ordinal>"``) insists on the GPU.

    Returns
    -------
    str
        ``"cpu"`` or the CUDA device string.

    Raises
    ------
    ValueError
        For an unknown device, or ``"cuda"`` when no GPU is visible or XGBoost lacks
        CUDA support.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("auto") in ("cpu", "cuda")
    True
    """
    if not isinstance(device, str):
        raise ValueError(f"device must be one of {DEVICES}; got {device!r}")
    requested = device.strip().lower()
    if requested == "cpu":
        return "cpu"
    if requested == "auto":
        return "cuda" if gpu_visible() and xgboost_has_cuda() else "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not gpu_visible():
            raise ValueError(
                f"device={device!r} but no CUDA GPU is visible to this process "
                f"(nvidia-smi -L lists none, or CUDA_VISIBLE_DEVICES="
                f"{_cuda_visible_devices()!r} hides them); use device='auto' or 'cpu'"
            )
        if not xgboost_has_cuda():
            raise ValueError(
                f"device={device!r} but the installed xgboost {xgboost.__version__} was built "
                "without CUDA (xgboost.build_info()['USE_CUDA'] is False); install the full "
                "'xgboost' wheel or use device='cpu'"
            )
        return requested
    raise ValueError(f"device must be one of {DEVICES}; got {device!r}")
