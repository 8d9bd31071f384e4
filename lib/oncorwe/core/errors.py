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


class DuplicateKeyError(ValueError):
    """A YAML mapping that gives one key twice."""


def _unique_key_loader():
    """A safe YAML loader that refuses a key given twice in one mapping: PyYAML keeps the
    last value in silence, so a duplicated ``horizon_months`` would quietly win."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(
                    f"key {key!r} is given twice (lines {seen[key]} and {line}); "
                    "expected each key once"
                )
            seen[key] = line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


_UniqueKeyLoader = _unique_key_loader()


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
        raw = yaml.load(p.read_text(), Loader=_UniqueKeyLoader)
    except DuplicateKeyError as err:
        raise ConfigError(f"{p}: {err}") from None
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
