"""Benchmark tools.

python -m bench gen N DIR [--seed S]
python -m bench load --url URL [--clients 50] [--seconds 60] [--pid PID]
python -m bench hostile --url URL [--clients 8] [--attackers 6] [--seconds 20] [--pid PID]
                        [--attack NAME ...] [--shapes A,B] [--memory N] [--defer N]
                        [--count N] [--health-url URL]
python -m bench hostile --url URL --publish-into DIR [--sockets 5] [--subscriptions 100]
                        [--stories 5] [--distinct] [--clients 8] [--seconds 20] [--pid PID]
python -m bench run [--sizes 1000,10000,100000] [--engine wire|embedded] [--json FILE]
python -m bench cpu [--size 1000] [--seconds 3] [--rounds 3] [--clients 8] [--tracing]
                    [--tracing-sampler RATIO] [--get] [--json FILE]
python -m bench fleet [--engine wire|embedded] [--corpus DIR] [--requests 400] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from bench.fleet import add_arguments as add_fleet_arguments
from bench.gen import generate
from bench.hostile import CLASSES, ONE_AT_A_TIME
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
    hostile = commands.add_parser(
        "hostile", help="normal clients alone, then beside hostile ones: p50/p99 of both"
    )
    hostile.add_argument("--url", default="http://127.0.0.1:8000")
    hostile.add_argument("--clients", type=int, default=8, help="normal clients")
    hostile.add_argument("--attackers", type=int, default=6, help="hostile clients")
    hostile.add_argument("--seconds", type=float, default=20, help="length of each phase")
    hostile.add_argument("--pid", type=int, help="the server's pid, to sample its memory")
    hostile.add_argument(
        "--attack",
        action="append",
        choices=sorted({*CLASSES, *ONE_AT_A_TIME}),
        help="the attack (repeatable: each gets a quiet and an attacked phase) [default: mix]; "
        f"{', '.join(sorted(ONE_AT_A_TIME))} hold connections, beside new-connection probes",
    )
    hostile.add_argument("--count", type=int, default=100, help="connection attacks: attackers")
    hostile.add_argument("--health-url", help="connection attacks: where to probe liveness")
    hostile.add_argument(
        "--shapes",
        type=lambda s: s.split(","),
        help="mix: only these attacks (comma-separated names from bench/hostile.py ATTACKS)",
    )
    hostile.add_argument(
        "--memory",
        type=int,
        metavar="N",
        help="instead: the server's memory before and after N distinct documents (needs --pid)",
    )
    hostile.add_argument(
        "--defer",
        type=int,
        metavar="N",
        help="instead: server CPU and bytes of the @defer flood, N requests each way (needs --pid)",
    )
    add_subscription_attack(hostile)
    bench = commands.add_parser("run", help="every scenario beside its limit, at each size")
    bench.add_argument(
        "--sizes", default="1000,10000,100000", type=lambda s: [int(x) for x in s.split(",")]
    )
    bench.add_argument("--engine", choices=["wire", "embedded"], default="wire")
    bench.add_argument("--json", type=Path, dest="json_path")
    bench.add_argument("--reps", type=int, default=30, help="timed runs per query scenario")
    bench.add_argument("--clients", type=int, default=32, help="throughput clients")
    bench.add_argument("--seconds", type=float, default=10, help="throughput run length")
    bench.add_argument(
        "--cpu-seconds", type=float, default=3, help="length of each cpu scenario window"
    )
    bench.add_argument("--cpu-rounds", type=int, default=3, help="cpu scenario windows a side")
    bench.add_argument(
        "--fleet-requests",
        type=int,
        default=400,
        help="requests of each fleet measurement (serve --workers 2), at the smallest size; "
        "0 skips it",
    )
    cpu = commands.add_parser(
        "cpu", help="server CPU per request, store stubbed, beside a bare endpoint (alone)"
    )
    cpu.add_argument("--size", type=int, default=1000, help="the corpus the answers come from")
    cpu.add_argument("--engine", choices=["wire", "embedded"], default="embedded")
    cpu.add_argument("--seconds", type=float, default=3, help="length of each window")
    cpu.add_argument("--rounds", type=int, default=3, help="windows a side (the median is kept)")
    cpu.add_argument(
        "--clients", type=int, default=8, help="connections of the load, a request in flight each"
    )
    cpu.add_argument(
        "--tracing",
        action="store_true",
        help="also servers with OpenTelemetry tracing on, against their untraced twins",
    )
    cpu.add_argument(
        "--tracing-sampler",
        type=float,
        metavar="RATIO",
        help="also traced servers head-sampling root requests at RATIO (implies --tracing)",
    )
    cpu.add_argument(
        "--get",
        action="store_true",
        help="send the queries as GET requests (anonymous, publicly cacheable answers)",
    )
    cpu.add_argument("--json", type=Path, dest="json_path")
    add_fleet_arguments(
        commands.add_parser(
            "fleet", help="serve --workers 2: worker memory, shared APQ hits, budgets' cost"
        )
    )
    for command in (bench, cpu):
        command.add_argument(
            "--workdir",
            type=Path,
            default=Path("bench/.corpus"),
            help="where generated corpora are kept",
        )
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
    if args.command == "run":
        from bench.run import CpuOptions, run

        run(
            args.sizes,
            args.engine,
            args.workdir,
            args.reps,
            args.clients,
            args.seconds,
            args.json_path,
            CpuOptions(args.cpu_seconds, args.cpu_rounds),
            args.fleet_requests,
        )
        return 0
    if args.command == "fleet":
        from bench.fleet import run_fleet

        run_fleet(args)
        return 0
    if args.command == "cpu":
        from bench.run import CpuOptions, run_cpu

        options = CpuOptions(
            args.seconds,
            args.rounds,
            args.clients,
            tracing=args.tracing,
            tracing_sampler=args.tracing_sampler,
            get=args.get,
        )
        run_cpu(args.size, args.engine, args.workdir, options, args.json_path)
        return 0
    if args.command == "hostile" and args.publish_into is not None:
        print(json.dumps(subscription_hostile(args), indent=2))
        return 0
    if args.command == "hostile":
        from bench.hostile import defer_flood_cost, plan_flood_memory, run_attack, run_hostile

        if (args.memory or args.defer) and not args.pid:
            parser.error("--memory and --defer measure the server: give its --pid")
        if args.memory:
            found = asyncio.run(plan_flood_memory(args.url, args.pid, args.memory))
            print(json.dumps(found, indent=2))
        if args.defer:
            cost = asyncio.run(defer_flood_cost(args.url, args.pid, args.defer))
            print(json.dumps(cost, indent=2))
        if args.memory or args.defer:
            return 0
        for attack in args.attack or ["mix"]:
            summary: dict[str, object]
            if attack in ONE_AT_A_TIME:
                held = run_attack(
                    args.url,
                    attack,
                    args.count,
                    args.seconds,
                    args.clients,
                    args.health_url,
                    args.pid,
                )
                summary = asyncio.run(held).summary()
            else:
                worked = run_hostile(
                    args.url,
                    args.clients,
                    args.attackers,
                    args.seconds,
                    args.pid,
                    args.shapes,
                    attack,
                )
                summary = asyncio.run(worked).summary()
            print(json.dumps(summary, indent=2))
        return 0
    result = asyncio.run(run_load(args.url, args.clients, args.seconds, args.pid))
    print(json.dumps(result.summary()))
    for error in result.errors[:10]:
        print("error:", error, file=sys.stderr)
    return 1 if result.errors else 0


def add_subscription_attack(hostile: argparse.ArgumentParser) -> None:
    """``hostile``'s options for the subscription attack."""
    attack = hostile.add_argument_group(
        "subscription attack",
        "given --publish-into, the attack is one client's heavy subscriptions instead",
    )
    attack.add_argument(
        "--publish-into",
        type=Path,
        help="a folder the server's loader watches (serve --load DIR --watch): "
        "the stories are written there",
    )
    attack.add_argument("--sockets", type=int, default=5, help="the attacker's WebSockets")
    attack.add_argument("--subscriptions", type=int, default=100, help="over all its sockets")
    attack.add_argument("--stories", type=int, default=5, help="stories published to them")
    attack.add_argument(
        "--distinct", action="store_true", help="each subscription distinct (none shared)"
    )


def subscription_hostile(args: argparse.Namespace) -> dict[str, object]:
    from bench.hostile import SubscriptionAttack, run_subscription_hostile

    attack = SubscriptionAttack(
        args.publish_into, args.sockets, args.subscriptions, args.stories, args.distinct
    )
    result = asyncio.run(
        run_subscription_hostile(args.url, args.clients, args.seconds, attack, args.pid)
    )
    return result.summary()


if __name__ == "__main__":
    sys.exit(main())
