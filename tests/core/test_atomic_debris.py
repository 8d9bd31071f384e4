"""What a writer killed inside ``atomic_path`` leaves behind, and who cleans it: the target
stays as it was, and the next write to the same target removes the killed writer's
temporary folder (never a live writer's, never a name it did not make)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oncorwe.core.io import atomic_path

# writes the first half of a new version of argv[1], says so, then waits to be killed
SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from oncorwe.core.io import atomic_path

    target, kind = Path(sys.argv[1]), sys.argv[2]
    with atomic_path(target) as tmp:
        if kind == "folder":
            tmp.mkdir()
            (tmp / "part-0.txt").write_text("new 0")
        else:
            tmp.write_text("new, first half")
        print("half written", flush=True)
        time.sleep(120)
        if kind == "folder":
            (tmp / "part-1.txt").write_text("new 1")
    """
)


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (or ``root`` itself), relative path -> text."""
    if root.is_file():
        return {".": root.read_text()}
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def write(target: Path, kind: str, version: str) -> None:
    with atomic_path(target) as tmp:
        if kind == "folder":
            tmp.mkdir()
            for i in range(2):
                (tmp / f"part-{i}.txt").write_text(f"{version} {i}")
        else:
            tmp.write_text(f"{version}, complete")


def temps(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.endswith(".tmp"))


def start_slow_writer(target: Path, kind: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(target), kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "half written"
    return proc


def dead_pid() -> int:
    """The id of a process that has just ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_writer_killed_mid_write_leaves_the_target_and_its_rerun_cleans_up(tmp_path, kind):
    target = tmp_path / ("analysis" if kind == "folder" else "summary.json")
    write(target, kind, "old")
    old = tree(target)
    proc = start_slow_writer(target, kind)
    try:
        assert tree(target) == old  # while the killed run is in progress
        (debris,) = temps(tmp_path)
        assert debris.startswith(f".{target.name}.{proc.pid}.")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert tree(target) == old
    assert temps(tmp_path) == [debris]  # what nothing cleaned before
    write(target, kind, "new")
    assert temps(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    if kind == "folder":
        assert tree(target) == {"part-0.txt": "new 0", "part-1.txt": "new 1"}
    else:
        assert tree(target) == {".": "new, complete"}


def test_a_live_writers_temporary_folder_is_left_alone(tmp_path):
    target = tmp_path / "analysis"
    proc = start_slow_writer(target, "folder")
    try:
        (theirs,) = temps(tmp_path)
        write(target, "folder", "mine")  # another write to the same target, meanwhile
        assert temps(tmp_path) == [theirs]
        assert (tmp_path / theirs / "analysis" / "part-0.txt").read_text() == "new 0"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    write(target, "folder", "again")
    assert temps(tmp_path) == []


def test_only_a_dead_writers_folders_of_the_same_target_are_removed(tmp_path):
    pid = dead_pid()
    stale = tmp_path / f".analysis.{pid}.k3x9_q2a.tmp"
    keep = [
        tmp_path / f".analysis.1.{pid}.abcd1234.tmp",  # target "analysis.1"'s
        tmp_path / f".other.{pid}.abcd1234.tmp",  # another target's
        tmp_path / ".analysis.notes.tmp",  # no pid: not ours
        tmp_path / f".analysis.{pid}.tmp",  # no random part: not ours
        tmp_path / f"analysis.{pid}.abcd1234.tmp",  # not hidden: not ours
    ]
    for d in [stale, *keep]:
        d.mkdir()
        (d / "x").write_text("x")
    a_file = tmp_path / f".analysis.{pid}.zzzz0000.tmp"  # the pattern, but a file
    a_file.write_text("someone's")
    write(tmp_path / "analysis", "folder", "new")
    assert not stale.exists()
    assert all((d / "x").read_text() == "x" for d in keep)
    assert a_file.read_text() == "someone's"


def test_a_failed_write_leaves_no_temporary_and_the_target_as_it_was(tmp_path):
    target = tmp_path / "analysis"
    write(target, "folder", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "part-0.txt").write_text("half")
        raise RuntimeError("stage failed")
    assert tree(target) == {"part-0.txt": "old 0", "part-1.txt": "old 1"}
    assert temps(tmp_path) == []


def test_a_run_killed_inside_its_scratch_folder_leaves_what_the_next_write_removes(tmp_path):
    """The hypothesis stage keeps its tuning study in ``scratch_beside(out)`` while it runs:
    a SIGKILL there leaves a folder beside the output (not in the system's temp
    directory), and the next write of that output removes it."""
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from oncorwe.core.io import scratch_beside

        with scratch_beside(Path(sys.argv[1])) as work:
            (work / "tuning.db").write_text("a study in progress")
            print("half written", flush=True)
            time.sleep(120)
        """
    )
    target = tmp_path / "hypothesis"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "half written"
        (debris,) = temps(tmp_path)
        assert debris.startswith(f".hypothesis.{proc.pid}.")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert temps(tmp_path) == [debris]
    write(target, "folder", "rerun")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hypothesis"]
