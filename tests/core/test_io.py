"""The output folder a command claims (``claim_output``): nothing that a command did not
write is ever changed or removed, whatever the folder holds and whatever the flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from oncorwe.core.errors import OncorweError
from oncorwe.core.io import MANIFEST, claim_output, file_entry

OUTPUTS = {"a.txt", "b.txt", "dir/"}


def run(out: Path, files: dict[str, bytes], command: str = "cmd", outputs=OUTPUTS, **kw) -> None:
    """Claim ``out`` for ``command`` and write ``files`` (relative path -> bytes) there."""
    folder = claim_output(out, command, outputs, **kw)
    with folder.writing() as tmp:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (links as their target text), relative path -> bytes."""
    out = {}
    for here, dirs, files in os.walk(root):
        for name in (*files, *(d for d in dirs if os.path.islink(os.path.join(here, d)))):
            p = Path(here, name)
            rel = p.relative_to(root).as_posix()
            out[rel] = os.readlink(p).encode() if p.is_symlink() else p.read_bytes()
    return out


def manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())["commands"]


def dead_pid() -> int:
    """The id of a process that has just ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_new_folder_gets_the_outputs_and_a_manifest_of_their_sizes_and_hashes(tmp_path):
    run(tmp_path / "out", {"a.txt": b"1", "dir/x.txt": b"22"})
    files = manifest(tmp_path / "out")["cmd"]["files"]
    assert files == {
        "a.txt": file_entry(tmp_path / "out" / "a.txt"),
        "dir/x.txt": file_entry(tmp_path / "out" / "dir" / "x.txt"),
    }
    assert files["dir/x.txt"]["size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left


def test_an_empty_folder_is_taken(tmp_path):
    (tmp_path / "out").mkdir()
    run(tmp_path / "out", {"a.txt": b"1"})
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"1"


def test_a_rerun_replaces_its_files_and_removes_those_it_no_longer_writes(tmp_path):
    out = tmp_path / "out"
    run(out, {"a.txt": b"1", "b.txt": b"old", "dir/x.txt": b"x"})
    run(out, {"a.txt": b"2"})
    assert tree(out).keys() == {"a.txt", MANIFEST}
    assert (out / "a.txt").read_bytes() == b"2"
    assert manifest(out)["cmd"]["files"] == {"a.txt": file_entry(out / "a.txt")}


def test_a_strangers_file_is_refused_and_with_force_kept_byte_for_byte(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"my notes\n")
    with pytest.raises(OncorweError, match=r"notes\.txt.*--force writes beside them"):
        run(out, {"a.txt": b"1"})
    assert tree(out) == {"notes.txt": b"my notes\n"}
    run(out, {"a.txt": b"1"}, force=True)
    run(out, {"a.txt": b"2"}, force=True)
    assert tree(out).keys() == {"notes.txt", "a.txt", MANIFEST}
    assert (out / "notes.txt").read_bytes() == b"my notes\n"
    assert "notes.txt" not in manifest(out)["cmd"]["files"]


def test_a_file_at_out_is_refused_even_with_force_and_left_as_it_is(tmp_path):
    (tmp_path / "out").write_bytes(b"precious")
    for force in (False, True):
        with pytest.raises(OncorweError, match=r"--out .*out is a file \(8 bytes\)"):
            run(tmp_path / "out", {"a.txt": b"1"}, force=force)
    assert (tmp_path / "out").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_above_out_is_refused(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(OncorweError, match="a folder above --out"):
        run(tmp_path / "f" / "out", {"a.txt": b"1"}, force=True)
    assert (tmp_path / "f").read_bytes() == b"x"


@pytest.mark.parametrize("force", [False, True])
def test_a_strangers_file_under_an_output_name_is_refused_even_with_force(tmp_path, force):
    out = tmp_path / "out"
    (out / "dir").mkdir(parents=True)
    (out / "a.txt").write_bytes(b"mine")
    (out / "dir" / "keep.txt").write_bytes(b"mine too")
    with pytest.raises(OncorweError, match=r"a\.txt, dir/keep\.txt.*even with --force"):
        run(out, {"b.txt": b"1"}, force=force)
    assert tree(out) == {"a.txt": b"mine", "dir/keep.txt": b"mine too"}


@pytest.mark.parametrize("force", [False, True])
def test_an_output_edited_since_is_not_overwritten(tmp_path, force):
    out = tmp_path / "out"
    run(out, {"a.txt": b"1"})
    (out / "a.txt").write_bytes(b"1, and my comment")
    before = tree(out)
    with pytest.raises(OncorweError, match=r"changed since this command wrote it \(a\.txt\)"):
        run(out, {"a.txt": b"2"}, force=force)
    assert tree(out) == before


def test_a_link_at_an_output_name_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_bytes(b"target")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").symlink_to(target)
    with pytest.raises(OncorweError, match=r"a\.txt"):
        run(tmp_path / "out", {"a.txt": b"1"}, force=True)
    assert (tmp_path / "out" / "a.txt").is_symlink() and target.read_bytes() == b"target"


def test_another_commands_folder_is_refused_and_with_force_shared(tmp_path):
    out, theirs = tmp_path / "out", {"o.txt", "a.txt"}
    run(out, {"o.txt": b"theirs"}, command="other", outputs=theirs)
    with pytest.raises(OncorweError, match=r"1 file of `oncorwe other` \(o\.txt\)"):
        run(out, {"b.txt": b"mine"})
    run(out, {"b.txt": b"mine"}, force=True)
    assert (out / "o.txt").read_bytes() == b"theirs"
    assert set(manifest(out)) == {"cmd", "other"}
    with pytest.raises(OncorweError, match=r"1 file of `oncorwe cmd` \(b\.txt\)"):
        run(out, {"o.txt": b"again"}, command="other", outputs=theirs)
    run(out, {"o.txt": b"again"}, command="other", outputs=theirs, force=True)
    assert (out / "b.txt").read_bytes() == b"mine"  # each command's record survived the other


def test_a_name_both_commands_write_stays_with_the_first_even_with_force(tmp_path):
    out = tmp_path / "out"
    run(out, {"a.txt": b"theirs"}, command="other", outputs={"a.txt"})
    with pytest.raises(OncorweError, match=r"of `oncorwe other` \(a\.txt\).*even with --force"):
        run(out, {"b.txt": b"mine"}, force=True)
    assert tree(out).keys() == {"a.txt", MANIFEST}


def test_a_manifest_naming_only_another_command_is_refused(tmp_path):
    out = tmp_path / "out"
    run(out, {"a.txt": b"theirs"}, command="other")
    (out / "a.txt").unlink()
    with pytest.raises(OncorweError, match=r"\.oncorwe-manifest\.json of `oncorwe other`"):
        run(out, {"a.txt": b"mine"})


@pytest.mark.parametrize("text", ["not json", '{"commands": {"cmd": {"files": {"a.txt": 1}}}}'])
def test_an_unreadable_manifest_is_refused_even_with_force(tmp_path, text):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MANIFEST).write_text(text)
    with pytest.raises(OncorweError, match="not a manifest oncorwe can read"):
        run(tmp_path / "out", {"a.txt": b"1"}, force=True)
    assert tree(tmp_path / "out") == {MANIFEST: text.encode()}


def test_a_failed_run_writes_nothing_and_leaves_no_temporary_folder(tmp_path):
    out = tmp_path / "out"
    run(out, {"a.txt": b"1"})
    before = tree(out)
    folder = claim_output(out, "cmd", OUTPUTS)
    with pytest.raises(ZeroDivisionError), folder.writing() as tmp:
        (tmp / "a.txt").write_bytes(b"2")
        raise ZeroDivisionError
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_killed_runs_temporary_folder_is_removed_by_the_next_run(tmp_path):
    stale = tmp_path / f".oncorwe-tmp.out.{dead_pid()}.abc123"
    (stale / "out").mkdir(parents=True)
    (stale / "out" / "a.txt").write_bytes(b"half")
    alive = tmp_path / f".oncorwe-tmp.out.{os.getppid()}.def456"  # a run still writing
    alive.mkdir()
    other = tmp_path / f".oncorwe-tmp.out2.{dead_pid()}.ghi789"  # another --out's
    other.mkdir()
    run(tmp_path / "out", {"a.txt": b"1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", alive.name, other.name])


def test_a_run_killed_while_moving_in_is_finished_by_a_rerun(tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(out, {"a.txt": b"1", "b.txt": b"1"})
    (out / "notes.txt").write_bytes(b"mine")
    real = os.replace

    def replace_then_die(src, dst):
        if Path(dst).name == "b.txt":
            raise KeyboardInterrupt  # killed after a.txt moved in, before b.txt
        real(src, dst)

    folder = claim_output(out, "cmd", OUTPUTS, force=True)
    with pytest.raises(KeyboardInterrupt), folder.writing() as tmp:
        (tmp / "a.txt").write_bytes(b"2")
        (tmp / "b.txt").write_bytes(b"2")
        monkeypatch.setattr(os, "replace", replace_then_die)
    monkeypatch.setattr(os, "replace", real)
    assert (out / "a.txt").read_bytes() == b"2" and (out / "b.txt").read_bytes() == b"1"
    assert "pending" in manifest(out)["cmd"]  # the manifest said what was moving in
    run(out, {"a.txt": b"3", "b.txt": b"3"}, force=True)
    assert tree(out).keys() == {"a.txt", "b.txt", "notes.txt", MANIFEST}
    assert (out / "notes.txt").read_bytes() == b"mine"
    assert "pending" not in manifest(out)["cmd"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---- property: no file the command did not write changes or disappears ----------------

STRANGE = ["notes.txt", "a.txt.bak", "sub/z.txt", ".oncorwe-tmp.out.1.abc"]
NAMES = ["a.txt", "b.txt", "dir/x.txt", "dir/y.txt", *STRANGE]
WRITES = ["a.txt", "b.txt", "dir/x.txt", "dir/y.txt"]
CONTENT = st.binary(min_size=0, max_size=4)


@st.composite
def folders(draw):
    """A folder's history: runs of the command and of another, then a user's edits."""
    steps = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["cmd", "other", "user writes", "user deletes"]))
        names = draw(st.lists(st.sampled_from(WRITES if kind in ("cmd", "other") else NAMES)))
        steps.append((kind, {n: draw(CONTENT) for n in names}))
    return steps


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=folders(),
    writes=st.dictionaries(st.sampled_from(WRITES), CONTENT),
    strangers=st.dictionaries(st.sampled_from(STRANGE), CONTENT),
    force=st.booleans(),
    exists=st.booleans(),
)
def test_no_file_that_the_command_did_not_write_changes_or_disappears(
    tmp_path_factory, history, writes, strangers, force, exists
):
    root = tmp_path_factory.mktemp("p")
    out = root / "out"
    if exists:
        out.mkdir()
    for kind, files in [*history, ("user writes", strangers)]:
        if kind in ("cmd", "other"):
            try:
                run(out, files, command=kind, force=True)
            except OncorweError:
                pass
        for rel, data in files.items():
            path = out / rel
            if kind == "user deletes":
                path.unlink(missing_ok=True)
            elif kind == "user writes" and not path.parent.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    before = tree(out) if out.is_dir() else {}
    records = json.loads(before[MANIFEST])["commands"] if MANIFEST in before else {}
    own = records.get("cmd", {}).get("files", {})
    mine = {r for r in own if r in before and file_entry(out / r) == own[r]}
    try:
        run(out, writes, force=force)
    except OncorweError:
        event("refused")
        assert (tree(out) if out.is_dir() else {}) == before  # refused: nothing changed
        assert not (mine | {MANIFEST}) >= before.keys() or set(records) - {"cmd"}
    else:
        event("written beside others" if before.keys() - mine - {MANIFEST} else "written")
        after = tree(out)
        for rel, data in before.items():
            if rel not in mine and rel != MANIFEST:
                assert after.get(rel) == data, rel  # not the command's: untouched
        for rel, data in writes.items():
            assert after[rel] == data
        assert after.keys() - before.keys() <= writes.keys() | {MANIFEST}
        assert manifest(out)["cmd"]["files"] == {r: file_entry(out / r) for r in writes}
        assert {k: v for k, v in manifest(out).items() if k != "cmd"} == {
            k: v for k, v in records.items() if k != "cmd"
        }
    assert sorted(p.name for p in root.iterdir()) == (["out"] if out.exists() else [])
