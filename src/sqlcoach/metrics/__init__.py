"""Scores the field reports: EX (spider / bird modes, test-suite databases), EM, hardness, VES,
R-VES and Soft-F1, summarised by hardness and difficulty with error classes counted next to EX.

``from sqlcoach.metrics import evaluate_pairs`` etc.; the names are resolved on first use so that
importing one submodule (e.g. ``sqlcoach.metrics.bird``) does not load the whole scorer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ETYPES", "EvalReport", "evaluate_examples", "evaluate_files", "evaluate_pairs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sqlcoach.metrics import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module 'sqlcoach.metrics' has no attribute {name!r}")
