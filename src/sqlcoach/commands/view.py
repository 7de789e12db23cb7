"""`sqlcoach view DIR [DIR ...]`: browse the predictions of runs in a local web app.

    sqlcoach view runs/demo runs/compare-x [--data DIR] [--host 127.0.0.1] [--port 8001] [--api-key KEY]

DIR is a `sqlcoach demo` or `sqlcoach compare` output folder, any folder holding `predict`
outputs (JSONL) or `evaluate --per-example` files, or one such file. Every prediction is a row
(filter, search, sort, page); one question opens with both SQL formatted, both result tables run
now in the read-only sandbox, the EXPLAIN audit and the samples; two files of the same questions
compare side by side with McNemar's test; training summaries, curves and reports are listed.
See docs/view.md.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="browse the predictions of run folders in a local web app",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("roots", nargs="+", metavar="DIR",
                   help="run folder (demo, compare, predict outputs) or a prediction / per-example JSONL file")
    p.add_argument("--data", default=None,
                   help="Spider-layout folder (dev.json, database/) for prediction files with no world beside them")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every /api request")
    p.add_argument("--sql-timeout", type=float, default=5.0, help="seconds one query of an opened question may run")
    p.add_argument("--max-rows", type=int, default=1000, help="rows a query may return (more is an error)")
    p.add_argument("--sql-workers", type=int, default=1,
                   help="sandbox worker processes for opened questions (0: in the server process, scoring at start-up too)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from sqlcoach.errors import ConfigError
    from sqlcoach.view.setup import ViewOptions, view_forever

    if not all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn")):
        raise ConfigError("sqlcoach view needs FastAPI and uvicorn: pip install 'sqlcoach[serve]'")
    opts = ViewOptions(roots=list(args.roots), data=args.data, host=args.host, port=args.port, api_key=args.api_key,
                       sql_timeout=args.sql_timeout, max_rows=args.max_rows, sql_workers=args.sql_workers)
    return view_forever(opts)
