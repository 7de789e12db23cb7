"""Compare training methods side by side: ``run.run_compare`` (the comparison, its resume rule and
report), ``jobs`` (the child processes that train and evaluate), ``report`` (Markdown and HTML).
The config lives in ``sqlcoach.config.compare``."""

from __future__ import annotations

from sqlcoach.config.compare import BUDGETS, METHOD_KINDS, CompareConfig, MethodSpec, load_compare_config
from sqlcoach.pipelines.compare.run import method_hash, resolve_start, run_compare

__all__ = ["BUDGETS", "METHOD_KINDS", "CompareConfig", "MethodSpec", "load_compare_config", "method_hash",
           "resolve_start", "run_compare"]
