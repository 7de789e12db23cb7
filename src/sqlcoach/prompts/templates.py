"""Prompt templates: what the model is shown, and the text it should answer with.

Templates (:data:`TEMPLATES`):

``sql_terminal``
    DB-GPT-Hub's instruction/input/response prompt; the answer is the bare SQL.
``omnisql``
    OmniSQL's prompt (task overview, SQLite engine, schema, question + evidence, instructions,
    output format); the answer ends with a ```sql block.
``reasoning``
    A system prompt asks for ``<think>...</think>`` then ``<answer>```sql ...```</answer>``
    (the R1 format used by SQL-R1 / Reasoning-SQL style GRPO).
``reasoning_tags``
    The ``<reasoning>...</reasoning>\\n<sql>...</sql>`` variant.
``minimal``
    Schema, question, ``SQL:``; bare SQL answer (for tiny from-scratch models).
``anonymized``
    ``minimal`` with the question first and every table, column and mentioned value replaced by a
    placeholder (``t1``, ``c3``, ``v1``; ``sqlcoach.prompts.anonymize``): the schema text passed in
    is not used, the completion is written with placeholders, and ``restore_sql`` maps the model's
    SQL back. For models without word knowledge (the demo's); pretrained models do not need it.
``anonymized_numbers``
    ``anonymized`` with the numbers the question writes in digits as placeholders ``n1``, ``n2``.

Multi-turn examples (``Example.turns``) show the earlier questions in the user message, before the
current question, and each earlier turn's SQL when the turn carries one. Which SQL a turn carries
is the prompt builder's ``turn_history`` setting (``sqlcoach.prompts.builder``): none by default,
the model's own predictions, or the gold (an oracle). Evidence (BIRD) follows the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from sqlcoach.errors import ConfigError
from sqlcoach.types import Example, Turn

# DB-GPT-Hub's prompt, split where its data files split it (instruction / input), so that
# instruction + input is exactly the prompt text. DB-GPT-Hub writes "...to me.Below" without a
# space in its code; the space here follows the wording sqlcoach's issue gives.
SQL_TERMINAL_PREFIX = (
    "I want you to act as a SQL terminal in front of an example database, you need only to return "
    "the sql command to me. Below is an instruction that describes a task, Write a response that "
    "appropriately completes the request.\n\n"
)
SQL_TERMINAL_INSTRUCTION = SQL_TERMINAL_PREFIX + "###Instruction:\n{schema}\n"
SQL_TERMINAL_INPUT = "###Input:\n{question}\n\n###Response:"

OMNISQL_USER = """Task Overview:
You are a data science expert. Below, you are provided with a database schema and a natural language question. Your task is to understand the schema and generate a valid SQL query to answer the question.

Database Engine:
SQLite

Database Schema:
{schema}
This schema describes the database's structure, including tables, columns, primary keys, foreign keys, and any relevant relationships or constraints.

Question:
{question}

Instructions:
- Make sure you only output the information that is asked in the question. If the question asks for a specific column, make sure to only include that column in the SELECT clause, nothing more.
- The generated query should return all of the information asked in the question without any missing or extra information.
- Before generating the final SQL query, please think through the steps of how to write the query.

Output Format:
In your answer, please enclose the generated SQL query in a code block:
```sql
-- Your SQL query
```

Take a deep breath and think step by step to find the correct SQLite SQL query."""

REASONING_SYSTEM = (
    "You are a SQLite expert. You first think about the reasoning process in your mind and then "
    "provide the SQL query. The reasoning process and the query are enclosed within <think> "
    "</think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here "
    "</think>\n<answer>\n```sql\nSQL query here\n```\n</answer>"
)
REASONING_TAGS_SYSTEM = (
    "You are a SQLite expert. Respond in the following format:\n<reasoning>\n...\n</reasoning>\n"
    "<sql>\n...\n</sql>"
)
REASONING_USER = """Database schema (SQLite):
{schema}

Question:
{question}

Write one SQLite query that answers the question."""


def question_block(example: Example) -> str:
    """The question, followed by the evidence line when the example has evidence."""
    q = example.question.strip()
    if example.evidence and example.evidence.strip():
        q += "\n" + example.evidence.strip()
    return q


def history_block(turns: tuple[Turn, ...]) -> str:
    """Earlier turns as text ("" when there are none); a turn without SQL shows only its question."""
    if not turns:
        return ""
    with_sql = any(t.sql for t in turns)
    lines = ["Previous questions in this conversation and their SQL:" if with_sql else "Previous questions in this conversation:"]
    for i, t in enumerate(turns, 1):
        lines.append(f"{i}. {t.question.strip()}")
        if t.sql:
            lines.append(f"   SQL: {t.sql.strip()}")
    return "\n".join(lines) + "\n\nCurrent question:\n"


def _tables_in(sql: str) -> list[str]:
    found = re.findall(r"\b(?:FROM|JOIN)\s+([`\"\[]?[\w ]+?[`\"\]]?)(?=\s|$|,|\))", sql, re.IGNORECASE)
    out: list[str] = []
    for f in found:
        name = f.strip("`\"[] ")
        if name and name.upper() != "SELECT" and name not in out:
            out.append(name)
    return out


def default_reasoning(sql: str) -> str:
    """A short, truthful reasoning line for SFT targets when no real reasoning is available."""
    tables = _tables_in(sql)
    if tables:
        return f"The answer comes from the table(s) {', '.join(tables)}; one SQLite query over them answers the question."
    return "One SQLite query answers the question."


@dataclass(frozen=True)
class Template:
    """How one prompt style renders a user message, a system message and a target completion."""

    name: str
    user: Callable[[Example, str], str]
    completion: Callable[[str, str | None], str]
    pattern: re.Pattern
    system: str | None = None
    anonymize: bool = False
    anonymize_numbers: bool = False  # with anonymize: the question's numbers become n1, n2, ... too


def _sql_terminal_user(ex: Example, schema: str) -> str:
    return SQL_TERMINAL_INSTRUCTION.format(schema=schema) + SQL_TERMINAL_INPUT.format(
        question=history_block(ex.turns) + question_block(ex)
    )


def _omnisql_user(ex: Example, schema: str) -> str:
    return OMNISQL_USER.format(schema=schema.rstrip(), question=history_block(ex.turns) + question_block(ex))


def _reasoning_user(ex: Example, schema: str) -> str:
    return REASONING_USER.format(schema=schema.rstrip(), question=history_block(ex.turns) + question_block(ex))


def _minimal_user(ex: Example, schema: str) -> str:
    return f"{schema.rstrip()}\nQuestion: {history_block(ex.turns) + question_block(ex)}\nSQL:"


def _question_first_user(ex: Example, schema: str) -> str:
    return f"Question: {history_block(ex.turns) + question_block(ex)}\n{schema.rstrip()}\nSQL:"


def _sql_block(sql: str) -> str:
    return f"```sql\n{sql.strip()}\n```"


TEMPLATES: dict[str, Template] = {
    "sql_terminal": Template(
        "sql_terminal",
        _sql_terminal_user,
        lambda sql, reasoning: sql.strip(),
        re.compile(r"\s*(?:SELECT|WITH)\b(?:(?!```).)*", re.IGNORECASE | re.DOTALL),
    ),
    # The shortest prompt: schema, question, cue; no instruction words (for tiny from-scratch
    # models such as the demo's, where every prompt token costs training time). Bare SQL answer.
    "minimal": Template(
        "minimal",
        _minimal_user,
        lambda sql, reasoning: sql.strip(),
        re.compile(r"\s*(?:SELECT|WITH)\b(?:(?!```).)*", re.IGNORECASE | re.DOTALL),
    ),
    # Placeholders for names and values (sqlcoach.prompts.anonymize), question before schema.
    "anonymized": Template(
        "anonymized",
        _question_first_user,
        lambda sql, reasoning: sql.strip(),
        re.compile(r"\s*(?:SELECT|WITH)\b(?:(?!```).)*", re.IGNORECASE | re.DOTALL),
        anonymize=True,
    ),
    "omnisql": Template(
        "omnisql",
        _omnisql_user,
        lambda sql, reasoning: (f"{reasoning.strip()}\n\n" if reasoning else "") + _sql_block(sql),
        re.compile(r"(?:.*\n)?\s*```sql[ \t]*\n(?:(?!```).)+?```\s*", re.DOTALL),
    ),
    "reasoning": Template(
        "reasoning",
        _reasoning_user,
        lambda sql, reasoning: (
            f"<think>\n{(reasoning or default_reasoning(sql)).strip()}\n</think>\n"
            f"<answer>\n{_sql_block(sql)}\n</answer>"
        ),
        re.compile(
            r"\s*<think>(?:(?!</?think>).)+</think>\s*<answer>\s*```sql[ \t]*\n(?:(?!```).)+?```\s*</answer>\s*",
            re.DOTALL,
        ),
        REASONING_SYSTEM,
    ),
    "reasoning_tags": Template(
        "reasoning_tags",
        _reasoning_user,
        lambda sql, reasoning: (
            f"<reasoning>\n{(reasoning or default_reasoning(sql)).strip()}\n</reasoning>\n"
            f"<sql>\n{sql.strip()}\n</sql>"
        ),
        re.compile(r"\s*<reasoning>(?:(?!</?reasoning>).)+</reasoning>\s*<sql>(?:(?!</?sql>).)+</sql>\s*", re.DOTALL),
        REASONING_TAGS_SYSTEM,
    ),
}


# ``anonymized`` with the numbers the question writes in digits as placeholders n1, n2, ... too (a tiny
# model copies "n1" reliably and "1890" not: docs/training.md, "What the schedule does").
TEMPLATES["anonymized_numbers"] = replace(TEMPLATES["anonymized"], name="anonymized_numbers", anonymize_numbers=True)


def get_template(name: str) -> Template:
    """The template called ``name``; ValueError listing the known names otherwise."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ConfigError(f"unknown template {name!r} (known: {', '.join(TEMPLATES)})") from None


def shown_inputs(example: Example, schema_text: str, t: Template, values: Sequence[tuple[str, str, str]] = (),
                 budget_tokens: int | None = None) -> tuple[Example, str]:
    """What ``t.user`` is given: ``(example, schema_text)`` as they are, or for an anonymizing
    template the example with placeholders and the placeholder schema (the text passed in unused):
    ``values`` (retrieved ``(table, column, value)`` triples) that the placeholders link become a
    ``values: t1.c2=v1`` line, and ``budget_tokens`` cuts the placeholder schema at a line boundary."""
    if not t.anonymize:
        return example, schema_text
    from sqlcoach.prompts.anonymize import name_map

    names = name_map(example, t.anonymize_numbers)
    text = names.schema_text(values)
    if budget_tokens:
        from sqlcoach.schema.serialize import approx_tokens, truncate

        if approx_tokens(text) > budget_tokens:
            text = truncate(text, budget_tokens, approx_tokens)
    return names.encode_example(example), text


def render_prompt(example: Example, schema_text: str, template: str = "omnisql", *,
                  values: Sequence[tuple[str, str, str]] = (), budget_tokens: int | None = None) -> list[dict]:
    """Chat messages for ``example``: a system message when the template has one, then the user
    message holding schema, history (multi-turn) and question (+ evidence). ``values`` and
    ``budget_tokens`` matter only to an anonymizing template (the others get them inside
    ``schema_text``; see :func:`shown_inputs`)."""
    t = get_template(template)
    example, schema_text = shown_inputs(example, schema_text, t, values, budget_tokens)
    messages = []
    if t.system:
        messages.append({"role": "system", "content": t.system})
    messages.append({"role": "user", "content": t.user(example, schema_text)})
    return messages


def render_completion(sql: str, template: str, reasoning: str | None = None, *, example: Example | None = None) -> str:
    """The target text a model should produce for ``sql`` under ``template``.

    ``sql_terminal``: the SQL itself; ``omnisql``: optional reasoning then a ```sql block;
    ``reasoning`` / ``reasoning_tags``: reasoning (``default_reasoning(sql)`` when None) and SQL
    in the template's tags; ``anonymized``: the SQL with ``example``'s placeholders (ValueError
    without ``example``). Every result fullmatches ``expected_format(template)``.
    """
    t = get_template(template)
    if t.anonymize:
        if example is None:
            raise ValueError(f"template {template!r} needs the example to write its completion")  # internal invariant: callers pass example=
        sql = placeholder_sql(sql, example, template)
    return t.completion(sql, reasoning)


def placeholder_sql(sql: str, example: Example, template: str) -> str:
    """``sql`` (real names) as the model writes it under ``template``: with ``example``'s
    placeholders for an anonymizing template (and its numbers under ``anonymized_numbers``),
    unchanged otherwise. The one encoder of targets, agent observations and warm-start rows."""
    t = get_template(template)
    if not t.anonymize:
        return sql
    from sqlcoach.prompts.anonymize import name_map

    return name_map(example, t.anonymize_numbers).encode_sql(sql)


def restore_sql(sql: str, example: Example, template: str) -> str:
    """The model's ``sql`` as it runs on ``example``'s database: placeholders mapped back for an
    anonymizing template, unchanged otherwise."""
    t = get_template(template)
    if not sql or not t.anonymize:
        return sql
    from sqlcoach.errors import DataError
    from sqlcoach.prompts.anonymize import restore_sql as _restore

    try:
        return _restore(sql, example, t.anonymize_numbers)
    except DataError:  # the example could not be anonymized (its prompt used real names)
        return sql


def names_column(example: Example, template: str) -> str:
    """The ``sql_names`` dataset column of ``example`` (JSON placeholder -> name; ``""`` when the
    template does not anonymize): rewards decode completions with it."""
    t = get_template(template)
    if not t.anonymize:
        return ""
    from sqlcoach.prompts.anonymize import name_map

    return name_map(example, t.anonymize_numbers).names_json()


def expected_format(template: str) -> re.Pattern:
    """The pattern a well-formed completion *fullmatches* (use ``pattern.fullmatch(text)``)."""
    return get_template(template).pattern
