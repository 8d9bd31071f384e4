"""Atomic file writes (a temporary sibling, then rename), the one JSON encoder, and the
output folder a command claims with ``--out``.

A failed stage therefore never leaves a half-written output behind; every result that
becomes JSON goes through :func:`jsonable` (NumPy and pandas scalars to Python, NaN and
missing to null) and :func:`write_json`. A command's ``--out`` goes through
:func:`claim_output`: a command never deletes or overwrites a file it did not write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from oncorwe.core.errors import OncorweError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    Works for files and directories. On an exception the temporary path is removed and
    ``target`` is left as it was. The temporary folder is ``.<name>.<pid>.<random>.tmp``
    beside ``target``: a writer killed before the rename leaves it behind (and ``target``
    as it was), and the next write to the same ``target`` removes it, once the process
    ``pid`` has ended. A live writer's folder, and anything not named so, stay.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with atomic_path(root / "result.txt") as tmp:
    ...     _ = tmp.write_text("42")
    >>> [p.name for p in root.iterdir()], (root / "result.txt").read_text()
    (['result.txt'], '42')
    """
    target = Path(target)
    tmp = _temp_beside(target)
    work = tmp / target.name
    try:
        yield work
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(work, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def scratch_beside(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A private working folder next to ``target`` for the length of the block, removed
    after it. Named as :func:`atomic_path` names its temporaries, so a run killed inside
    the block leaves nothing a later write to ``target`` does not remove (a folder in the
    system's temp directory would stay there).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with scratch_beside(root / "out") as work:
    ...     _ = (work / "study.db").write_text("x")
    >>> list(root.iterdir())
    []
    """
    tmp = _temp_beside(Path(target))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _temp_beside(target: Path) -> Path:
    """A new ``.<name>.<pid>.<random>.tmp`` folder beside ``target``, after removing the
    ones of writers that have ended."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_writers_temps(target)
    prefix = f".{target.name}.{os.getpid()}."
    return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))


def _remove_dead_writers_temps(target: Path) -> None:
    """Remove the temporary folders of ``target`` (``.<name>.<pid>.<random>.tmp``, as
    :func:`atomic_path` names them) whose writer ``pid`` is no longer running."""
    # mkdtemp's random part has no dot, so a name parses one way only: ".a.1.<pid>.x.tmp"
    # belongs to target "a.1", never to "a"
    pattern = re.compile(re.escape(f".{target.name}.") + r"(?P<pid>[0-9]+)\.[a-z0-9_]+\.tmp")
    for entry in os.scandir(target.parent):
        m = pattern.fullmatch(entry.name)
        if m and entry.is_dir(follow_symlinks=False) and not process_alive(int(m["pid"])):
            shutil.rmtree(entry.path, ignore_errors=True)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: NumPy / pandas scalars to Python, arrays and tuples
    to lists, keys to text, a dataclass to its fields, NaN, infinity and missing values
    (``None``, ``pd.NA``, ``NaT``) to None. Booleans stay booleans.

    >>> import numpy as np
    >>> jsonable({1: np.float32(0.5), "b": [np.int64(2), float("nan")], "c": np.bool_(True)})
    {'1': 0.5, 'b': [2, None], 'c': True}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "ndim") and value.ndim > 0:
        return jsonable(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "item") and not isinstance(value, int | float | str | bool):
        value = value.item()  # a NumPy scalar
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def rounded(obj: Any, digits: int = 6) -> Any:
    """``obj`` with every float rounded to ``digits`` significant digits (NaN -> None)."""
    if isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            return None
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return obj


def write_json(target: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON (floats to 6 digits), atomically."""
    with atomic_path(target) as tmp:
        text = json.dumps(rounded(payload), indent=2, sort_keys=True, allow_nan=False)
        tmp.write_text(text + "\n")


MANIFEST = ".oncorwe-manifest.json"
"""The file of an output folder that says which command wrote which files there."""

# a run's outputs wait in <parent>/.oncorwe-tmp.<out name>.<pid>.<random> until they move in
_STAGING = ".oncorwe-tmp."
_STAGING_NAME = re.compile(r"\.oncorwe-tmp\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+")
_FOREVER = "even with --force"


def file_entry(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A file's ``size`` (bytes) and ``sha256`` (hex), as a manifest records them."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return {"size": os.stat(path).st_size, "sha256": digest}


@dataclasses.dataclass(frozen=True)
class _Found:
    """What an existing ``--out`` holds, seen by one command (paths relative, with ``/``)."""

    sections: dict[str, dict[str, Any]]  # the manifest, command -> its record
    owned: dict[str, dict[str, Any]]  # this command's files, unchanged since it wrote them
    edited: list[str]  # this command's files, changed since
    others: dict[str, str]  # another command's files -> that command
    strangers: list[str]  # files no manifest lists (and links, pipes, ...)

    def not_mine(self) -> list[str]:
        return sorted([*self.edited, *self.others, *self.strangers])

    def other_commands(self, command: str) -> list[str]:
        return sorted(c for c in self.sections if c != command)


@dataclasses.dataclass(frozen=True)
class OutputFolder:
    """An ``--out`` folder that a command has claimed with :func:`claim_output`.

    The command writes its outputs into :meth:`writing`'s temporary folder; on success
    they move into ``path`` and the manifest is rewritten last. ``owned`` holds the files
    a previous run of the same command wrote there and nobody has changed since: the
    only files a run may replace or remove.
    """

    path: Path
    shown: str  # --out as the user wrote it, for messages
    command: str
    outputs: frozenset[str]  # the top-level names it may write; a folder ends with "/"
    force: bool
    owned: dict[str, dict[str, Any]]

    def previous(self, name: str) -> Path | None:
        """The file ``name`` as the command's previous run left it there, else None."""
        return self.path / name if name in self.owned else None

    @contextlib.contextmanager
    def writing(self) -> Iterator[Path]:
        """Yield an empty folder to write the outputs into; move them in on success.

        The folder lies next to ``path`` (same file system, so every move is a rename);
        on an exception it is removed and ``path`` is left as it was. A run killed here
        leaves it behind, and the next :func:`claim_output` of the same ``--out`` removes it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f"{_STAGING}{self.path.name}.{os.getpid()}."
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=self.path.parent))
        work = tmp / self.path.name
        work.mkdir()
        try:
            yield work
            self._move_in(work, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _move_in(self, work: Path, tmp: Path) -> None:
        new = {rel: file_entry(work / rel) for rel in _files_under(work)}
        stray = sorted(r for r in new if not _declared(r, self.outputs))
        if stray:  # a bug of the command, not of the user
            raise RuntimeError(f"`oncorwe {self.command}` wrote undeclared outputs {stray}")
        # the folder may have changed while the command ran: look again, by the same rules
        found = _scan(self.path, self.shown, self.command) if self.path.is_dir() else None
        if found is None or not os.listdir(self.path):
            sections = found.sections if found else {}
            sections[self.command] = _record(new)
            _write_manifest(work / MANIFEST, sections)
            os.replace(work, self.path)  # a new or empty folder: all at once
            return
        _refuse(self, found, [r for r in new if _blocked(self.path, r, found)])
        sections = found.sections
        sections[self.command] = {"files": found.owned, "pending": new}
        _write_manifest(tmp / MANIFEST, sections, into=self.path)
        for rel in sorted(new):
            dest = self.path / rel
            for above in reversed(Path(rel).parents[:-1]):  # its own file, now a folder
                if (self.path / above).is_file():
                    (self.path / above).unlink()
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(work / rel, dest)
        for rel in sorted(found.owned.keys() - new.keys()):  # the previous run's, gone now
            (self.path / rel).unlink(missing_ok=True)
            _remove_empty_parents(self.path, rel)
        sections[self.command] = _record(new)
        _write_manifest(tmp / MANIFEST, sections, into=self.path)


def claim_output(
    out: str | os.PathLike[str],
    command: str,
    outputs: Iterable[str],
    *,
    force: bool = False,
) -> OutputFolder:
    """Check that ``command`` may write ``outputs`` into ``out``; say what is there if not.

    A command never deletes or overwrites a file it did not write. So ``out`` may be:
    missing (created), an empty folder, or a folder whose manifest (:data:`MANIFEST`)
    lists the files ``command`` wrote there, unchanged since: a rerun replaces exactly
    those. Anything else in the folder (a user's file, another command's output, an
    output edited since) is refused unless ``force``, which writes beside it. A name the
    command writes (``outputs``: top-level names, a folder's ending with ``/``) that holds
    such a file is refused even with ``force``, and so is an ``out`` that is a file.
    Refusals raise :class:`OncorweError` naming the path, before anything is written.
    Also removes the temporary folder a killed run of the same ``out`` left beside it.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> folder = claim_output(root / "out", "demo", ["result.txt"])
    >>> with folder.writing() as tmp:
    ...     _ = (tmp / "result.txt").write_text("42")
    >>> sorted(p.name for p in (root / "out").iterdir())
    ['.oncorwe-manifest.json', 'result.txt']
    >>> _ = (root / "out" / "notes.txt").write_text("mine")
    >>> try:
    ...     claim_output(root / "out", "demo", ["result.txt"])
    ... except OncorweError as err:
    ...     print(str(err).split(";")[0].split(" holds ")[1])
    1 file that no oncorwe manifest lists (notes.txt)
    >>> with claim_output(root / "out", "demo", ["result.txt"], force=True).writing() as tmp:
    ...     _ = (tmp / "result.txt").write_text("43")
    >>> (root / "out" / "notes.txt").read_text(), (root / "out" / "result.txt").read_text()
    ('mine', '43')
    """
    shown = str(out)
    path = Path(os.path.abspath(out))
    if path.is_symlink() and path.is_dir():
        path = Path(os.path.realpath(path))
    if path.parent == path:
        raise OncorweError(f"--out {shown} is a file system's root; expected a folder in one")
    _refuse_a_file(path, shown)
    _remove_stale_staging(path)
    outputs = frozenset(outputs)
    if not path.is_dir():
        return OutputFolder(path, shown, command, outputs, force, {})
    found = _scan(path, shown, command)
    folder = OutputFolder(path, shown, command, outputs, force, found.owned)
    hits = [r for r in found.not_mine() if _declared(r, outputs)]
    hits += [o for o in outputs if not o.endswith("/") and (path / o).is_dir()]
    _refuse(folder, found, hits)
    return folder


def _refuse_a_file(path: Path, shown: str) -> None:
    """An ``--out`` (or a folder above it) that is a file: refused always, left as it is."""
    above = path
    while not os.path.lexists(above):
        above = above.parent
    if above.is_dir():
        return
    what = "a link that leads nowhere" if not above.exists() else "a file"
    if above.is_file():
        what = f"a file ({above.stat().st_size} bytes)"
    where = f"--out {shown} is" if above == path else f"{above}, a folder above --out {shown}, is"
    raise OncorweError(
        f"{where} {what}; expected a folder (a new one, or one this command wrote). "
        f"Nothing was written and the file was left as it is, {_FOREVER}: choose another --out"
    )


def _refuse(folder: OutputFolder, found: _Found, hits: list[str]) -> None:
    """Raise the one-paragraph refusal, if any: names this command would overwrite that it
    did not write (always), or other files in the folder (unless --force)."""
    cmd = f"`oncorwe {folder.command}`"
    if hits:
        names = ", ".join(
            sorted(
                o.rstrip("/") + ("/ and what is in it" * o.endswith("/")) for o in folder.outputs
            )
        )
        held = _describe(found, hits, folder.command)
        raise OncorweError(
            f"--out {folder.shown} holds {held}, where {cmd} writes its outputs ({names}); "
            f"expected those names free or holding {cmd}'s own files, unchanged since it "
            "wrote them. Nothing was written: a command never overwrites a file it did not "
            f"write, {_FOREVER}. Move {'them' if len(hits) > 1 else 'it'}, or choose another --out"
        )
    if (found.not_mine() or found.other_commands(folder.command)) and not folder.force:
        raise OncorweError(
            f"--out {folder.shown} holds {_describe(found, found.not_mine(), folder.command)}; "
            f"expected a new folder, an empty one, or one that {cmd} wrote (its files listed in "
            f"{MANIFEST}, unchanged). Nothing was written. --force writes beside them and "
            "leaves them untouched"
        )


def _describe(found: _Found, rels: list[str], command: str) -> str:
    """``rels`` in words, by whose they are (at most five named per kind), and the
    manifest of another command when it lists none of them."""

    def named(items: list[str], what: str) -> str:
        shown = ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
        return f"{len(items)} {'file' if len(items) == 1 else 'files'} {what} ({shown})"

    rels = sorted(rels)
    parts = []
    strangers = [r for r in rels if r in found.strangers]
    if strangers:
        parts.append(named(strangers, "that no oncorwe manifest lists"))
    for cmd in sorted({found.others[r] for r in rels if r in found.others}):
        parts.append(named([r for r in rels if found.others.get(r) == cmd], f"of `oncorwe {cmd}`"))
    edited = [r for r in rels if r in found.edited]
    if edited:
        parts.append(
            named(
                edited,
                "changed since this command wrote them"
                if len(edited) > 1
                else "changed since this command wrote it",
            )
        )
    rest = [r for r in rels if r not in (*strangers, *found.others, *edited)]
    if rest:
        parts.append(f"{len(rest)} folder(s) where it writes a file ({', '.join(rest[:5])})")
    silent = [c for c in found.other_commands(command) if c not in found.others.values()]
    if silent:
        parts.append(f"{MANIFEST} of `oncorwe {', '.join(silent)}`")
    return "; ".join(parts)


def _scan(path: Path, shown: str, command: str) -> _Found:
    """Sort every file under ``path`` by whose it is, checking sizes and hashes."""
    sections = _read_manifest(path, shown)
    mine: dict[str, list[dict[str, Any]]] = {}
    for key in ("files", "pending"):
        for rel, entry in sections.get(command, {}).get(key, {}).items():
            mine.setdefault(rel, []).append(entry)
    theirs = {
        rel: cmd
        for cmd, record in sections.items()
        if cmd != command
        for key in ("files", "pending")
        for rel in record.get(key, {})
    }
    found = _Found(sections, {}, [], {}, [])
    for rel in _files_under(path):
        if rel == MANIFEST:
            continue
        file = path / rel
        regular = file.is_file() and not file.is_symlink()
        if regular and rel in mine:
            entry = _matching(file, mine[rel])
            if entry is not None:
                found.owned[rel] = entry
            else:
                found.edited.append(rel)
        elif regular and rel in theirs:
            found.others[rel] = theirs[rel]
        else:
            found.strangers.append(rel)
    return found


def _matching(file: Path, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``file``'s entry if its size and hash are one of ``entries``', else None."""
    if all(e["size"] != file.stat().st_size for e in entries):
        return None
    entry = file_entry(file)
    return entry if any(e == entry for e in entries) else None


def _read_manifest(path: Path, shown: str) -> dict[str, dict[str, Any]]:
    """The manifest's records (command -> files), {} when there is none."""
    file = path / MANIFEST
    if not os.path.lexists(file):
        return {}
    try:
        if file.is_symlink() or not file.is_file():
            raise ValueError("not a plain file")
        data = json.loads(file.read_text())
        sections = data["commands"]
        for record in sections.values():
            for key in ("files", "pending"):
                for rel, entry in record.get(key, {}).items():
                    if not (isinstance(rel, str) and isinstance(entry["size"], int)):
                        raise ValueError(f"{key}.{rel}: no size")
                    if not isinstance(entry["sha256"], str):
                        raise ValueError(f"{key}.{rel}: no sha256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise OncorweError(
            f"--out {shown} holds {MANIFEST}, which is not a manifest oncorwe can read "
            f"({type(err).__name__}: {err}); expected the one an oncorwe command wrote there. "
            f"Nothing was written: a command never overwrites a file it did not write, "
            f"{_FOREVER}. Move it, or choose another --out"
        ) from None
    return {str(k): dict(v) for k, v in sections.items()}


def _record(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {"files": dict(sorted(files.items())), "finished": now}


def _write_manifest(file: Path, sections: dict[str, Any], into: Path | None = None) -> None:
    """Write the manifest to ``file``; then rename it into folder ``into``, if given."""
    payload = {"format": 1, "commands": dict(sorted(sections.items()))}
    file.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    if into is not None:
        os.replace(file, into / MANIFEST)


def _files_under(root: Path) -> Iterator[str]:
    """Every entry under ``root`` but folders (links included, not followed), as
    ``a/b.txt``; an unreadable folder is an error, not a blind spot."""

    def unreadable(err: OSError) -> None:
        raise OncorweError(f"{err.filename}: cannot be read ({err.strerror})")

    for here, dirs, files in os.walk(root, onerror=unreadable):
        links = [d for d in dirs if os.path.islink(os.path.join(here, d))]
        dirs[:] = [d for d in dirs if d not in links]
        for name in (*files, *links):
            yield Path(here, name).relative_to(root).as_posix()


def _declared(rel: str, outputs: frozenset[str]) -> bool:
    """Whether ``rel`` lies in one of the names a command writes."""
    top, _, rest = rel.partition("/")
    return (f"{top}/" in outputs) or (top in outputs and not rest)


def _blocked(path: Path, rel: str, found: _Found) -> bool:
    """Whether writing ``rel`` would replace a file (or a file above it) not owned."""
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if os.path.lexists(path / sub) and not (path / sub).is_dir() and sub not in found.owned:
            return True
    return (path / rel).is_dir()


def _remove_empty_parents(root: Path, rel: str) -> None:
    parent = (root / rel).parent
    while parent != root:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def _remove_stale_staging(path: Path) -> None:
    """Remove the temporary folders that killed runs writing to ``path`` left beside it."""
    if not path.parent.is_dir():
        return
    for entry in os.scandir(path.parent):
        m = _STAGING_NAME.fullmatch(entry.name)
        if m and m["name"] == path.name and entry.is_dir(follow_symlinks=False):
            if not process_alive(int(m["pid"])):
                shutil.rmtree(entry.path, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine may still be running (writing its folder,
    or its tuning trial): False only when it surely has ended, so nothing of a live
    process is ever cleaned up. Another user's process or an odd id counts as alive."""
    if os.name != "posix" or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True
