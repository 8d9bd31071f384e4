"""``--out`` of every command that has one: nothing lost (issue 14).

Real runs through typer's CliRunner on the smallest inputs: a file at ``--out`` is left as
it is; a stranger's file in the folder is refused, or with ``--force`` kept byte for byte
beside the outputs; a rerun replaces its own output; another command's folder is refused;
a killed run leaves no debris after the rerun.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from oncorwe.cli import app
from oncorwe.cohort.flat import ROLES, flat_cohort
from oncorwe.core.io import MANIFEST, file_entry

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["generate", "export-flat", "discover", "emulate", "transport", "trial-sim"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A 400-patient flat cohort, its roles file and two small trial designs."""
    d = tmp_path_factory.mktemp("inputs")
    flat_cohort(400, share=0.3, seed=0).to_csv(d / "cohort.csv", index=False)
    (d / "roles.yaml").write_text(yaml.safe_dump(ROLES))
    design = yaml.safe_load((ROOT / "examples" / "trial_design.yaml").read_text())
    for name, n in (("design.yaml", 200), ("design2.yaml", 100)):
        (d / name).write_text(yaml.safe_dump({**design, "sample_size": n, "replicates": 200}))
    return d


def args(command: str, d: Path, rerun: bool = False) -> list[str]:
    """The command's arguments but ``--out``; a rerun's differ where the command has a knob."""
    cohort, roles = ["--cohort", d / "cohort.csv"], ["--roles", d / "roles.yaml"]
    first, second = {
        "generate": (["--patients", 30], ["--patients", 30, "--seed", 2]),
        "export-flat": (["--patients", 50], ["--patients", 50, "--seed", 2]),
        "discover": ([*cohort, *roles], [*cohort, *roles]),
        "emulate": ([*cohort, *roles], [*cohort, *roles, "--horizon-months", 6]),
        "transport": (
            ["--train", d / "cohort.csv", "--test", d / "cohort.csv", *roles],
            ["--train", d / "cohort.csv", "--test", d / "cohort.csv", *roles, "--model", "both"],
        ),
        "trial-sim": (["--design", d / "design.yaml"], ["--design", d / "design2.yaml"]),
    }[command]
    return [command, *map(str, second if rerun else first)]


def oncorwe(argv: list, cwd: Path):
    """One in-process run, from ``cwd`` (outside any project: discover uses the defaults)."""
    with pytest.MonkeyPatch.context() as m:
        m.chdir(cwd)
        return CliRunner().invoke(app, [str(a) for a in argv])


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_manifest_is_the_folder(out: Path, command: str, beside: set[str] = frozenset()):
    """The manifest lists exactly the command's files there, with their sizes and hashes."""
    files = json.loads((out / MANIFEST).read_text())["commands"][command]["files"]
    assert set(tree(out)) == {*files, MANIFEST, *beside}
    assert files == {rel: file_entry(out / rel) for rel in files}


@pytest.fixture(scope="module")
def first_runs(inputs, tmp_path_factory) -> dict[str, Path]:
    """Each command run once into a new folder."""
    d = tmp_path_factory.mktemp("first")
    for command in COMMANDS:
        res = oncorwe([*args(command, inputs), "--out", d / command], inputs)
        assert res.exit_code == 0, res.output
        assert_manifest_is_the_folder(d / command, command)
    return {c: d / c for c in COMMANDS}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_file_at_out_is_refused_even_with_force_and_left_as_it_is(inputs, tmp_path, command):
    out = tmp_path / "results.csv"
    out.write_bytes(b"id,value\n1,2\n")
    for force in ([], ["--force"]):
        res = oncorwe([*args(command, inputs), "--out", out, *force], inputs)
        assert res.exit_code == 2, res.output
        assert f"--out {out} is a file (13 bytes)" in res.output
    assert out.read_bytes() == b"id,value\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_with_a_strangers_notes_is_refused(inputs, tmp_path, command):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_bytes(b"do not lose me\n")
    res = oncorwe([*args(command, inputs), "--out", tmp_path / "out"], inputs)
    assert res.exit_code == 2, res.output
    assert "notes.txt" in res.output and "--force writes beside them" in res.output
    assert tree(tmp_path / "out") == {"notes.txt": b"do not lose me\n"}


@pytest.mark.parametrize("command", COMMANDS)
def test_with_force_the_outputs_are_written_beside_a_strangers_notes(inputs, tmp_path, command):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_bytes(b"do not lose me\n")
    res = oncorwe([*args(command, inputs), "--out", tmp_path / "out", "--force"], inputs)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "notes.txt").read_bytes() == b"do not lose me\n"
    assert_manifest_is_the_folder(tmp_path / "out", command, beside={"notes.txt"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_rerun_onto_its_own_output_replaces_it_and_updates_the_manifest(
    inputs, first_runs, tmp_path, command
):
    out = tmp_path / "out"
    shutil.copytree(first_runs[command], out)
    before = (out / MANIFEST).read_text()
    res = oncorwe([*args(command, inputs, rerun=True), "--out", out], inputs)
    assert res.exit_code == 0, res.output
    assert (out / MANIFEST).read_text() != before
    assert_manifest_is_the_folder(out, command)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_with_a_manifest_of_another_command_is_refused(
    inputs, first_runs, tmp_path, command
):
    other = COMMANDS[(COMMANDS.index(command) + 1) % len(COMMANDS)]
    shutil.copytree(first_runs[other], tmp_path / "out")
    before = tree(tmp_path / "out")
    res = oncorwe([*args(command, inputs), "--out", tmp_path / "out"], inputs)
    assert res.exit_code == 2, res.output
    assert f"of `oncorwe {other}`" in res.output and f"`oncorwe {command}` wrote" in res.output
    assert tree(tmp_path / "out") == before


def test_a_killed_run_leaves_its_output_as_it_was_and_the_rerun_no_debris(inputs, tmp_path):
    out = tmp_path / "flat"
    assert oncorwe(["export-flat", "--patients", 50, "--out", out], inputs).exit_code == 0
    before = tree(out)
    killed = (  # SIGKILL once the outputs are written, before they move in
        "import os, signal, sys; from oncorwe.core import io; from oncorwe.cli import app; "
        "io.OutputFolder._move_in = lambda *a: os.kill(os.getpid(), signal.SIGKILL); "
        "sys.argv[0] = 'oncorwe'; app()"
    )
    cmd = [sys.executable, "-c", killed, "export-flat", "--patients", "60", "--out", str(out)]
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == -9
    assert tree(out) == before
    (debris,) = [p.name for p in tmp_path.iterdir() if p.name != "flat"]
    assert debris.startswith(".oncorwe-tmp.flat.")
    res = oncorwe(["export-flat", "--patients", 60, "--out", out], inputs)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat"]
    assert_manifest_is_the_folder(out, "export-flat")


# ---- property: export-flat (the fastest command) on generated folders ------------------

OUTPUT_NAMES = ["cohort.csv", "roles.yaml", "truth.json"]
OTHER_NAMES = ["notes.txt", "cohort.csv.orig", "old/cohort.csv", "trial.json"]


@st.composite
def folders(draw):
    """Files a user put into --out (some named as outputs), maybe over a previous run,
    maybe with another command's manifest."""
    return {
        "previous run": draw(st.booleans()),
        "files": {
            **draw(st.dictionaries(st.sampled_from(OTHER_NAMES), st.binary(max_size=8))),
            **draw(  # a user's file under an output's name, now and then
                st.dictionaries(st.sampled_from(OUTPUT_NAMES), st.binary(max_size=8), max_size=1)
                | st.just({})
            ),
        },
        "other manifest": draw(st.booleans()),
    }


@settings(
    max_examples=25,  # each example is one in-process export-flat of 50 patients
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(folder=folders(), force=st.booleans())
def test_no_file_export_flat_did_not_write_changes_or_disappears(
    inputs, tmp_path_factory, folder, force
):
    root = tmp_path_factory.mktemp("prop")
    out = root / "out"
    out.mkdir()
    if folder["previous run"]:
        assert oncorwe(["export-flat", "--patients", 50, "--out", out], inputs).exit_code == 0
    for rel, data in folder["files"].items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    if folder["other manifest"]:
        record = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).exists() else {}
        commands = record.get("commands", {})
        commands["trial-sim"] = {"files": {}}
        (out / MANIFEST).write_text(json.dumps({"format": 1, "commands": commands}))
    before = tree(out)
    own = (
        json.loads(before[MANIFEST])["commands"].get("export-flat", {})
        if MANIFEST in before
        else {}
    )
    mine = {r for r, e in own.get("files", {}).items() if r in before and file_entry(out / r) == e}
    res = oncorwe(
        ["export-flat", "--patients", 50, "--seed", 3, "--out", out, *(["--force"] * force)],
        inputs,
    )
    assert res.exit_code in (0, 2), res.output
    event(f"exit {res.exit_code}" + (" beside others" if before.keys() - mine - {MANIFEST} else ""))
    after = tree(out)
    if res.exit_code == 2:
        assert after == before and str(out) in res.output
    for rel, data in before.items():
        if rel not in mine and rel != MANIFEST:
            assert after[rel] == data, rel
    assert sorted(p.name for p in root.iterdir()) == ["out"]
    assert not [n for n in os.listdir(out) if n.startswith(".oncorwe-tmp")]
