"""``python -m bench gen N DIR [--seed S]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.gen import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("gen", help="write a deterministic corpus of N article files")
    gen.add_argument("n", type=int)
    gen.add_argument("directory", type=Path)
    gen.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paths = generate(args.n, args.directory, args.seed)
    print(
        f"wrote {len(paths):,} files under {args.directory} in "
        f"{time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
