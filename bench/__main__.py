"""Benchmark tools.

python -m bench gen N DIR [--seed S]
python -m bench load --url URL [--clients 50] [--seconds 60] [--pid PID]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from bench.gen import generate
from bench.load import run_load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("gen", help="write a deterministic corpus of N article files")
    gen.add_argument("n", type=int)
    gen.add_argument("directory", type=Path)
    gen.add_argument("--seed", type=int, default=1)
    load = commands.add_parser("load", help="sustained mixed-query load on a running server")
    load.add_argument("--url", default="http://127.0.0.1:8000")
    load.add_argument("--clients", type=int, default=50)
    load.add_argument("--seconds", type=float, default=60)
    load.add_argument("--pid", type=int, help="the server's pid, to sample its memory")
    args = parser.parse_args(argv)

    if args.command == "gen":
        started = time.perf_counter()
        paths = generate(args.n, args.directory, args.seed)
        print(
            f"wrote {len(paths):,} files under {args.directory} in "
            f"{time.perf_counter() - started:.1f}s",
            file=sys.stderr,
        )
        return 0
    result = asyncio.run(run_load(args.url, args.clients, args.seconds, args.pid))
    print(json.dumps(result.summary()))
    for error in result.errors[:10]:
        print("error:", error, file=sys.stderr)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
