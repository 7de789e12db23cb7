"""`sqlcoach ask --db FILE.sqlite "question"`: ask a model about your own database.

    sqlcoach ask --db shop.sqlite "How many orders were placed in May?" --model runs/sft/final
    sqlcoach ask --db shop.sqlite --questions questions.txt --url http://127.0.0.1:8000 --json

Prints the SQL and its result as a table (``--json``: one JSON object per question, a list for
several). With ``--model`` the model is loaded here; with ``--url`` any OpenAI-compatible server
(``sqlcoach serve``, vLLM's) writes the SQL through /v1/chat/completions, prompted with the
recipe that server reports (``sqlcoach serve`` does) or the flags. Either way the prompt shows the
database's schema and the SQL runs HERE in sqlcoach's sandbox (read-only, deadline, row cap).
``--agent`` (with ``--model``): the model may run queries and read their results before it answers
(docs/agent.md); each turn is printed before the answer. ``--n N --select RULE`` samples N answers
(with ``--agent``, N trajectories) and chooses one as ``predict --select`` does (``--verifier DIR``
for the verifier rules); the chosen candidate's votes and score are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.execution.select import DEFAULT_SELECTOR, LEARNED_SELECTORS, SELECTORS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="ask a model a question about a SQLite database; prints the SQL and its result",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("question", nargs="?", default=None, help="the question (or --questions FILE)")
    p.add_argument("--db", required=True, help="the SQLite database file to ask about")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", default=None, help="model folder (or .gguf file) to load here")
    src.add_argument("--url", default=None, help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000")
    p.add_argument("--questions", default=None, help="file with one question per line (# lines and blanks skipped)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--api-key", default=os.environ.get("SQLCOACH_API_KEY"),
                   help="API key for --url (default: $SQLCOACH_API_KEY)")
    p.add_argument("--served-model", default=None, help="model name at --url (default: the first it lists)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="completion tokens (default: 256 with --model; the server's choice with --url, which fits its context)")
    p.add_argument("--batch-size", type=int, default=8, help="questions generated together (--model)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds the SQL may run")
    p.add_argument("--max-rows", type=int, default=1000, help="rows the SQL may return (more is an error)")
    p.add_argument("--show-rows", type=int, default=50, help="rows printed per table")
    p.add_argument("--template", default=None, help="prompt template (default: the model's recipe)")
    p.add_argument("--schema-style", default=None, help="schema style (default: the model's recipe)")
    p.add_argument("--schema-samples", type=int, default=None, help="sample values per column (default: the recipe)")
    p.add_argument("--agent", action="store_true",
                   help="--model: the model may run <sql>...</sql> queries and read their results before its "
                   "<solution>...</solution>; each turn is printed (docs/agent.md)")
    p.add_argument("--max-turns", type=int, default=5, help="--agent: model turns per question")
    p.add_argument("--untagged", default="error", choices=["error", "solution"],
                   help="--agent: a turn without tags is an error observation (default), or the final answer")
    p.add_argument("--keep-action", dest="keep", action="store_true",
                   help="--agent: an empty <solution></solution> answers with the last query that ran without an error "
                   "(a model trained with it: agent rows --keep-action)")
    p.add_argument("--protocol", default="tags", choices=["tags", "tools", "review"],
                   help="--agent: <sql>/<solution> tags (default) or native run_sql tool calls through the model's chat "
                   "template (refused when the template does not render them), or review (a plain answer, its result, "
                   "then keep or revise)")
    p.add_argument("--n", type=int, default=1,
                   help="sample N answers (with --agent: N trajectories) per question and choose one by --select")
    p.add_argument("--select", default=None, choices=sorted([*SELECTORS, *LEARNED_SELECTORS]),
                   help=f"with --n >= 2: how the answer is chosen (default {DEFAULT_SELECTOR}); first, vote, "
                   "vote-nonempty, or verifier / vote+verifier with --verifier (as predict --select)")
    p.add_argument("--verifier", default=None,
                   help="with --select verifier or vote+verifier: the folder `sqlcoach train verifier` wrote (its final/)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: 0, greedy, for one answer; 0.8 with --n >= 2)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (--n >= 2)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def read_questions(args: argparse.Namespace) -> list[str]:
    questions = [args.question] if args.question else []
    if args.questions:
        path = Path(args.questions)
        if not path.is_file():
            raise ConfigError(f"--questions {path}: file not found")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                questions.append(line.strip())
    if not questions:
        raise ConfigError("give a question, or --questions FILE")
    return questions


def selection_line(a) -> str:
    """How an answer chosen among candidates was chosen: the rule, the pick, each candidate's votes
    (and verifier score)."""
    scores = f", score {a.score:.3f}" if a.score is not None else ""
    cands = "; ".join(f"#{i} votes {c['votes']}" + (f" score {c['score']:.3f}" if c["score"] is not None else "")
                      + (f" {c['error']}" if c["error"] else "") for i, c in enumerate(a.candidates or []))
    return f"chosen by {a.select}: candidate #{a.chosen} of {len(a.candidates or [])}{scores} ({cands})"


def run(args: argparse.Namespace) -> int:
    if (args.max_new_tokens is not None and args.max_new_tokens < 1) or args.batch_size < 1 or args.max_rows < 1 or args.timeout <= 0:
        raise ConfigError("--max-new-tokens, --batch-size, --max-rows must be >= 1 and --timeout > 0")
    db = Path(args.db)
    if not db.is_file():
        raise DataError("database file not found", str(db))
    questions = read_questions(args)
    if args.agent and args.url:
        raise ConfigError("--agent runs the model here: use --model, not --url")
    if args.max_turns < 1:
        raise ConfigError("--max-turns must be >= 1")
    from sqlcoach.generate.verifier_select import build_selector, check_selection_options

    check_selection_options(args.n, args.select, args.verifier)
    if args.temperature is None:
        args.temperature = 0.8 if args.n > 1 else 0.0
    if args.temperature < 0 or (args.n > 1 and args.temperature == 0):
        raise ConfigError("--temperature must be >= 0, and > 0 with --n >= 2 (n greedy answers are one answer)")
    # a verifier folder that is not one fails here, before the model loads
    selector = build_selector(args.select or DEFAULT_SELECTOR, args.verifier, device=args.device) if args.n > 1 else None
    from sqlcoach.serve.ask import ask_local, ask_url
    from sqlcoach.serve.text2sql import SqlRunner, format_table

    runner = SqlRunner(timeout=args.timeout, max_rows=args.max_rows, workers=1)
    try:
        if args.agent:
            from sqlcoach.serve.ask_agent import ask_local_agent

            answers = ask_local_agent(args, str(db.resolve()), questions, runner, selector)
        elif args.url:
            answers = ask_url(args, str(db.resolve()), questions, runner, selector)
        else:
            answers = ask_local(args, str(db.resolve()), questions, runner, selector)
    finally:
        runner.close()
    if args.json:
        docs = [a.as_json() for a in answers]
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2, ensure_ascii=False))
        return 0
    for i, a in enumerate(answers):
        if i:
            print()
        if args.agent:  # the trajectory's turns first, then its answer like any other
            from sqlcoach.serve.ask_agent import print_turns

            print(f"Q: {a.answer.question}")
            print_turns(a)
            a = a.answer
        else:
            print(f"Q: {a.question}")
        print(f"SQL: {a.sql or '(none)'}")
        if a.select is not None:
            print(selection_line(a))
        if a.error:
            print(f"error: {a.error}")
        else:
            print(format_table(a.columns, a.rows, max_rows=args.show_rows))
        print(f"({a.seconds:.2f} s: generation {a.generation_seconds:.2f} s, execution {a.execution_seconds:.3f} s)")
    sys.stdout.flush()
    return 0

