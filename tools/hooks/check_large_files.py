"""Refuse files over a size limit (5 MB unless ``--max-mb``): data belongs in DVC.

Usage: ``python3 tools/hooks/check_large_files.py [--max-mb N] FILE...``; exit status 1
names each file refused with its size. The pre-commit hook runs it on the files of a
commit.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_MAX_MB = 5.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB)
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    limit = int(args.max_mb * 1_000_000)
    big = [
        (f, os.path.getsize(f))
        for f in args.files
        if os.path.isfile(f) and not os.path.islink(f) and os.path.getsize(f) > limit
    ]
    for f, size in big:
        print(f"{f}: {size / 1_000_000:.1f} MB, over the {args.max_mb:g} MB limit")
    if big:
        print("Large files belong in DVC (`dvc add`, or a stage's outs), not in git.")
    return 1 if big else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
