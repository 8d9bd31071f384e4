"""Did this run reproduce the committed results? Compares each stage's outputs in the
working tree's ``dvc.lock`` (just rewritten by ``dvc repro``) with the committed one.

Run after ``dvc repro`` on a fresh clone (``make check-repro`` does both): every data and
metrics file of every stage must have the committed hash, byte for byte; the report
stage's pages are left out, as they carry their own run date by design. Exit 1 with one
line per differing output, 0 when all agree.

    python3 tools/check_reproduced.py [REV]   # REV: the commit to compare with (HEAD)
"""

from __future__ import annotations

import subprocess
import sys

import yaml

#: Stages whose outputs are not expected to be byte-identical (the rendered reports
#: record when they were made).
TIMESTAMPED = {"report"}


def outputs(lock: dict) -> dict[str, str]:
    """``{path: md5}`` of every output of every stage but :data:`TIMESTAMPED` in a lock."""
    found = {}
    for name, stage in lock.get("stages", {}).items():
        if name in TIMESTAMPED:
            continue
        for out in stage.get("outs", []):
            found[out["path"]] = out.get("md5", "")
    return found


def differences(then: dict[str, str], now: dict[str, str]) -> list[str]:
    """One line per output whose hash differs between two :func:`outputs` (or is absent)."""
    return [
        f"{path}: committed {then.get(path, '(absent)')}, this run {now.get(path, '(absent)')}"
        for path in sorted(then.keys() | now.keys())
        if then.get(path) != now.get(path)
    ]


def main(argv: list[str]) -> int:
    """Compare the working tree's dvc.lock outputs with those of ``argv[0]`` (HEAD)."""
    rev = argv[0] if argv else "HEAD"
    committed = subprocess.run(
        ["git", "show", f"{rev}:dvc.lock"], check=True, capture_output=True, text=True
    ).stdout
    with open("dvc.lock") as f:
        now = outputs(yaml.safe_load(f))
    then = outputs(yaml.safe_load(committed))
    differ = differences(then, now)
    for line in differ:
        print(line)
    print(f"{len(then) - len(differ)} of {len(then)} stage outputs reproduced the commit {rev}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
