"""Errors that name the file, the key and what was expected."""

from __future__ import annotations

from pydantic import ValidationError


class OncorweError(Exception):
    """A user-facing error: the CLI prints its message and exits non-zero."""


class ConfigError(OncorweError, ValueError):
    """A parameter, spec or roles file that does not validate."""


def format_validation_error(err: ValidationError, source: str, prefix: str = "") -> str:
    """Turn a pydantic error into lines ``source: key.path: message (got value)``."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *e["loc"]))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here; check the spelling)"
        got = e.get("input")
        shown = "" if e["type"] in ("missing", "extra_forbidden") else f" (got {got!r})"
        if len(shown) > 120:
            shown = shown[:117] + "...)"
        lines.append(f"{source}: {loc or '<root>'}: {msg}{shown}")
    return "\n".join(lines)
