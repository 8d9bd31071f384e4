"""A stage killed mid-way, then rerun: nothing lost (issue 14).

On a copy of the session's uninterrupted tiny ``dvc repro`` (the baseline), each stage is
started outside DVC with its ``dvc.yaml`` command and killed with SIGKILL (its whole
process group) at a point found by watching the file system: the feature stage while it
writes its output folder, the hypothesis stage while a tuning trial fits a model, the
report stage while a notebook's kernel runs. Then:

* the previous outputs are byte for byte as they were before the kill;
* no process of the killed run is left (a notebook kernel runs in a session of its own,
  out of the group's reach: it must end on its own);
* the rerun of the stage completes, and leaves no temporary anywhere: the project holds
  exactly the paths it held before the kill, no optuna study holds a ``RUNNING`` trial,
  and a killed kernel's connection file (ports and signing key) is gone too;
* the rerun's outputs are the baseline's, byte for byte (the optuna study, whose trials
  carry their times and process ids, trial by trial).

Each test prints what it measured (time to the kill point, what the kill left, the rerun's
time); ``-rP`` shows it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml

from ..conftest import copy_run, pipeline_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

OUTPUTS = ("data", "metrics", "reports")  # what the stages write (logs/ holds timings)
STUDY = "tuning.db"  # the optuna study: compared trial by trial, not byte by byte
POLL_S = 0.005
STAGE_LIMIT_S = 300.0  # a stage that reaches no kill point or runs past this fails
ATTEMPTS = 3  # starts allowed for the kill point to be seen (a stage may end first)
# what a killed write leaves (core.io): .<name>.<pid>.<random>.tmp, .oncorwe-tmp.<name>...
TEMPORARY = re.compile(r"\..+\.[0-9]+\.[A-Za-z0-9_]+\.tmp|\.oncorwe-tmp\..+")


def outputs_digest(root: Path) -> dict[str, str]:
    """sha256 of every output file (hidden paths, a killed run's temporaries, and the
    optuna study left out)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for top in OUTPUTS
        for p in sorted((root / top).rglob("*"))
        if p.is_file()
        and p.name != STUDY
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def entries(root: Path) -> set[str]:
    """Every path under ``root``, folders included, relative."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def running_trials(db: Path) -> int:
    """Trials an optuna study file holds in state ``RUNNING``, read without a lock (the
    study may be another process's, mid-write); sqlite3 errors propagate."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
    try:
        return con.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0]
    finally:
        con.close()


def trials(db: Path) -> dict[str, list[tuple]]:
    """Each study's trials (one study per tuned model) as a run decides them: number,
    state, parameters, values and reported losses, not the times they ran or the process
    that ran them."""
    storage = f"sqlite:///{db}"
    return {
        name: [
            (t.number, t.state.name, t.params, t.values, t.intermediate_values)
            for t in optuna.load_study(study_name=name, storage=storage).trials
        ]
        for name in sorted(optuna.get_all_study_names(storage))
    }


def processes_in(root: Path) -> dict[int, str]:
    """The processes (but this one) working in ``root``: pid -> command line."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if Path(os.readlink(proc / "cwd")).is_relative_to(root):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return {pid: cmd.decode(errors="replace").strip() for pid, cmd in found.items()}


def kernel_files(root: Path) -> list[Path]:
    """The connection files (``-f FILE``) of the notebook kernels running in ``root``."""
    out = []
    for cmd in processes_in(root).values():
        if "ipykernel" in cmd:
            m = re.search(r"(?:^| )-f (\S+)", cmd)
            if m:
                out.append(Path(m.group(1)))
    return out


# ------------------------------------------------------------------ the kill points


def feature_output_being_written(root: Path) -> bool:
    """The feature stage's output folder is half written: atomic_path's temporary
    (``.analysis.<pid>.<random>.tmp``) lies beside data/features/analysis."""
    return any(p.name.startswith(".analysis.") for p in (root / "data/features").iterdir())


def tuning_trial_running(root: Path) -> bool:
    """A model is being fit inside a tuning trial: the killed run's study (in its
    scratch folder beside data/hypothesis) holds a ``RUNNING`` trial."""
    for db in (root / "data").glob(f".hypothesis.*.tmp/{STUDY}"):
        try:
            if running_trials(db):
                return True
        except sqlite3.OperationalError:  # being created, or locked by its writer
            continue
    return False


def notebook_executing(root: Path) -> bool:
    """A report notebook is executing: its temporary beside reports/executed/NAME.ipynb
    exists and its kernel runs."""
    return any((root / "reports/executed").glob(".*.tmp")) and bool(kernel_files(root))


def drop_study(root: Path) -> None:
    """The hypothesis output as a DVC checkout restores it: without the optuna study
    (``.dvcignore``), so the stage tunes again; with the baseline's study it would reuse
    every finished trial and never fit a model inside one."""
    (root / "data/hypothesis" / STUDY).unlink(missing_ok=True)


@dataclass(frozen=True)
class Kill:
    stage: str
    point: Callable[[Path], bool]
    prepare: Callable[[Path], None] = lambda root: None


KILLS = [
    Kill("features", feature_output_being_written),
    Kill("hypothesis", tuning_trial_running, drop_study),
    Kill("report", notebook_executing),
]


def stage_command(root: Path, stage: str) -> list[str]:
    """The stage's command as ``dvc.yaml`` runs it."""
    return shlex.split(yaml.safe_load((root / "dvc.yaml").read_text())["stages"][stage]["cmd"])


def start(root: Path, kill: Kill, log: Path) -> subprocess.Popen:
    """Start the stage outside DVC, leader of a new process group (so one signal reaches
    every process it starts that stays in the group)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            stage_command(root, kill.stage),
            cwd=root,
            env=pipeline_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_mid_way(root: Path, kill: Kill, log: Path) -> tuple[float, int, list[Path]]:
    """Start the stage, wait for its kill point, SIGKILL its process group; returns the
    seconds from the start to the kill, the start that was killed (1 = the first: a
    stage may end before a poll sees the point, then it starts again) and the
    connection files of the kernels running at the kill."""
    for attempt in range(1, ATTEMPTS + 1):
        kill.prepare(root)
        t0 = time.monotonic()
        proc = start(root, kill, log)
        while proc.poll() is None and not kill.point(root):
            if time.monotonic() - t0 > STAGE_LIMIT_S:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail(f"{kill.stage}: no kill point after {STAGE_LIMIT_S:.0f} s")
            time.sleep(POLL_S)
        if proc.poll() is not None:  # ended before a poll saw the point
            assert proc.returncode == 0, f"{kill.stage} failed:\n{log.read_text()}"
            continue
        seconds, kernels = time.monotonic() - t0, kernel_files(root)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        return seconds, attempt, kernels
    pytest.fail(f"{kill.stage}: ended {ATTEMPTS} times before its kill point was seen")


def wait_until_no_process_in(root: Path, limit_s: float = 20.0) -> float:
    """Seconds until no process works in ``root`` any more; fails after ``limit_s``."""
    t0 = time.monotonic()
    while left := processes_in(root):
        if time.monotonic() - t0 > limit_s:
            pytest.fail(f"processes of the killed run still running after {limit_s} s: {left}")
        time.sleep(0.05)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def baseline(tiny_repro, tmp_path_factory) -> tuple[dict[str, str], dict[str, list[tuple]]]:
    """The uninterrupted run's output hashes and tuning trials (read from a copy of its
    study: the session's run stays as it is)."""
    study = tmp_path_factory.mktemp("baseline") / STUDY
    shutil.copyfile(tiny_repro / "data/hypothesis" / STUDY, study)
    return outputs_digest(tiny_repro), trials(study)


@pytest.mark.parametrize("kill", KILLS, ids=[k.stage for k in KILLS])
def test_a_stage_killed_mid_way_loses_nothing_and_its_rerun_is_the_uninterrupted_run(
    kill, tiny_repro, baseline, tmp_path
):
    root = copy_run(tiny_repro, tmp_path / "project")
    digest, study = baseline
    paths = entries(root)
    kill.prepare(root)
    before = outputs_digest(root)
    log = tmp_path / f"{kill.stage}.log"

    seconds, attempt, kernels = kill_mid_way(root, kill, log)
    lingered = wait_until_no_process_in(root)
    assert outputs_digest(root) == before, "the kill changed the previous outputs"
    left = sorted(entries(root) - paths)
    assert any(TEMPORARY.fullmatch(Path(p).name) for p in left), (
        f"the kill left no temporary: it did not stop a write mid-way ({left})"
    )
    if kill.stage == "hypothesis":
        (scratch,) = root.glob(f"data/.hypothesis.*.tmp/{STUDY}")
        assert running_trials(scratch) == 1

    t0 = time.monotonic()
    rerun = subprocess.run(
        stage_command(root, kill.stage), cwd=root, env=pipeline_env(), capture_output=True
    )
    rerun_s = time.monotonic() - t0
    assert rerun.returncode == 0, rerun.stderr.decode(errors="replace")
    assert sorted(entries(root) ^ paths) == [], "the rerun left (or lost) these paths"
    assert not [p for p in root.rglob("*.db") if running_trials(p)]
    assert not [k for k in kernels if k.exists()], "a killed kernel's connection file stays"
    assert outputs_digest(root) == digest
    assert trials(root / "data/hypothesis" / STUDY) == study

    tops = [p for p in left if not any(TEMPORARY.fullmatch(d) for d in Path(p).parts[:-1])]
    print(
        f"\n{kill.stage}: killed {seconds:.1f} s after the start (start {attempt}); its "
        f"processes gone {lingered:.1f} s after the kill; left {tops}; rerun {rerun_s:.1f} s; "
        f"{len(digest)} output files and {sum(map(len, study.values()))} tuning trials as "
        "in the uninterrupted run"
    )
