"""Examples -> training files: TRL chat JSONL, DB-GPT-Hub JSON, LLaMA-Factory alpaca, RL prompts.

Formats (``FORMATS``):

``chat``
    JSONL, TRL's conversational prompt/completion: ``{"prompt": [messages], "completion":
    [{"role": "assistant", "content": ...}], "id", "db_id", "db_path", "gold_sql", "hardness",
    "difficulty"}``.
``rl``
    JSONL, prompt only (what TRL's GRPOTrainer reads; the extra columns reach reward functions):
    ``{"prompt": [messages], "id", "db_id", "db_path", "gold_sql", "hardness", "difficulty"}``.
``dbgpt``
    JSON list in DB-GPT-Hub's layout: ``{"db_id", "instruction", "input", "output", "history"}``,
    ``history`` = ``[[earlier input, earlier SQL], ...]`` for multi-turn data, written as DB-GPT-Hub
    writes its files (``indent=4``, no final newline). With this format's defaults
    (``format_defaults("dbgpt")``: the ``dbgpt_hub`` prompt, ``nl`` schema from tables.json, no
    sample values, no value retrieval) a single-turn Spider split is byte for byte what dbgpt-hub
    0.3.1's ``ProcessSqlData`` writes for it (``tests/unit/data/test_dbgpt_hub_parity.py`` checks
    every Spider dev record against a fixture made from its output).
``llamafactory``
    Alpaca JSON list (``instruction``, ``input``, ``output``, ``history``, and ``system`` when the
    template has one) plus an entry in ``dataset_info.json`` beside it, named after the file stem.
``openai``
    JSONL, OpenAI's chat fine-tuning format: ``{"messages": [system (when the template has one),
    user, assistant]}``, the assistant message being the gold SQL in the template's answer format
    (the bare SQL for ``sql_terminal``, the default). The messages are ``PromptBuilder.sft_row``'s,
    i.e. the prompt sqlcoach trains its own models on and ``predict --backend openai`` sends, for
    the same settings (defaults: ``prompts.recipe.DEFAULTS``). Needs each example's database (the
    builder reads schemas from SQLite only); the token budget counts with ``approx_tokens`` as the
    builder always does. :func:`count_training_tokens` counts the file's tokens.

For ``dbgpt``/``llamafactory`` with the ``sql_terminal`` template, instruction and input are
sqlcoach's ``sql_terminal`` prompt in DB-GPT-Hub's two halves (schema / question), so that
instruction + input is exactly the prompt sqlcoach trains and predicts with; the ``dbgpt_hub``
template (``DBGPT_HUB``, for these two formats only) writes DB-GPT-Hub's own preamble instead,
byte for byte, stray quote line and all (what its released LoRA weights were trained on). With
other templates, instruction is the whole user message and input is empty. History turns go in
``history`` there (not in the message); ``chat``/``rl`` carry them inside the user message.

Multi-turn data (SParC, CoSQL) in DB-GPT-Hub's layout is not byte-identical to dbgpt-hub 0.3.1:
its ``decode_json_file`` appends every turn to one shared ``history`` list, so each turn's
record ends up with the whole interaction's history; sqlcoach writes each turn's earlier turns.

``chat`` records of agent trajectories (``sqlcoach agent rows``) also carry ``observation_spans``
(``OBSERVATION_SPANS``): ``[[start, end], ...]`` character offsets into the one assistant message
of the completion where the environment, not the model, wrote the text (an ``<observation>``, or a
tool result). ``train sft`` gives those tokens no loss (``check_observation_spans`` states the rule
a row must keep; ``read_training_file`` keeps the column, and the ``tools`` column of tool-protocol
rows).

``chat`` and ``rl`` records also carry ``prompt_settings`` (template, schema style, sample values,
value retrieval, token budget, turn history), so that ``sqlcoach train sft data_kind=export``
(``read_training_file``, which reads every format back) records in the trained model the
prompt it was trained on. Multi-turn history in ``chat``/``rl`` follows ``turn_history`` (default
``questions``: earlier questions only, as the prompt builder shows them).

Examples without gold SQL (every format needs it: SFT targets need the answer, ``rl`` rewards
compare with it) or without any schema source are reported as problems and skipped. Files are written atomically
(temporary file + rename); a ``<out>.problems.txt`` summary is written next to the output.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from sqlcoach.data.jsonl import LoadReport, Problem
from sqlcoach.errors import ConfigError, DataError
from sqlcoach.prompts.templates import (
    SQL_TERMINAL_INPUT,
    SQL_TERMINAL_INSTRUCTION,
    get_template,
    history_block,
    question_block,
    render_completion,
    render_prompt,
    shown_inputs,
)
from sqlcoach.schema.introspect import introspect, schema_from_tables_json
from sqlcoach.schema.serialize import approx_tokens, serialize
from sqlcoach.schema.values import retrieve_values
from sqlcoach.runtime.files import atomic_write
from sqlcoach.types import Example, Schema

FORMATS: tuple[str, ...] = ("chat", "rl", "dbgpt", "llamafactory", "openai")
#: the ``data_kind`` with which ``train sft`` reads a file written here (``read_training_file``)
EXPORT_KIND = "export"

#: DB-GPT-Hub's own prompt, for the alpaca formats only (not a training/prediction template:
#: sqlcoach's ``sql_terminal`` deliberately differs, see prompts/templates.py).
DBGPT_HUB = "dbgpt_hub"
#: dbgpt-hub 0.3.1's ``INSTRUCTION_PROMPT`` text, byte for byte: no space in "me.Below", a line
#: holding a single ``"`` (an unbalanced quote in its source) and ``##Instruction:``. Its input
#: half is the same ``###Input:`` block as ``SQL_TERMINAL_INPUT``.
DBGPT_HUB_INSTRUCTION = (
    "I want you to act as a SQL terminal in front of an example database, you need only to return "
    "the sql command to me.Below is an instruction that describes a task, Write a response that "
    "appropriately completes the request.\n\"\n##Instruction:\n{schema}\n"
)
_ALPACA = ("dbgpt", "llamafactory")
SCHEMA_SOURCES = ("database", "tables")


@dataclass(frozen=True)
class RenderDefaults:
    """What ``data build`` / :func:`export_examples` use for a format when not told otherwise."""

    template: str
    schema_style: str
    value_retrieval: int  # values the question mentions shown under the schema (0: none)
    sample_values: int  # example values per column read from the database
    schema_source: str  # "database" (the SQLite file, else tables.json) or "tables" (the reverse)


_DEFAULTS = RenderDefaults("omnisql", "ddl", 10, 3, "database")
_FORMAT_DEFAULTS: dict[str, RenderDefaults] = {
    # DB-GPT-Hub's own processing: its preamble, its prose from tables.json, nothing else
    "dbgpt": RenderDefaults(DBGPT_HUB, "nl", 0, 0, "tables"),
}


def format_defaults(fmt: str) -> RenderDefaults:
    """The render settings format ``fmt`` gets by default. ``dbgpt``: DB-GPT-Hub's own processing
    (byte-identical records for Spider); ``openai``: sqlcoach's own training prompt
    (``prompts.recipe.DEFAULTS``); the others: OmniSQL's prompt, DDL, 3 samples, 10 values."""
    if fmt == "openai":
        from sqlcoach.prompts.recipe import DEFAULTS

        return RenderDefaults(DEFAULTS["template"], DEFAULTS["schema_style"], DEFAULTS["value_retrieval"],
                              DEFAULTS["schema_sample_values"], "database")
    return _FORMAT_DEFAULTS.get(fmt, _DEFAULTS)


@dataclass
class SchemaSource:
    """Where schemas come from: the SQLite file when present, else a tables.json entry.

    ``tables`` maps db_id to a tables.json entry (Spider-style data without databases).
    """

    tables: dict[str, dict] = field(default_factory=dict)
    sample_values: int = 3
    prefer: str = "database"  # or "tables": the tables.json entry first (DB-GPT-Hub's source)

    def __post_init__(self) -> None:
        if self.prefer not in SCHEMA_SOURCES:
            raise ConfigError(f"unknown schema source {self.prefer!r} (known: {', '.join(SCHEMA_SOURCES)})")
        if self.sample_values < 0:
            raise ConfigError("sample values must be >= 0")

    def schema(self, example: Example) -> Schema:
        """The example's Schema from the preferred source, else the other one; DataError when
        neither a database nor a tables entry exists. A tables.json schema has no samples."""
        entry = self.tables.get(example.db_id)
        if self.prefer == "tables" and entry is not None:
            return schema_from_tables_json(entry)
        if example.db_path and Path(example.db_path).exists():
            return introspect(example.db_path, sample_values=self.sample_values)
        if entry is not None:
            return schema_from_tables_json(entry)
        raise DataError(f"no schema for db_id {example.db_id!r} (no database file, no tables.json entry)")


def schema_text(
    example: Example,
    style: str = "ddl",
    *,
    source: SchemaSource | None = None,
    values: bool = True,
    budget_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
    value_retrieval: int = 10,
) -> str:
    """The serialised schema shown to the model for ``example`` (up to ``value_retrieval`` values
    retrieved from its database when ``values`` and the database exists). DataError when no
    schema is available."""
    source = source or SchemaSource()
    schema = source.schema(example)
    vals = []
    if values and value_retrieval > 0 and example.db_path and Path(example.db_path).exists():
        vals = retrieve_values(example.db_path, example.question, k=value_retrieval)
    return serialize(
        schema, style, values=vals, question=example.question, budget_tokens=budget_tokens, count_tokens=count_tokens
    )


def _columns(ex: Example) -> dict[str, Any]:
    return {
        "id": ex.id,
        "db_id": ex.db_id,
        "db_path": ex.db_path,
        "gold_sql": ex.gold_sql,
        "hardness": ex.hardness,
        "difficulty": ex.difficulty,
    }


def _alpaca(ex: Example, schema: str, template: str) -> dict[str, Any]:
    if template == DBGPT_HUB:
        # DB-GPT-Hub's own text: question and SQL as the data file has them (it strips nothing);
        # evidence (BIRD), which its Spider processing never has, after the question as elsewhere
        question = question_block(ex) if ex.evidence and ex.evidence.strip() else ex.question
        return {"instruction": DBGPT_HUB_INSTRUCTION.format(schema=schema),
                "input": SQL_TERMINAL_INPUT.format(question=question),
                "output": ex.gold_sql or "",
                "history": [[SQL_TERMINAL_INPUT.format(question=turn.question), turn.sql or ""] for turn in ex.turns]}
    t = get_template(template)
    if template == "sql_terminal":
        instruction = SQL_TERMINAL_INSTRUCTION.format(schema=schema)
        inp = SQL_TERMINAL_INPUT.format(question=question_block(ex))
        history = [[SQL_TERMINAL_INPUT.format(question=turn.question), turn.sql or ""] for turn in ex.turns]
    else:
        shown, schema = shown_inputs(ex, schema, t)  # placeholders for an anonymizing template
        instruction = t.user(replace(shown, turns=()), schema)
        inp = ""
        history = [
            [t.user(replace(shown, question=turn.question, evidence=None, turns=()), schema),
             render_completion(orig.sql or "", template, example=ex)]
            for turn, orig in zip(shown.turns, ex.turns)
        ]
    rec = {"instruction": instruction, "input": inp, "output": render_completion(ex.gold_sql or "", template, example=ex), "history": history}
    if t.system:
        rec["system"] = t.system
    return rec


def build_record(ex: Example, fmt: str, schema: str, template: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """One output record of format ``fmt`` for ``ex`` with the given schema text (``settings``:
    the prompt settings ``chat``/``rl`` records carry; their ``turn_history`` decides whether the
    earlier turns' SQL is shown)."""
    settings = settings or {}
    shown = ex
    if settings.get("turn_history", "questions") == "questions" and any(t.sql for t in ex.turns):
        from sqlcoach.types import Turn

        shown = replace(ex, turns=tuple(Turn(t.question, None) for t in ex.turns))
    if fmt == "chat":
        return {
            "prompt": render_prompt(shown, schema, template),
            "completion": [{"role": "assistant", "content": render_completion(ex.gold_sql or "", template, example=ex)}],
            **_columns(ex), "prompt_settings": settings,
        }
    if fmt == "rl":
        return {"prompt": render_prompt(shown, schema, template), **_columns(ex), "prompt_settings": settings}
    if fmt == "dbgpt":
        rec = _alpaca(ex, schema, template)
        rec.pop("system", None)
        return {"db_id": ex.db_id, **rec}
    if fmt == "llamafactory":
        return _alpaca(ex, schema, template)
    if fmt == "openai":
        raise ConfigError("openai records come from the prompt builder (export_examples), not from a schema text")
    raise ConfigError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")


@dataclass
class ExportSummary:
    """What an export wrote."""

    out: str
    records: int
    problems: list[Problem]
    extra_files: list[str] = field(default_factory=list)
    tokens: TokenCount | None = None  # openai: the file's training tokens (one epoch)


def export_examples(
    examples: Iterable[Example],
    out: str | Path,
    fmt: str = "chat",
    *,
    template: str = "omnisql",
    schema_style: str = "ddl",
    values: bool = True,
    budget_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
    source: SchemaSource | None = None,
    limit: int | None = None,
    progress: bool = True,
    problems: list[Problem] | None = None,
    turn_history: str = "questions",
    value_retrieval: int | None = None,
) -> ExportSummary:
    """Write ``examples`` to ``out`` in format ``fmt`` (see module docstring) and return a summary.

    ``value_retrieval``: how many values the question mentions are shown under the schema (None:
    10 when ``values``; ``values=False`` means none). ``problems`` (e.g. from loading) are
    included in the problems summary. Per-example failures (no gold SQL, no schema; for
    ``openai`` also no database) are added to it and the example skipped. Raises ConfigError (a
    ValueError) for an unknown format or template, or the ``dbgpt_hub`` template with a format
    other than ``dbgpt``/``llamafactory``, before writing anything.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    if template == DBGPT_HUB:
        if fmt not in _ALPACA:
            raise ConfigError(f"template {DBGPT_HUB!r} is DB-GPT-Hub's alpaca prompt: only for formats "
                              f"{' and '.join(_ALPACA)}, not {fmt!r}")
    else:
        get_template(template)
    vr = (10 if value_retrieval is None else int(value_retrieval)) if values else 0
    if vr < 0:
        raise ConfigError("value_retrieval must be >= 0 (0 turns it off)")
    outp = Path(out)
    report = LoadReport(list(problems or []))
    source = source or SchemaSource()
    exs = list(examples)[: limit if limit is not None else None]
    records: list[dict[str, Any]] = []
    settings = {"template": template, "schema_style": schema_style, "schema_sample_values": source.sample_values,
                "value_retrieval": vr, "token_budget": budget_tokens or 0, "turn_history": turn_history}
    builder = None
    if fmt == "openai":  # sqlcoach's own training prompt: the builder's rows, not a second renderer
        from sqlcoach.prompts.builder import PromptBuilder

        builder = PromptBuilder.from_settings(settings)
    from tqdm import tqdm  # light; imported here so that `import sqlcoach.data` stays minimal

    for ex in tqdm(exs, desc=f"export {fmt}", disable=not progress or len(exs) < 200, file=sys.stderr):
        where = str(ex.meta.get("file", ex.id))
        line = ex.meta.get("line")
        if not ex.gold_sql:
            report.add(where, line, f"{ex.id}: no gold SQL, skipped")
            continue
        try:
            if builder is not None:
                row = builder.sft_row(ex)
                records.append({"messages": [*row["prompt"], *row["completion"]]})
                continue
            text = schema_text(ex, schema_style, source=source, values=values, budget_tokens=budget_tokens,
                               count_tokens=count_tokens, value_retrieval=vr)
        except DataError as exc:
            report.add(where, line, f"{ex.id}: {exc}")
            continue
        records.append(build_record(ex, fmt, text, template, settings))
    extra: list[str] = []
    if fmt in ("chat", "rl", "openai"):
        atomic_write(outp, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    elif fmt == "dbgpt":  # as DB-GPT-Hub writes its files (json.dump, indent=4, no final newline)
        atomic_write(outp, json.dumps(records, ensure_ascii=False, indent=4))
    else:
        atomic_write(outp, json.dumps(records, ensure_ascii=False, indent=1) + "\n")
    if fmt == "llamafactory":
        info_path = outp.parent / "dataset_info.json"
        info: dict[str, Any] = {}
        if info_path.is_file():
            try:
                info = json.loads(info_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DataError(f"existing dataset_info.json is not valid JSON: {exc.msg}", str(info_path)) from exc
        columns = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
        if template != DBGPT_HUB and get_template(template).system:
            columns["system"] = "system"
        info[outp.stem] = {"file_name": outp.name, "columns": columns}
        atomic_write(info_path, json.dumps(info, ensure_ascii=False, indent=2) + "\n")
        extra.append(str(info_path))
    summary_path = outp.with_name(outp.name + ".problems.txt")
    lines = [f"{len(records)} records written to {outp.name}; {len(report.problems)} problems"]
    lines += [str(p) for p in report.problems]
    atomic_write(summary_path, "\n".join(lines) + "\n")
    extra.append(str(summary_path))
    tokens = count_training_tokens(records) if fmt == "openai" else None
    return ExportSummary(str(outp), len(records), report.problems, extra, tokens)


@dataclass
class TokenCount:
    """The tokens of a chat fine-tuning file, as OpenAI bills one epoch of it."""

    tokens: int
    examples: int
    counter: str  # which tokenizer counted, or which approximation and why

    def line(self) -> str:
        return f"{self.tokens} tokens in {self.examples} examples (one epoch; counted by {self.counter})"


#: OpenAI's chat format overheads (its cookbook's ``num_tokens_from_messages``): per message, and
#: once per example for the reply's priming
TOKENS_PER_MESSAGE = 3
TOKENS_PER_EXAMPLE = 3


#: how the count is made without tiktoken: sqlcoach's own ``approx_tokens`` (a word or a
#: punctuation mark = one token); benchmarks/openai_tokens.py measures it against cl100k_base
APPROX_COUNTER = "an approximation, words + punctuation marks (schema.serialize.approx_tokens)"


def _openai_counter() -> tuple[Callable[[str], int], str]:
    try:
        import tiktoken  # optional: not a dependency of sqlcoach
    except ImportError:
        return approx_tokens, f"{APPROX_COUNTER}: tiktoken is not installed"
    try:
        enc = tiktoken.get_encoding("cl100k_base")  # GPT-3.5 / GPT-4's; downloads its table once
    except Exception as exc:  # no network for the first download: say so, count approximately
        return approx_tokens, f"{APPROX_COUNTER}: tiktoken's cl100k_base unavailable ({exc.__class__.__name__})"
    return (lambda text: len(enc.encode(text, disallowed_special=()))), "tiktoken cl100k_base (GPT-3.5's tokenizer)"


def count_training_tokens(records: Iterable[dict[str, Any]],
                          count: Callable[[str], int] | None = None, counter: str = "") -> TokenCount:
    """Tokens of ``openai`` records (``{"messages": [...]}``): per example 3 + per message 3 +
    the role's and the content's tokens (OpenAI's chat overheads). ``count`` defaults to tiktoken's
    cl100k_base when installed, else ``approx_tokens`` (``APPROX_COUNTER``); ``counter`` names it."""
    if count is None:
        count, counter = _openai_counter()
    total = n = 0
    for rec in records:
        n += 1
        total += TOKENS_PER_EXAMPLE
        for m in rec["messages"]:
            total += TOKENS_PER_MESSAGE + count(m["role"]) + count(m["content"])
    return TokenCount(total, n, counter or "the given counter")


def _alpaca_row(rec: Any) -> dict[str, Any]:
    """A dbgpt / llamafactory record as a TRL conversational row (history turns become earlier
    user/assistant messages, as LLaMA-Factory feeds them)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("output"), str) or not isinstance(rec.get("instruction"), str):
        raise DataError("an alpaca record needs string 'instruction' and 'output'")
    prompt: list[dict[str, str]] = []
    if isinstance(rec.get("system"), str) and rec["system"]:
        prompt.append({"role": "system", "content": rec["system"]})
    for pair in rec.get("history") or []:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise DataError("'history' must be a list of [input, output] string pairs")
        prompt += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    prompt.append({"role": "user", "content": rec["instruction"] + (rec.get("input") or "")})
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": rec["output"]}]}


def _messages(value: Any, what: str) -> list[dict[str, str]]:
    if not (isinstance(value, list) and value and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)):
        raise DataError(f"'{what}' must be a non-empty list of {{role, content}} messages")
    return [{"role": m["role"], "content": m["content"]} for m in value]


#: the column of an SFT row that marks text the environment wrote (no loss on it): see the module docstring
OBSERVATION_SPANS = "observation_spans"


def check_observation_spans(completion: Any, spans: Any) -> list[list[int]]:
    """``spans`` as ``[[start, end], ...]`` when they mark text inside ``completion`` (a list of one
    assistant message): integer character offsets with ``0 <= start < end <= len(content)``, in
    order, not overlapping, and not covering the end of the content (the model's last turn is its
    own). ``DataError`` saying which rule a span breaks."""
    if not (isinstance(completion, list) and len(completion) == 1 and isinstance(completion[0], dict)
            and completion[0].get("role") == "assistant" and isinstance(completion[0].get("content"), str)):
        raise DataError(f"'{OBSERVATION_SPANS}' needs a completion of one assistant message")
    size = len(completion[0]["content"])
    if not isinstance(spans, list):
        raise DataError(f"'{OBSERVATION_SPANS}' must be a list of [start, end] pairs, got {type(spans).__name__}")
    out: list[list[int]] = []
    end_prev = 0
    for span in spans:
        if not (isinstance(span, (list, tuple)) and len(span) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in span)):
            raise DataError(f"'{OBSERVATION_SPANS}': {span!r} is not a [start, end] pair of integers")
        start, end = span
        if not end_prev <= start < end <= size:
            raise DataError(f"'{OBSERVATION_SPANS}': [{start}, {end}] is out of order, empty, overlapping or "
                            f"past the completion's {size} characters")
        out.append([start, end])
        end_prev = end
    if out and out[-1][1] == size:
        raise DataError(f"'{OBSERVATION_SPANS}': the completion ends inside an observation (its last turn must be the model's)")
    return out


def read_training_file(path: str | Path) -> tuple[list[dict[str, Any]], list[Problem], dict[str, Any] | None]:
    """``(rows, problems, prompt settings)`` of a file ``sqlcoach data build`` wrote, any format:
    TRL conversational ``{"prompt": [...], "completion": [...]}`` rows for SFT. ``chat`` rows are
    taken as written; ``rl`` rows get the gold SQL in the template's answer format as completion
    (not for an anonymizing template, whose placeholders the file does not record); ``dbgpt`` and
    ``llamafactory`` records become a user message (instruction + input, after the system message
    and history turns); ``openai`` records split before their last (assistant) message. The
    settings are those the records carry (``chat``/``rl``), ``None`` for
    the formats that have no place for them. A bad record is a problem with file and line."""
    from sqlcoach.data.jsonl import iter_records

    p = Path(path)
    report = LoadReport()
    rows: list[dict[str, Any]] = []
    settings: dict[str, Any] | None = None
    for lineno, rec in iter_records(p, report):
        try:
            if isinstance(rec, dict) and "messages" in rec:  # openai: the last message is the answer
                msgs = _messages(rec["messages"], "messages")
                if len(msgs) < 2 or msgs[-1]["role"] != "assistant":
                    raise DataError("'messages' must end with the assistant's answer after the prompt")
                rows.append({"prompt": msgs[:-1], "completion": msgs[-1:]})
            elif isinstance(rec, dict) and "prompt" in rec:
                prompt = _messages(rec["prompt"], "prompt")
                got = rec.get("prompt_settings") if isinstance(rec.get("prompt_settings"), dict) else None
                if got and settings is None:
                    settings = dict(got)
                elif got and got != settings:
                    raise DataError("its prompt_settings differ from the file's first record's (one model, one prompt)")
                if "completion" in rec:
                    completion = _messages(rec["completion"], "completion")
                    if OBSERVATION_SPANS in rec:  # an agent trajectory: what the environment wrote gets no loss
                        row = {"prompt": prompt, "completion": completion,
                               OBSERVATION_SPANS: check_observation_spans(completion, rec[OBSERVATION_SPANS])}
                        if isinstance(rec.get("tools"), list):  # tool-protocol rows: the prompt renders them
                            row["tools"] = rec["tools"]
                        rows.append(row)
                        continue
                else:  # an rl record: the gold in the answer format of the template it was built with
                    template = (got or {}).get("template")
                    if not template or not isinstance(rec.get("gold_sql"), str) or not rec["gold_sql"].strip():
                        raise DataError("an rl record needs 'gold_sql' and prompt_settings.template to make a completion")
                    if get_template(template).anonymize:
                        raise DataError(f"rl records of the {template!r} template cannot become SFT rows (export the chat format)")
                    completion = [{"role": "assistant", "content": render_completion(rec["gold_sql"], template)}]
                rows.append({"prompt": prompt, "completion": completion})
            else:
                rows.append(_alpaca_row(rec))
        except DataError as exc:
            report.add(p, lineno, str(exc))
    return rows, report.problems, settings


__all__ = ["DBGPT_HUB", "DBGPT_HUB_INSTRUCTION", "EXPORT_KIND", "FORMATS", "OBSERVATION_SPANS", "check_observation_spans", "ExportSummary", "RenderDefaults", "SchemaSource",
           "APPROX_COUNTER", "TokenCount", "atomic_write", "build_record", "count_training_tokens", "export_examples", "format_defaults",
           "read_training_file", "schema_text"]
