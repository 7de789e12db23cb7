"""Schema -> text for a prompt, in three styles, optionally within a token budget. Pure: no I/O.

Styles
------
``ddl`` (OmniSQL's): ``CREATE TABLE`` statements, one column per line with an inline comment of
example values (``  name text, -- example: ['Alice', 'Bob']``), then ``PRIMARY KEY (...)`` and
``CONSTRAINT fk_<table>_<column> FOREIGN KEY (...) REFERENCES <ref> (<col>)`` clauses. Matched
values follow as ``-- matched values: t.c = 'x'; ...``.

``nl`` (DB-GPT-Hub's prose, as dbgpt-hub 0.3.1's ``ProcessSqlData`` writes it): ``"<db> contains
tables such as t1, t2. Table t1 has columns such as a, b. a is the primary key.\\n ... The a of t1
is the foreign key of b of t2.\\n"``; each key column of a composite key gets its own ``x is the
primary key.\\n`` line, in key order, and a table without a key no line break. Without samples,
values and descriptions the text is DB-GPT-Hub's byte for byte (given the same Schema: its source
is tables.json). Additions (absent in DB-GPT-Hub, which shows no values): ``Example values of t1:
a: 'x', 'y'; b: ...`` per table when samples are present, and ``Relevant values: t.c = 'x', ...``
when values are given.

Column descriptions (BIRD's ``database_description``; ``Column.description`` and
``value_description``) appear in ``ddl`` as the column's comment before the examples
(``  rtype text, -- rating type; values: A: adult, C: child; example: ['A']``) and in ``nl`` as a
``Column meanings of t1: a: ... (values: ...)`` line per table; ``compact`` stays compact.

``compact``: one line per table, ``t1(a*, b, c->t2.x)``: ``*`` marks a primary-key column,
``->t.c`` a foreign key to ``t.c``, and ``{'x'|'y'}`` after a column its example values. Matched
values follow as ``values: t.c='x'; ...``.

Identifiers that are not plain words are quoted with backticks (as BIRD's SQL does).

Values (samples and retrieved values) are shown in every style as SQL-quoted text on one line:
control characters are escaped (``\\n``, ``\\r``, ``\\t``, other C0 characters, DEL and the Unicode
line breaks U+0085/U+2028/U+2029 as ``\\xNN`` / ``\\uNNNN``), so a stored ``'NJ\\n'`` cannot break
the schema text across lines (:func:`shown_value`). The escapes are for reading, not a SQL
literal to paste: the model should compare with ``'NJ' || char(10)``, not with the escape.

Token budget
------------
With ``budget_tokens``, the text is shrunk step by step, re-measuring after each, in this order:

1. drop all sample values and column descriptions;
2. keep only the first ``keep_values`` (default 3) retrieved values;
3. for tables the question does not mention, keep only key columns (primary and foreign keys,
   or the first column when a table has none);
4. drop whole tables, least related to the question first; tables linked by a foreign key to a
   mentioned table go after all unrelated ones, mentioned tables last; at least one table stays;
5. truncate the text at a line boundary (or mid-line when a single line is too long).

A table is *mentioned* when a word of its name (split at ``_`` and case changes, plural ``s``
ignored) is a word of the question, or a retrieved value lies in it. Relatedness adds one point
per column whose name shares a word with the question. ``count_tokens`` defaults to
:func:`approx_tokens` (words and punctuation marks); pass ``lambda s: len(tok(s).input_ids)``
for a real tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Iterable, Sequence

from sqlcoach.errors import ConfigError
from sqlcoach.types import Column, ForeignKey, Schema, Table

Value = tuple[str, str, str]  # (table, column, value)
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMERIC_TYPES = ("int", "real", "float", "double", "num", "dec", "number")


def approx_tokens(text: str) -> int:
    """Approximate token count: words plus punctuation marks."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def ident(name: str) -> str:
    """``name`` as is when it is a plain identifier, else in backticks."""
    return name if _PLAIN.match(name) else "`" + name.replace("`", "``") + "`"


def quote_value(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


# C0 controls, DEL and the characters str.splitlines() / tokenizers treat as line breaks
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_control(match: re.Match) -> str:
    ch = match.group(0)
    named = _NAMED_ESCAPES.get(ch)
    if named is not None:
        return named
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def shown_value(value: str) -> str:
    """``value`` as a prompt shows it: SQL-quoted, on one line (control characters escaped as
    ``\\n``, ``\\t``, ``\\r``, ``\\xNN`` or ``\\uNNNN``; module docstring). Guarantees no character of
    the result is a line break or another control character."""
    return quote_value(_CONTROL.sub(_escape_control, value))


def _sample_literal(col: Column, value: str) -> str:
    if any(k in col.type.lower() for k in _NUMERIC_TYPES):
        try:
            float(value)
            if not _CONTROL.search(value):  # float() accepts '12\n'
                return value
        except ValueError:
            pass
    return shown_value(value)


def _fks_of(schema: Schema, table: str) -> list[ForeignKey]:
    low = table.lower()
    return [fk for fk in schema.foreign_keys if fk.table.lower() == low]


# --- renderers: (schema, values) -> text ---------------------------------------------------------


def render_ddl(schema: Schema, values: Sequence[Value]) -> str:
    blocks = []
    for t in schema.tables:
        lines = []
        for c in t.columns:
            head = f"  {ident(c.name)}" + (f" {c.type.lower()}" if c.type else "")
            notes = [n for n in (c.description, f"values: {c.value_description}" if c.value_description else "") if n]
            if c.samples:
                notes.append("example: [" + ", ".join(_sample_literal(c, s) for s in c.samples) + "]")
            lines.append((head, (" -- " + "; ".join(notes)) if notes else ""))
        clauses = []
        if t.primary_key:
            clauses.append(f"  PRIMARY KEY ({', '.join(ident(k) for k in t.primary_key)})")
        for fk in _fks_of(schema, t.name):
            clauses.append(
                f"  CONSTRAINT fk_{t.name.lower()}_{fk.column.lower()} FOREIGN KEY ({ident(fk.column)}) "
                f"REFERENCES {ident(fk.ref_table)} ({ident(fk.ref_column)})"
            )
        body = []
        n = len(lines) + len(clauses)
        for i, (head, comment) in enumerate(lines):
            # the comma goes before the comment, as in OmniSQL's prompts
            body.append(head + ("," if i < n - 1 else "") + comment)
        for j, cl in enumerate(clauses):
            body.append(cl + ("," if len(lines) + j < n - 1 else ""))
        blocks.append(f"CREATE TABLE {ident(t.name)} (\n" + "\n".join(body) + "\n);")
    text = "\n\n".join(blocks)
    if values:
        text += "\n\n-- matched values: " + "; ".join(f"{t}.{c} = {shown_value(v)}" for t, c, v in values)
    return text


def render_nl(schema: Schema, values: Sequence[Value]) -> str:
    names = [t.name for t in schema.tables]
    out = f"{schema.db_id} contains tables such as {', '.join(names)}. "
    for t in schema.tables:
        out += f"Table {t.name} has columns such as {', '.join(c.name for c in t.columns)}. "
        for key in t.primary_key:  # DB-GPT-Hub: one line per key column, composite keys too
            out += f"{key} is the primary key.\n"
        meanings = [c for c in t.columns if c.description or c.value_description]
        if meanings:
            parts = "; ".join(f"{c.name}: {c.description or c.name}"
                              + (f" (values: {c.value_description})" if c.value_description else "") for c in meanings)
            out += f"Column meanings of {t.name}: {parts}.\n"
        samples = [c for c in t.columns if c.samples]
        if samples:
            parts = "; ".join(f"{c.name}: {', '.join(_sample_literal(c, s) for s in c.samples)}" for c in samples)
            out += f"Example values of {t.name}: {parts}.\n"
    for fk in schema.foreign_keys:
        out += f"The {fk.column} of {fk.table} is the foreign key of {fk.ref_column} of {fk.ref_table}.\n"
    if values:
        out += "Relevant values: " + ", ".join(f"{t}.{c} = {shown_value(v)}" for t, c, v in values) + ".\n"
    return out


def render_compact(schema: Schema, values: Sequence[Value]) -> str:
    lines = []
    for t in schema.tables:
        fk_by_col = {fk.column.lower(): fk for fk in _fks_of(schema, t.name)}
        cols = []
        for c in t.columns:
            s = ident(c.name) + ("*" if c.primary_key or c.name in t.primary_key else "")
            fk = fk_by_col.get(c.name.lower())
            if fk is not None:
                s += f"->{ident(fk.ref_table)}.{ident(fk.ref_column)}"
            if c.samples:
                s += "{" + "|".join(_sample_literal(c, v) for v in c.samples) + "}"
            cols.append(s)
        lines.append(f"{ident(t.name)}({', '.join(cols)})")
    if values:
        lines.append("values: " + "; ".join(f"{t}.{c}={shown_value(v)}" for t, c, v in values))
    return "\n".join(lines)


STYLES: dict[str, Callable[[Schema, Sequence[Value]], str]] = {
    "ddl": render_ddl,
    "nl": render_nl,
    "compact": render_compact,
}


# --- relevance ----------------------------------------------------------------------------------


def name_words(name: str) -> set[str]:
    """Words of an identifier: split at non-letters and lower->upper case changes; plural s cut."""
    parts = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    return {_stem(p.lower()) for p in parts if p}


def _stem(w: str) -> str:
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w


def question_words(question: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", question.lower())}


def table_relevance(schema: Schema, question: str | None, values: Sequence[Value] = ()) -> dict[str, tuple[int, int]]:
    """``{table: (tier, score)}``: tier 2 = mentioned, 1 = FK-linked to a mentioned table, 0 = other;
    score = 3 per name-word hit + 1 per column sharing a word with the question + 2 if a value."""
    qw = question_words(question or "")
    valued = {t.lower() for t, _c, _v in values}
    score: dict[str, int] = {}
    mentioned: set[str] = set()
    for t in schema.tables:
        hit = len(name_words(t.name) & qw)
        cols = sum(1 for c in t.columns if name_words(c.name) & qw)
        s = 3 * hit + cols + (2 if t.name.lower() in valued else 0)
        score[t.name] = s
        if hit or t.name.lower() in valued:
            mentioned.add(t.name.lower())
    linked = set()
    for fk in schema.foreign_keys:
        if fk.table.lower() in mentioned:
            linked.add(fk.ref_table.lower())
        if fk.ref_table.lower() in mentioned:
            linked.add(fk.table.lower())
    out = {}
    for t in schema.tables:
        low = t.name.lower()
        tier = 2 if low in mentioned else (1 if low in linked else 0)
        out[t.name] = (tier, score[t.name])
    return out


# --- shrinking steps ----------------------------------------------------------------------------


def drop_samples(schema: Schema) -> Schema:
    tables = tuple(replace(t, columns=tuple(replace(c, samples=(), description="", value_description="") for c in t.columns))
                   for t in schema.tables)
    return replace(schema, tables=tables)


def key_columns_only(schema: Schema, keep_full: Iterable[str]) -> Schema:
    """Tables not in ``keep_full`` keep only PK/FK columns (or their first column)."""
    full = {n.lower() for n in keep_full}
    keys: dict[str, set[str]] = {}
    for fk in schema.foreign_keys:
        keys.setdefault(fk.table.lower(), set()).add(fk.column.lower())
        keys.setdefault(fk.ref_table.lower(), set()).add(fk.ref_column.lower())
    tables = []
    for t in schema.tables:
        if t.name.lower() in full:
            tables.append(t)
            continue
        k = keys.get(t.name.lower(), set()) | {p.lower() for p in t.primary_key}
        cols = tuple(c for c in t.columns if c.primary_key or c.name.lower() in k) or t.columns[:1]
        tables.append(replace(t, columns=cols))
    return replace(schema, tables=tuple(tables))


def drop_table(schema: Schema, name: str) -> Schema:
    low = name.lower()
    return replace(
        schema,
        tables=tuple(t for t in schema.tables if t.name.lower() != low),
        foreign_keys=tuple(fk for fk in schema.foreign_keys if low not in (fk.table.lower(), fk.ref_table.lower())),
    )


def truncate(text: str, budget: int, count: Callable[[str], int]) -> str:
    """The longest prefix of whole lines within ``budget`` tokens (a cut line when none fits).

    Binary search over the number of lines (a prefix never has more tokens than a longer one),
    so a long schema costs O(log lines) calls of ``count``, which may be a real tokenizer.
    """
    lines = text.split("\n")
    lo, hi = 0, len(lines)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count("\n".join(lines[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    if lo:
        return "\n".join(lines[:lo])
    lo, hi = 0, len(lines[0])  # binary search on characters of the first line
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(lines[0][:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lines[0][:lo].rstrip()


def serialize(
    schema: Schema,
    style: str = "ddl",
    *,
    values: Sequence[Value] | None = None,
    question: str | None = None,
    budget_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
    keep_values: int = 3,
) -> str:
    """Render ``schema`` in ``style`` (``ddl``, ``nl``, ``compact``; see module docstring).

    ``values`` are ``(table, column, value)`` triples (from :func:`~sqlcoach.schema.values.
    retrieve_values`), best first. Without ``budget_tokens`` the full text is returned. With it,
    the result has at most ``budget_tokens`` tokens by ``count_tokens``, reached by the documented
    shrinking order, each step applied only while the text is still too long. Raises ConfigError
    (a ValueError) for an unknown style.
    """
    try:
        render = STYLES[style]
    except KeyError:
        raise ConfigError(f"unknown schema style {style!r} (known: {', '.join(STYLES)})") from None
    vals = list(values or ())
    text = render(schema, vals)
    if budget_tokens is None:
        return text
    count = count_tokens or approx_tokens

    def fits(s: str) -> bool:
        return count(s) <= budget_tokens

    if fits(text):
        return text
    # (1) sample values
    schema = drop_samples(schema)
    text = render(schema, vals)
    if fits(text):
        return text
    # (2) retrieved values beyond the top few
    vals = vals[:keep_values]
    text = render(schema, vals)
    if fits(text):
        return text
    # (3) columns of tables the question does not mention
    rel = table_relevance(schema, question, vals)
    schema = key_columns_only(schema, [t for t, (tier, _s) in rel.items() if tier == 2])
    text = render(schema, vals)
    if fits(text):
        return text
    # (4) whole tables, least related first (stable: later tables go first among equals)
    order = sorted(
        ((tier, s, -i, t.name) for i, t in enumerate(schema.tables) for tier, s in [rel[t.name]]),
    )
    for _tier, _s, _i, name in order[:-1]:
        schema = drop_table(schema, name)
        low = name.lower()
        vals = [v for v in vals if v[0].lower() != low]
        text = render(schema, vals)
        if fits(text):
            return text
    # (5) truncate
    return truncate(text, budget_tokens, count)
