"""`sqlcoach world build OUT --seed N`: generate the offline demo world (see sqlcoach.data.world).

`sqlcoach world show OUT` prints the statistics of a world already built.

Writes Spider's layout into OUT (train.json, dev.json, tables.json, database/, *_gold.sql,
world.json) and prints the statistics table: databases and questions per split, and questions per
Spider hardness level as scored by sqlcoach.sql.hardness. An existing world in OUT is replaced
atomically; a non-empty folder that is not a world is refused unless --force.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "world",
        help="generate the offline demo world (small SQLite databases + template questions)",
        description=__doc__.split("\n\n")[0],
    )
    sub = parser.add_subparsers(dest="world_action", metavar="ACTION")
    sub.required = True
    build = sub.add_parser(
        "build",
        help="generate a world into OUT (deterministic in --seed)",
        description="Generate the demo world into OUT, in Spider's layout. The same seed gives "
        "byte-identical JSON and identical database contents; dev databases never appear in train.",
    )
    build.add_argument("out", metavar="OUT", help="output folder (replaced if it holds a world)")
    build.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    build.add_argument("--n-train", type=int, default=None, metavar="N",
                       help="training questions (default: 4000)")
    build.add_argument("--n-dev", type=int, default=None, metavar="N", help="dev questions (default: 600)")
    build.add_argument("--force", action="store_true",
                       help="replace OUT even if it is a non-empty folder that holds no world")
    build.add_argument("--quiet", action="store_true", help="no per-database progress lines")
    build.add_argument("--json", action="store_true", help="print the statistics as JSON instead of a table")
    build.set_defaults(func=run)
    show = sub.add_parser("show", help="print the statistics of the world in OUT (from OUT/world.json)")
    show.add_argument("out", metavar="OUT", help="a folder written by `sqlcoach world build`")
    show.add_argument("--json", action="store_true", help="print the statistics as JSON instead of a table")
    show.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.data.world import build_world, format_stats, read_world

    if args.world_action == "show":
        stats = read_world(args.out)
        print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
        return 0
    stats = build_world(args.out, seed=args.seed, n_train=args.n_train, n_dev=args.n_dev,
                        progress=not args.quiet, force=args.force)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(format_stats(stats))
        print(f"written to {args.out}")
    return 0
