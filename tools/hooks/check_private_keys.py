"""Refuse private keys: a file whose name ends in ``.key``, or any file that holds a PEM
private-key block (RSA, EC, DSA, OpenSSH, PKCS#8, encrypted, PGP).

Usage: ``python3 tools/hooks/check_private_keys.py FILE...``; exit status 1 names each
file refused. The pre-commit hook runs it on the files of a commit.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BLOCK = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
NAMES = (".key",)


def refusal(path: Path) -> str | None:
    """Why ``path`` may not be committed, or None."""
    if path.name.lower().endswith(NAMES):
        return f"{path}: a key file (*.key)"
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    m = BLOCK.search(data)
    if m:
        line = data.count(b"\n", 0, m.start()) + 1
        return f"{path}:{line}: a private key ({m.group().decode()})"
    return None


def main(argv: list[str]) -> int:
    found = [r for r in map(refusal, map(Path, argv)) if r]
    for r in found:
        print(r)
    if found:
        print(
            "A private key must never be committed: keep it outside the repository (or in "
            "an ignored path) and pass it through the environment; if one was committed "
            "before, rotate it."
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
