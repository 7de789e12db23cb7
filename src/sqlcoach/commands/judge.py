"""`sqlcoach judge`: an LLM rates each prediction 1-5 (SQL, reasoning, format, educational value).

    sqlcoach judge --pred pred.sql --gold dev_gold.sql --questions dev.json --db database/ \\
        [--table tables.json] --url http://127.0.0.1:8000/v1 --model NAME --out runs/judge \\
        [--template my_rubric.txt] [--limit 50] [--concurrency 4] [--max-rps R] [--resume]

Writes OUT/judge.jsonl (one record per output: the reply, the parsed scores, request errors,
token usage), OUT/summary.json, and prints per-dimension means, the share with overall >= 4,
the malformed-reply count and the confusion table of the judge's SQL score (>= 4) against EX
(computed by ``sqlcoach evaluate``'s scorer on the same files). The model output shown to the
judge is the ``raw`` text of PRED's ``.jsonl`` when it exists (what ``sqlcoach predict`` writes),
else the SQL line. The prompt is ``sqlcoach/generate/judge_prompt.txt``; ``--template`` replaces it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlcoach.errors import ConfigError, DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge", help="rate predictions with an LLM judge (OpenAI-compatible endpoint) and compare with EX",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--pred", required=True, help="predictions: one SQL per line (a sibling .jsonl's raw text is used)")
    p.add_argument("--gold", required=True, help="gold file: one 'SQL<TAB>db_id' per line, same order")
    p.add_argument("--questions", required=True,
                   help="the questions in gold order: Spider/BIRD JSON (dev.json), JSONL with 'question', or one per line")
    p.add_argument("--db", required=True, help="database folder: <db>/<db_id>/<db_id>.sqlite")
    p.add_argument("--table", default=None, help="tables.json (Spider): EM merges foreign-key columns")
    p.add_argument("--url", required=True, help="the judge's OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="the judge model's name at that endpoint")
    p.add_argument("--out", default="runs/judge", help="output folder (judge.jsonl, summary.json)")
    p.add_argument("--template", default=None, help="prompt template file ({db_id} {schema} {question} {gold_sql} {prediction})")
    p.add_argument("--limit", type=int, default=None, help="judge only the first N outputs")
    p.add_argument("--api-key-env", default=None, help="environment variable holding the API key (default OPENAI_API_KEY if set)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--max-rps", type=float, default=None, help="at most this many requests per second")
    p.add_argument("--request-timeout", type=float, default=120.0)
    p.add_argument("--max-retries", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=400, help="reply length limit for the judge")
    p.add_argument("--schema-style", default="compact", help="schema text shown to the judge (compact, ddl, nl)")
    p.add_argument("--resume", action="store_true", help="keep the replies already in OUT/judge.jsonl that match")
    p.set_defaults(func=run)


def _raw_outputs(pred: Path, n: int) -> list[str] | None:
    """The raw model texts from PRED's JSONL (by index), when it has one for every line."""
    jl = pred.with_suffix(".jsonl")
    if not jl.is_file():
        return None
    from sqlcoach.generate.predict import read_done

    done, _ = read_done(jl)
    if not all(i in done for i in range(n)):
        return None
    return [str(done[i].get("raw") or done[i]["sql"]) for i in range(n)]


def run(args: argparse.Namespace) -> int:
    from sqlcoach.commands.predict import api_key_from_env
    from sqlcoach.generate.judge import (JudgeItem, format_judgement, judge_run, load_template, read_questions,
                                         summarize_judgements)
    from sqlcoach.generate.openai_client import ChatClient
    from sqlcoach.metrics import evaluate_pairs
    from sqlcoach.metrics.files import read_gold, read_pred
    from sqlcoach.prompts.builder import PromptBuilder

    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be >= 1")
    if args.concurrency < 1:
        raise ConfigError("--concurrency must be >= 1")
    template = load_template(args.template)
    client = ChatClient(args.url, args.model, api_key=api_key_from_env(args.api_key_env), timeout=args.request_timeout,
                        max_retries=args.max_retries, max_rps=args.max_rps)
    gold, multi = read_gold(args.gold)
    if multi:
        raise DataError("multi-turn gold files are not supported by the judge", path=args.gold)
    preds, warnings = read_pred(args.pred, gold, multi)
    n = min(len(gold), args.limit or len(gold))
    given = sum(1 for _ in open(args.pred, encoding="utf-8", errors="replace")) if Path(args.pred).suffix != ".json" else n
    for w in warnings:
        if "count as empty predictions" not in w or given < n:  # a --limit within the file is not a short file
            print(f"warning: {w}", file=sys.stderr)
    gold, preds = gold[:n], preds[:n]
    questions = read_questions(args.questions, n)
    raw = _raw_outputs(Path(args.pred), n) or preds
    builder = PromptBuilder("sql_terminal", args.schema_style, 3)
    db = Path(args.db)
    items = []
    for i, (g, q, out) in enumerate(zip(gold, questions, raw)):
        ex = _Ex(g.db_id, db / g.db_id / f"{g.db_id}.sqlite")
        items.append(JudgeItem(i, g.db_id, q, g.sql, out, builder.lenient_schema_text(ex)))
    report = evaluate_pairs(preds, [(g.sql, g.db_id) for g in gold], db_dir=db, tables_path=args.table,
                            etype="exec", explain=False)
    ex_flags = [None if v.error == "gold_error" else bool(v.ex) for v in report.verdicts]
    out_dir = Path(args.out)
    records = judge_run(client, items, out_dir / "judge.jsonl", template=template, max_tokens=args.max_tokens,
                        concurrency=args.concurrency, resume=args.resume)
    summary = summarize_judgements(records, ex_flags)
    summary.update(judge={"url": client.base_url, "model": client.model,
                          "template": str(args.template or "sqlcoach/generate/judge_prompt.txt")},
                   ex=report.summary["all"]["ex"], ex_questions=report.summary["all"]["scored"])
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_judgement(summary))
    print(f"EX {summary['ex']:.4f} on {summary['ex_questions']} outputs" if summary["ex"] is not None else "EX -")
    print(f"wrote {out_dir / 'judge.jsonl'} and {out_dir / 'summary.json'}")
    return 0


class _Ex:
    """The two fields ``PromptBuilder.lenient_schema_text`` reads."""

    def __init__(self, db_id: str, db_path: Path):
        self.db_id = db_id
        self.db_path = str(db_path) if db_path.is_file() else None
