"""`sqlcoach <verb>`: the command line.

Each verb lives in ``sqlcoach.commands.<module>`` with two functions: ``register(subparsers)``
adds its parser, ``run(args) -> int`` does the work. Command modules import nothing heavy at
module level: torch, transformers and TRL are imported inside ``run`` of the verbs that train or
generate, so that ``sqlcoach evaluate`` starts fast and works on a scoring-only install.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sqlcoach.errors import SqlcoachError

# verb -> module under sqlcoach.commands. Order is the order shown in --help.
VERBS: dict[str, str] = {
    "evaluate": "evaluate",
    "data": "data",
    "world": "world",
    "model": "model",
    "train": "train",
    "adapt": "adapt",
    "predict": "predict",
    "agent": "agent",
    "pairs": "pairs",
    "rm": "rm",
    "export": "export",
    "compare": "compare",
    "judge": "judge",
    "demo": "demo",
    "serve": "serve",
    "ask": "ask",
    "view": "view",
}


def build_parser(verbs: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``sqlcoach`` parser with every verb (``verbs``: only those, which imports only their
    command modules)."""
    parser = argparse.ArgumentParser(
        prog="sqlcoach",
        description="Train and evaluate language models that write SQL.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb, module in VERBS.items():
        if verbs is not None and verb not in verbs:
            continue
        try:
            mod = importlib.import_module(f"sqlcoach.commands.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sqlcoach.commands.{module}":
                raise
            continue  # verb not built yet in this checkout
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # A known verb first: register that verb alone. Building every verb's parser imports every
    # command module (configs, prompt and model helpers), ~30 ms of CPU that `sqlcoach evaluate`
    # would pay on every call; anything else (--help, a typo) gets the full parser and its message.
    parser = build_parser([argv[0]] if argv and argv[0] in VERBS else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SqlcoachError as exc:
        print(f"sqlcoach {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        # a path the user gave that is not there (or not readable): their input, not a bug
        print(f"sqlcoach {args.verb}: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
