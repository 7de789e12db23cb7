"""`sqlcoach data`: inspect benchmark files and build training files from them.

    sqlcoach data stats --kind spider --path DATA/spider --split dev
    sqlcoach data show  --kind spider --path DATA/spider --split dev --index 0 \\
        --template omnisql --schema-style ddl [--no-values] [--budget-tokens N] [--completion]
    sqlcoach data build --kind spider --path DATA/spider --split train --format chat \\
        --template omnisql --schema-style ddl --out train.jsonl [--no-values] [--budget-tokens N] \\
        [--limit N] [--tokenizer PATH]
    sqlcoach data build --kind spider --path DATA/spider --split dev --format dbgpt --out dev.json
    sqlcoach data build --kind spider --path DATA/spider --split train --format openai --out ft.jsonl

Kinds: spider, bird, sparc, cosql, chase, wikisql, create_context, jsonl (docs/data.md).
Formats: chat, rl, dbgpt, llamafactory, openai. Each format has its own defaults for the render
options left unset (``data.export.format_defaults``): ``dbgpt`` alone gives DB-GPT-Hub's own
records, ``openai`` sqlcoach's training prompt. Imports nothing heavy (a tokenizer only with
--tokenizer).
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from sqlcoach.errors import DataError, SqlcoachError

_KINDS = ("spider", "bird", "sparc", "cosql", "chase", "wikisql", "create_context", "jsonl")


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", required=True, choices=_KINDS, help="dataset format")
    p.add_argument("--path", required=True, help="dataset folder or file")
    p.add_argument("--split", default=None, help="split name (default: the loader's, usually dev)")
    p.add_argument("--db-dir", dest="db_dir", help="database folder (<db_id>/<db_id>.sqlite), if not the default")
    p.add_argument("--tables", help="tables.json, if not the default")
    p.add_argument("--cache-dir", dest="cache_dir", help="where WikiSQL / create_context databases are materialised")


# Spelled out rather than imported so that building the CLI parser stays cheap (every verb,
# `evaluate` included, pays for it); tests/unit/test_cli_choices.py keeps them equal to
# prompts.templates.TEMPLATES and schema.serialize.STYLES.
TEMPLATE_CHOICES = ("sql_terminal", "omnisql", "reasoning", "reasoning_tags", "minimal", "anonymized",
                    "anonymized_numbers")
STYLE_CHOICES = ("ddl", "nl", "compact")
#: data.export.FORMATS and DBGPT_HUB, spelled out for the same reason (the test checks them too)
FORMAT_CHOICES = ("chat", "rl", "dbgpt", "llamafactory", "openai")
DBGPT_HUB_TEMPLATE = "dbgpt_hub"


def _add_render(p: argparse.ArgumentParser, *, build: bool = False) -> None:
    # None: the format's default (data.export.format_defaults), filled in by _render_settings
    p.add_argument("--template", default=None,
                   choices=TEMPLATE_CHOICES + ((DBGPT_HUB_TEMPLATE,) if build else ()),
                   help="prompt template (default: the format's; dbgpt_hub = DB-GPT-Hub's own preamble, "
                        "dbgpt/llamafactory only)" if build else "prompt template (default: omnisql)")
    p.add_argument("--schema-style", dest="schema_style", default=None, choices=STYLE_CHOICES,
                   help="schema text style (default: the format's; ddl for chat)")
    p.add_argument("--values", action=argparse.BooleanOptionalAction, default=None,
                   help="add database values that the question mentions (default: on, off for dbgpt)")
    p.add_argument("--value-retrieval", dest="value_retrieval", type=int, default=None,
                   help="how many such values at most (default: the format's, 10 for chat)")
    p.add_argument("--sample-values", dest="sample_values", type=int, default=None,
                   help="example values per column read from the database (default: 3, 0 for dbgpt)")
    p.add_argument("--schema-source", dest="schema_source", default=None, choices=("database", "tables"),
                   help="where schemas come from first: the SQLite file or tables.json (default: database; "
                        "tables for dbgpt, as DB-GPT-Hub)")
    p.add_argument("--budget-tokens", dest="budget_tokens", type=int, default=None,
                   help="shrink the schema text to at most N tokens (documented order, docs/data.md)")
    p.add_argument("--tokenizer", default=None,
                   help="local tokenizer path: count budget tokens and apply its chat template")
    p.add_argument("--history", dest="turn_history", default="questions", choices=["questions", "gold"],
                   help="multi-turn data: show the earlier questions only (default), or also their gold SQL "
                        "(teacher forcing in a training file; an oracle in a prompt to score)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="dataset statistics, rendered prompts, training-file export",
                       description=__doc__.split("\n\n")[0])
    dsub = p.add_subparsers(dest="data_verb", metavar="ACTION")
    dsub.required = True

    st = dsub.add_parser("stats", help="count examples, databases, hardness/difficulty, problems")
    _add_source(st)
    st.add_argument("--show-problems", dest="show_problems", type=int, default=10,
                    help="print at most N problems (default 10)")
    st.set_defaults(func=run, data_action="stats")

    sh = dsub.add_parser("show", help="print one example's rendered prompt")
    _add_source(sh)
    _add_render(sh)
    sh.add_argument("--index", type=int, default=0, help="position in the loaded split")
    sh.add_argument("--completion", action="store_true", help="also print the target completion")
    sh.set_defaults(func=run, data_action="show")

    bd = dsub.add_parser("build", help="write a training file (chat, rl, dbgpt, llamafactory, openai)")
    _add_source(bd)
    _add_render(bd, build=True)
    bd.add_argument("--format", dest="fmt", default="chat", choices=FORMAT_CHOICES)
    bd.add_argument("--out", required=True, help="output file (.jsonl for chat/rl/openai, .json otherwise)")
    bd.add_argument("--limit", type=int, default=None, help="export only the first N examples")
    bd.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    bd.set_defaults(func=run, data_action="build")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action (stats, show or build); returns the exit status."""
    return int(ACTIONS[args.data_action](args) or 0)


def _load(args: argparse.Namespace):
    from sqlcoach.data.registry import LOADERS, load_examples_with_report

    kw: dict[str, Any] = {}
    params = inspect.signature(LOADERS[args.kind]).parameters
    for opt in ("db_dir", "tables", "cache_dir"):
        value = getattr(args, opt, None)
        if value is None:
            continue
        if opt not in params:
            raise SqlcoachError(f"--{opt.replace('_', '-')} does not apply to --kind {args.kind}")
        kw[opt] = value
    return load_examples_with_report(args.kind, args.path, args.split, **kw)


def _render_settings(args: argparse.Namespace, fmt: str) -> None:
    """Fill the render options left unset with format ``fmt``'s defaults (in place); a bad number
    is a one-line error."""
    from sqlcoach.data.export import format_defaults

    d = format_defaults(fmt)
    if args.template is None:
        args.template = d.template
    if args.schema_style is None:
        args.schema_style = d.schema_style
    if args.values is None:
        args.values = d.value_retrieval > 0
    if args.value_retrieval is None:
        args.value_retrieval = d.value_retrieval or 10  # --values on a format without values: 10
    if args.sample_values is None:
        args.sample_values = d.sample_values
    if args.schema_source is None:
        args.schema_source = d.schema_source
    if args.value_retrieval < 0 or args.sample_values < 0:
        raise SqlcoachError("--value-retrieval and --sample-values must be >= 0")
    if not args.values:
        args.value_retrieval = 0


def _schema_source(args: argparse.Namespace):
    from sqlcoach.data.export import SchemaSource
    from sqlcoach.data.spider import read_tables_json

    tables_path = Path(args.tables) if args.tables else None
    if tables_path is None:
        base = Path(args.path)
        base = base.parent if base.is_file() else base
        for name in ("tables.json", "dev_tables.json", "train_tables.json"):
            if (base / name).is_file():
                tables_path = base / name
                break
    return SchemaSource(read_tables_json(tables_path) if tables_path else {}, sample_values=args.sample_values,
                        prefer=args.schema_source)


def _tokenizer(args: argparse.Namespace) -> tuple[Any, Callable[[str], int] | None]:
    if not args.tokenizer:
        return None, None
    from transformers import AutoTokenizer  # heavy: only when asked for

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    return tok, lambda s: len(tok(s, add_special_tokens=False).input_ids)


def _print_counts(label: str, counter: Counter, order: tuple[str, ...] = ()) -> None:
    if not counter:
        return
    keys = [k for k in order if k in counter] + sorted(k for k in counter if k not in order)
    print(f"{label}: " + ", ".join(f"{k} {counter[k]}" for k in keys))


def run_stats(args: argparse.Namespace) -> int:
    from sqlcoach.types import BIRD_DIFFICULTIES, HARDNESS_LEVELS

    examples, problems = _load(args)
    referenced = {e.db_id for e in examples}
    present = {e.db_id for e in examples if e.db_path and Path(e.db_path).exists()}
    print(f"kind: {args.kind}  path: {args.path}  split: {args.split or '(default)'}")
    print(f"examples: {len(examples)}")
    print(f"databases referenced: {len(referenced)}")
    print(f"databases present: {len(present)}")
    runnable = sum(1 for e in examples if e.db_id in present)
    print(f"examples with a database: {runnable}")
    print(f"examples with gold SQL: {sum(1 for e in examples if e.gold_sql)}")
    if any(e.evidence for e in examples):
        print(f"examples with evidence: {sum(1 for e in examples if e.evidence)}")
    if any(e.turns for e in examples):
        print(f"multi-turn examples (with earlier turns): {sum(1 for e in examples if e.turns)}")
    _print_counts("hardness", Counter(e.hardness for e in examples if e.hardness), HARDNESS_LEVELS)
    _print_counts("difficulty", Counter(e.difficulty for e in examples if e.difficulty), BIRD_DIFFICULTIES)
    print(f"problems: {len(problems)}")
    for pr in problems[: max(0, args.show_problems)]:
        print(f"  {pr}")
    if len(problems) > args.show_problems:
        print(f"  ... {len(problems) - args.show_problems} more")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from sqlcoach.data.export import schema_text
    from sqlcoach.prompts.chat import to_text
    from sqlcoach.prompts.templates import render_completion, render_prompt

    examples, _problems = _load(args)
    if not examples:
        raise DataError("no examples loaded", args.path)
    if not -len(examples) <= args.index < len(examples):
        raise SqlcoachError(f"--index {args.index} out of range: {len(examples)} examples")
    ex = examples[args.index]
    _render_settings(args, "chat")
    tok, count = _tokenizer(args)
    text = schema_text(ex, args.schema_style, source=_schema_source(args), values=args.values,
                       budget_tokens=args.budget_tokens, count_tokens=count, value_retrieval=args.value_retrieval)
    if args.turn_history == "questions" and any(t.sql for t in ex.turns):
        from dataclasses import replace

        from sqlcoach.types import Turn

        ex = replace(ex, turns=tuple(Turn(t.question, None) for t in ex.turns))
    messages = render_prompt(ex, text, args.template)
    print(f"# {ex.id}  db_id={ex.db_id}  hardness={ex.hardness}  difficulty={ex.difficulty}")
    print(to_text(messages, tok), end="")
    if args.completion and ex.gold_sql:
        print("\n# completion")
        print(render_completion(ex.gold_sql, args.template, example=ex))
    else:
        print()
    return 0


def run_build(args: argparse.Namespace) -> int:
    from sqlcoach.data.export import export_examples

    _render_settings(args, args.fmt)
    examples, problems = _load(args)
    _tok, count = _tokenizer(args)
    try:
        summary = export_examples(
            examples, args.out, args.fmt, template=args.template, schema_style=args.schema_style,
            values=args.values, budget_tokens=args.budget_tokens, count_tokens=count,
            source=_schema_source(args), limit=args.limit, progress=args.progress, problems=problems,
            turn_history=args.turn_history, value_retrieval=args.value_retrieval,
        )
    except ValueError as exc:
        raise SqlcoachError(str(exc)) from exc
    print(f"wrote {summary.records} {args.fmt} records to {summary.out}")
    if summary.tokens is not None:
        print(f"training tokens: {summary.tokens.line()}")
    for f in summary.extra_files:
        print(f"wrote {f}")
    print(f"problems: {len(summary.problems)}", file=sys.stderr if summary.problems else sys.stdout)
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "stats": run_stats,
    "show": run_show,
    "build": run_build,
}
