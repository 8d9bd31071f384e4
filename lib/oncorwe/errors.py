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


def load_yaml_model(path, model, what: str, formatter=format_validation_error):
    """Read a YAML (or JSON) mapping from ``path`` and validate it into ``model``.

    Every problem raises :class:`ConfigError` naming the file: a missing file, invalid
    YAML, a top level that is not a mapping, or each failing key with what is allowed.
    """
    from pathlib import Path

    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level of the {what}")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(formatter(err, str(p))) from err
    except ValueError as err:
        raise ConfigError(f"{p}: {err}") from err
