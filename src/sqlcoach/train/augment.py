"""Schema-renaming augmentation for SFT rows: names cannot be memorised, so they must be copied.

A small model trained on 18 databases learns their table and column names by heart and writes
``FROM team`` on a database that has no ``team``. This module renames the schema identifiers of a
training example *consistently*, to fresh words, in three places:

* the schema text: a renamed copy of the ``Schema`` object (tables, columns, primary and foreign
  keys) is serialised as usual, so the text has exactly the shape of an unrenamed prompt;
* the gold SQL: the SQL is tokenised with sqlglot and only identifier tokens that name a schema
  table or column are replaced, in place, so formatting, aliases (``T1``), function names
  (``count(``), quoted strings and numbers are left exactly as they were;
* the question: whole-word, case-insensitive matches of each identifier *word* (identifiers are
  split at ``_``; ``birth_year`` is "birth year" in a question) and of its plural (the world's
  regular ``-s``/``-es``/``-ies`` rule) are replaced by the new word (or its plural).

Renaming is word by word: each word of an identifier maps to one fresh word (``id`` is kept, it is
a convention the dev databases share), so ``singer`` -> ``tolvar`` also makes ``singer_id`` ->
``tolvar_id``, and joins stay readable. Values are never touched: a question word that also occurs
inside a string literal of the gold SQL (``genre = 'pop'`` with a column ``pop``) keeps its spelling.

Fresh words come from a pool: the identifier words of all *training* databases (names moved to
other databases, so a name stops predicting a query shape) plus generated pronounceable words
(``fresh_words``). Everything is seeded: the same (examples, seed) give the same rows.

Run: ``sqlcoach train sft ... rename_copies=1`` (``SFTRunConfig.rename_copies`` renamed copies per
example, ``rename_keep_original`` keeps the unrenamed row too); the demo does this by default.
The dev split is never read here.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from typing import Any

from sqlcoach.errors import DataError
from sqlcoach.prompts.settings import PromptSettings
from sqlcoach.types import Example, ForeignKey, Schema, Table

#: Identifier words that are kept: conventions that dev schemas share with training schemas.
KEEP_WORDS = frozenset({"id"})

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kl", "pl", "st", "tr")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "", "n", "r", "l", "m", "t", "k")


def plural(word: str) -> str:
    """The demo world's plural rule (``sqlcoach.data.world.subjects.plural``)."""
    from sqlcoach.data.world.subjects import plural as world_plural

    return world_plural(word)


def _reserved() -> frozenset[str]:
    """Words a fresh name must never be: SQL keywords sqlglot knows, and template words."""
    from sqlglot.tokens import Tokenizer

    words = {k.lower() for k in Tokenizer.KEYWORDS if k.isalpha()}
    words |= {"select", "from", "where", "group", "order", "by", "having", "limit", "join", "on", "as",
              "and", "or", "not", "in", "like", "between", "distinct", "count", "sum", "avg", "min", "max",
              "union", "intersect", "except", "desc", "asc", "null", "is", "case", "when", "then", "else",
              "end", "integer", "text", "real", "numeric", "id", "sql", "input", "response", "instruction"}
    return frozenset(words)


def fresh_words(n: int, seed: int = 0, *, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """``n`` distinct pronounceable lowercase words of 2-3 syllables (``tolvar``, ``brimek``),
    deterministic in ``seed``; never an SQL keyword nor a word of ``exclude``."""
    rng = random.Random(seed)
    bad = _reserved() | set(exclude)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        syll = rng.choice((2, 2, 3))
        w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syll)) + rng.choice(_CODAS)
        if len(w) < 4 or w in seen or w in bad:
            continue
        seen.add(w)
        out.append(w)
    return out


def identifier_words(schema: Schema) -> list[str]:
    """Distinct lowercase words of the schema's table and column names (split at ``_``), in order."""
    words: list[str] = []
    for t in schema.tables:
        for name in (t.name, *[c.name for c in t.columns]):
            for w in name.lower().split("_"):
                if w and w not in words:
                    words.append(w)
    return words


def rename_ident(name: str, word_map: dict[str, str]) -> str:
    """``name`` with each ``_``-separated word mapped (unmapped words are kept)."""
    return "_".join(word_map.get(w.lower(), w.lower()) if w else w for w in name.split("_"))


def rename_schema(schema: Schema, word_map: dict[str, str]) -> Schema:
    """A renamed copy of ``schema``: every table, column, primary key and foreign key, same order."""
    r = lambda n: rename_ident(n, word_map)  # noqa: E731
    tables = tuple(
        Table(
            name=r(t.name),
            columns=tuple(replace(c, name=r(c.name)) for c in t.columns),
            primary_key=tuple(r(p) for p in t.primary_key),
            row_count=t.row_count,
        )
        for t in schema.tables
    )
    fks = tuple(ForeignKey(r(f.table), r(f.column), r(f.ref_table), r(f.ref_column)) for f in schema.foreign_keys)
    return Schema(db_id=schema.db_id, tables=tables, foreign_keys=fks)


def _schema_idents(schema: Schema) -> set[str]:
    names = set()
    for t in schema.tables:
        names.add(t.name.lower())
        names.update(c.name.lower() for c in t.columns)
    return names


def rename_sql(sql: str, schema: Schema, word_map: dict[str, str]) -> str:
    """``sql`` with the identifier tokens that name a table or column of ``schema`` renamed in place.

    Strings, numbers, keywords, aliases not in the schema and function names (a name followed by
    ``(``) are kept verbatim, and so is every character between tokens. Raises ``DataError`` (a
    ``ValueError``) when sqlglot cannot tokenise the SQL."""
    from sqlglot.tokens import Tokenizer, TokenType

    try:
        tokens = Tokenizer(dialect="sqlite").tokenize(sql)
    except Exception as exc:  # sqlglot's TokenError: the caller skips the example
        raise DataError(f"cannot tokenise SQL: {exc}") from exc
    names = _schema_idents(schema)
    out: list[str] = []
    pos = 0
    for i, tok in enumerate(tokens):
        if tok.token_type not in (TokenType.VAR, TokenType.IDENTIFIER):
            continue
        if tok.text.lower() not in names:
            continue
        if i + 1 < len(tokens) and tokens[i + 1].token_type == TokenType.L_PAREN:
            continue  # a function call, not a column
        raw = sql[tok.start : tok.end + 1]
        new = rename_ident(tok.text, word_map)
        if tok.token_type == TokenType.IDENTIFIER:  # quoted: keep the quotes around the new name
            new = raw[0] + new + raw[-1]
        out.append(sql[pos : tok.start])
        out.append(new)
        pos = tok.end + 1
    out.append(sql[pos:])
    return "".join(out)


_LITERAL = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def rename_question(question: str, word_map: dict[str, str], protected: set[str] = frozenset()) -> str:
    """Whole-word, case-insensitive replacement of each mapped word and of its plural; a word in
    ``protected`` (lowercase: words of the SQL's literals) is left as it is. A capitalised match
    gives a capitalised replacement."""
    forms: dict[str, str] = {}
    for old, new in word_map.items():
        if old in protected:
            continue
        forms[old] = new
        p = plural(old)
        if p not in protected and p not in word_map:
            forms.setdefault(p, plural(new))
    if not forms:
        return question
    pattern = re.compile(r"\b(" + "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)) + r")\b",
                         re.IGNORECASE)

    def sub(m: re.Match) -> str:
        new = forms[m.group(0).lower()]
        return new[:1].upper() + new[1:] if m.group(0)[:1].isupper() else new

    return pattern.sub(sub, question)


def literal_words(sql: str) -> set[str]:
    """Lowercase words inside the SQL's quoted literals (values the question may spell out)."""
    words: set[str] = set()
    for lit in _LITERAL.findall(sql):
        words.update(w.lower() for w in re.findall(r"[A-Za-z0-9]+", lit))
    return words


def make_word_map(words: list[str], pool: list[str], rng: random.Random, *, avoid: set[str] = frozenset()) -> dict[str, str]:
    """A map from each word (except ``KEEP_WORDS``) to a distinct pool word that is neither one of
    ``words`` nor in ``avoid``."""
    targets = [w for w in words if w not in KEEP_WORDS]
    taken = set(words) | set(avoid)
    out: dict[str, str] = {}
    candidates = rng.sample(pool, min(len(pool), len(targets) * 3 + 8))
    it = iter(candidates)
    for w in targets:
        for c in it:
            if c not in taken:
                out[w] = c
                taken.add(c)
                break
        else:
            raise DataError(f"word pool too small to rename {len(targets)} words")
    return out


def rename_example(example: Example, schema: Schema, pool: list[str], rng: random.Random) -> tuple[Example, Schema]:
    """``(renamed example, renamed schema)``: one consistent word map applied to the schema, the
    gold SQL and the question (see the module docstring). Raises ``DataError`` (a ``ValueError``)
    when the gold SQL cannot be tokenised."""
    if not example.gold_sql:
        raise DataError(f"{example.id}: no gold SQL to rename")
    words = identifier_words(schema)
    q_words = {w.lower() for w in re.findall(r"[A-Za-z]+", example.question)}
    word_map = make_word_map(words, pool, rng, avoid=q_words)
    sql = rename_sql(example.gold_sql, schema, word_map)
    question = rename_question(example.question, word_map, protected=literal_words(example.gold_sql))
    new = replace(example, question=question, gold_sql=sql, meta={**example.meta, "renamed_from": example.id})
    return new, rename_schema(schema, word_map)


def word_pool(schemas: list[Schema], n_fresh: int = 4000, seed: int = 0) -> list[str]:
    """Identifier words of ``schemas`` (training databases only), repeated so that they are about
    half of the list, + ``n_fresh`` generated words. Draw from it with ``make_word_map``."""
    words: list[str] = []
    for s in schemas:
        words.extend(w for w in identifier_words(s) if w not in KEEP_WORDS and w.isalpha() and len(w) > 2)
    words = sorted(set(words) - _reserved())
    if n_fresh == 0:
        return words
    fresh = fresh_words(n_fresh, seed, exclude=set(words))
    # About half of the draws are real (English) words, half generated ones: dev names are English
    # words, and generated ones break every link between a name and the queries it appears in.
    repeat = max(1, len(fresh) // max(1, len(words)))
    return words * repeat + fresh


def renamed_rows(
    examples: list[Any],
    *,
    prompt: PromptSettings,
    copies: int = 1,
    seed: int = 0,
    fresh: bool = True,
) -> tuple[list[dict[str, Any]], list[str]]:
    """``copies`` renamed prompt/completion rows per example (TRL conversational format, as
    ``PromptBuilder.sft_rows``); returns ``(rows, skipped)`` where ``skipped`` says which
    examples could not be renamed and why. Deterministic in ``seed``. ``fresh=False``: new names
    are only words of the training schemas (no generated words). Schemas are read and rows
    rendered by ``sqlcoach.prompts.builder.PromptBuilder`` (``schema``, ``sft_row_for_schema``)."""
    from sqlcoach.prompts.builder import PromptBuilder, UnreadableDatabase

    builder = PromptBuilder.from_settings(prompt)
    schemas: dict[str, Schema | None] = {}
    skipped: list[str] = []
    for ex in examples:
        if ex.db_path and ex.db_path not in schemas:
            try:
                schemas[ex.db_path] = builder.schema(ex.db_path)
            except UnreadableDatabase as exc:  # reported, the rest is still used
                schemas[ex.db_path] = None
                skipped.append(f"{ex.id}: {exc}")
    pool = word_pool([s for s in schemas.values() if s is not None], n_fresh=4000 if fresh else 0, seed=seed)
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for ex in examples:
        schema = schemas.get(ex.db_path) if ex.db_path else None
        if schema is None or not ex.gold_sql:
            skipped.append(f"{ex.id}: no gold SQL or no readable database")
            continue
        for _ in range(copies):
            try:
                new, new_schema = rename_example(ex, schema, pool, rng)
            except ValueError as exc:
                skipped.append(f"{ex.id}: {exc}")
                break
            rows.append(builder.sft_row_for_schema(new, new_schema))
    return rows, skipped
