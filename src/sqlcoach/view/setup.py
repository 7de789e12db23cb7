"""Folders given -> a catalog -> a running ``sqlcoach view`` (uvicorn), as ``serve.setup`` does for a model."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from sqlcoach.errors import ConfigError
from sqlcoach.runtime.web import log_to_stderr, run_until_stopped, warn_if_open

if TYPE_CHECKING:
    from sqlcoach.view.app import Viewer


@dataclass
class ViewOptions:
    """Everything ``sqlcoach view`` takes (see ``commands/view.py`` for the flags' help)."""

    roots: list[str] = field(default_factory=list)
    data: str | None = None
    host: str = "127.0.0.1"
    port: int = 8001
    api_key: str | None = None
    sql_timeout: float = 5.0
    max_rows: int = 1000
    sql_workers: int = 1

    def check(self) -> None:
        if not self.roots:
            raise ConfigError("name at least one run folder (or prediction file)")
        if not (0 < self.port < 65536):
            raise ConfigError(f"--port must be in 1..65535, got {self.port}")
        if self.sql_timeout <= 0 or self.max_rows < 1:
            raise ConfigError("--sql-timeout must be > 0 seconds and --max-rows >= 1")
        if self.sql_workers < 0:
            raise ConfigError("--sql-workers must be >= 0 (0 runs SQL in the server process)")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("--api-key must not be empty")


def open_viewer(opts: ViewOptions, log: Callable[[str], None] | None = None) -> Viewer:
    """Load the catalog of ``opts.roots`` (scoring what needs it; progress lines to ``log``,
    default stderr) and start the sandbox: a ``view.app.Viewer``."""
    from sqlcoach.execution.runner import SqlRunner
    from sqlcoach.view.app import Viewer
    from sqlcoach.view.runs import load_catalog

    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    # scoring at start-up is one batch: every CPU (in-process when --sql-workers is 0)
    scoring_workers = 0 if opts.sql_workers == 0 else (os.cpu_count() or 1)
    catalog = load_catalog(opts.roots, data=opts.data, workers=scoring_workers, log=say)
    runner = SqlRunner(timeout=opts.sql_timeout, max_rows=opts.max_rows, workers=opts.sql_workers)
    return Viewer(catalog, runner, api_key=opts.api_key)


def view_forever(opts: ViewOptions) -> int:
    """``sqlcoach view``: load, then run uvicorn until Ctrl-C; 0 on a clean stop."""
    from sqlcoach.view.app import build_app

    opts.check()
    warn_if_open(opts.host, opts.api_key, "the predictions and the databases of these runs")
    log_to_stderr()
    viewer = open_viewer(opts)
    cat = viewer.catalog
    for p in cat.problems:
        print(f"note: {p}", file=sys.stderr)
    bad = sum(len(f.bad_lines) for f in cat.pred_files)
    print(f"sqlcoach view: {len(cat.pred_files)} prediction files ({sum(len(f.rows) for f in cat.pred_files)} rows"
          + (f", {bad} malformed lines" if bad else "") + f"), {len(cat.trainings)} training runs, "
          f"{len(cat.reports)} reports on http://{opts.host}:{opts.port}" + ("  (API key required)" if opts.api_key else ""),
          file=sys.stderr, flush=True)
    return run_until_stopped(build_app(viewer), opts.host, opts.port, viewer.close)
