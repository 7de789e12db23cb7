"""Benchmark loaders: every format becomes a list of :class:`sqlcoach.types.Example`.

``load_examples(kind, path, split)`` dispatches through :data:`LOADERS`;
``load_examples_with_report`` also returns the per-record problems (file, line, message).
"""

from sqlcoach.data.bird import load_bird
from sqlcoach.data.create_context import load_create_context
from sqlcoach.data.jsonl import LoadReport, Problem, load_jsonl
from sqlcoach.data.registry import LOADERS, load_examples, load_examples_with_report
from sqlcoach.data.sparc_cosql import load_chase, load_cosql, load_sparc
from sqlcoach.data.spider import load_spider, read_gold_file, split_interactions
from sqlcoach.data.wikisql import load_wikisql

__all__ = [
    "LOADERS",
    "LoadReport",
    "Problem",
    "load_bird",
    "load_chase",
    "load_cosql",
    "load_create_context",
    "load_examples",
    "load_examples_with_report",
    "load_jsonl",
    "load_sparc",
    "load_spider",
    "load_wikisql",
    "read_gold_file",
    "split_interactions",
]
