"""Schema anonymisation: tables, columns and mentioned values become placeholders, and back.

The ``anonymized`` prompt template (``sqlcoach.prompts.templates``) shows the model a question and
a schema in which every table is ``t1, t2, ...`` (in schema order), every other column name is
``c1, c2, ...`` (one placeholder per distinct name, so ``name`` in two tables is one ``cN``), a
column ``<table>_id`` is ``tN_id``, and every database value the question mentions is ``v1, v2,
...``. The question is rewritten the same way (a table's plural becomes ``tNs``), the target SQL is
written with the placeholders, and the model's SQL is mapped back (``NameMap.decode_sql``) before
it is executed. SQL keywords, aliases (``T1``), numbers and functions are left alone, except that
the ``anonymized_numbers`` template also makes every number the question writes in digits a
placeholder ``n1, n2, ...`` (in the question and in the SQL where the same number appears outside
a string), so the model copies ``n1`` instead of spelling ``1890`` token by token: the demo's
weak seeds fail mostly there (docs/training.md, "What the schedule does").

Why: this is variable anonymisation, the pre-LLM text-to-SQL device for models that know no English
(Finegan-Dollak et al., 2018, "Improving Text-to-SQL Evaluation Methodology"; also the typed
placeholders of TypeSQL). A database never seen in training then looks, to the model, like the
training databases: the names it has to write are placeholders it has written thousands of times,
copied from where the question mentions them. sqlcoach's demo trains a from-scratch model of a
million parameters for minutes; with real names it scores EX 0.00 on unseen databases, with this
template about 0.6 (docs/training.md). A pretrained model (Qwen2.5-Coder, Llama) reads real names
and does not need it: use ``omnisql`` or ``sql_terminal`` there.

What it cannot do, by construction: a column the question never names (by its name or its plural)
stays a bare ``cN`` that the model can only guess from the schema's shape; a value is linked only
when the question spells it as the database does (case aside) or, for ``LIKE`` questions, as one
capitalised word of a stored value. Values stored as numbers are not linked (numbers are copied as
they are, or become ``nK`` under ``anonymized_numbers``). Names that already look like placeholders (a table called ``t1``) make the mapping
ambiguous and raise ``DataError``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from sqlcoach.errors import DataError
from sqlcoach.types import Example, Schema, Turn

#: A placeholder as the model writes it (case matters: ``T1`` is an alias, ``t1`` a table).
_NAMES = r"t\d+_id|t\d+|c\d+|v\d+"  # the placeholder kinds; ``n\d+`` (numbers) only under anonymized_numbers
PLACEHOLDER = re.compile(rf"\b(?:{_NAMES}|n\d+)\b")
_LOOKS_LIKE = re.compile(rf"(?:{_NAMES})", re.IGNORECASE)
_LOOKS_LIKE_NUMBERS = re.compile(rf"(?:{_NAMES}|n\d+)", re.IGNORECASE)
# A number written in digits, not part of a word or a longer number ("t1", "1890s" and "3.5"'s
# halves are not numbers; "1917." at the end of a sentence is 1917).
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w]|\.\d)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING = re.compile(r"('(?:[^']|'')*')")
_CAPITALISED = re.compile(r"(?<=[\s\"'(])[A-Z]\w*")
# Question words that are never rewritten even when a column has that name ("a", "by", ...).
_KEEP = frozenset(
    "a an the of in on at to for by with and or not no is are was were be what which who how many "
    "much all each that this from as do does has have there their its it than more most less".split()
)


def plural_forms(word: str) -> list[str]:
    """English plurals good enough for schema words: +s, +es, y -> ies."""
    forms = [word + "s", word + "es"]
    if len(word) > 2 and word.endswith("y") and word[-2] not in "aeiou":
        forms.append(word[:-1] + "ies")
    return forms


@dataclass
class NameMap:
    """One question's mapping. ``back`` (placeholder -> real text) is all that decoding needs."""

    schema: Schema
    tables: dict[str, str] = field(default_factory=dict)  # lower-case real name -> placeholder
    columns: dict[str, str] = field(default_factory=dict)  # lower-case real name -> placeholder
    values: dict[str, str] = field(default_factory=dict)  # real value (database spelling) -> placeholder
    numbers: dict[str, str] = field(default_factory=dict)  # a number as the question writes it -> nK
    back: dict[str, str] = field(default_factory=dict)

    # -- text the model reads ------------------------------------------------------------------
    def encode_text(self, text: str) -> str:
        """A question (or evidence) with linked values, then names and their plurals, replaced."""
        text = self._numbers_replaced(_values_replaced(text, self.values))
        words: dict[str, str] = {}
        for real, ph in [*self.tables.items(), *self.columns.items()]:
            if ph.endswith("_id"):
                continue
            phrase = real.replace("_", " ").strip()
            if not phrase or phrase in _KEEP:
                continue
            words.setdefault(phrase, ph)
            for p in plural_forms(phrase):
                words.setdefault(p, ph + "s")
        for w in sorted(words, key=lambda s: (-len(s), s)):
            text = re.sub(r"(?<![\w])" + re.escape(w) + r"(?![\w])", words[w], text, flags=re.IGNORECASE)
        return text

    def encode_sql(self, sql: str) -> str:
        """SQL with names and linked string values replaced (and, with ``numbers``, the question's
        numbers outside strings); keywords, aliases and other numbers kept."""
        parts = _STRING.split(sql)
        out = []
        for i, part in enumerate(parts):
            if i % 2:  # a string literal
                inner = part[1:-1]
                core = inner.strip("%").lower()
                for value, ph in sorted(self.values.items(), key=lambda kv: (-len(kv[0]), kv[0])):
                    if core == value.lower():
                        inner = inner[: len(inner) - len(inner.lstrip("%"))] + ph + inner[len(inner.rstrip("%")):]
                        break
                out.append("'" + inner + "'")
            else:
                out.append(self._numbers_replaced(_IDENT.sub(lambda m: self._ident(m, part), part)))
        return "".join(out)

    def _numbers_replaced(self, text: str) -> str:
        """``text`` with the question's numbers as their ``nK`` (other numbers as written)."""
        if not self.numbers:
            return text
        return _NUMBER.sub(lambda m: self.numbers.get(m.group(0), m.group(0)), text)

    def _ident(self, m: re.Match, text: str) -> str:
        word = m.group(0)
        if text[m.end():].lstrip().startswith("("):  # a function call: count(...), max(...)
            return word
        low = word.lower()
        return self.tables.get(low) or self.columns.get(low) or word

    def schema_text(self, values: Any = ()) -> str:
        """The schema in ``compact`` style (``t1(t1_id*, c1, t2_id->t2.t2_id)``), with placeholders.

        ``values``: retrieved ``(table, column, value)`` triples; those whose value is a linked
        placeholder end the text as ``values: t1.c2=v1; ...`` (which column holds each mentioned
        value). Values that are not linked are left out: their text would be the only real words."""
        fks = {(fk.table.lower(), fk.column.lower()): fk for fk in self.schema.foreign_keys}
        lines = []
        for t in self.schema.tables:
            cols = []
            for c in t.columns:
                s = self.columns.get(c.name.lower(), c.name)
                if c.primary_key or c.name in t.primary_key:
                    s += "*"
                fk = fks.get((t.name.lower(), c.name.lower()))
                if fk is not None:
                    ref_t = self.tables.get(fk.ref_table.lower(), fk.ref_table)
                    s += f"->{ref_t}.{self.columns.get(fk.ref_column.lower(), fk.ref_column)}"
                cols.append(s)
            lines.append(f"{self.tables[t.name.lower()]}({', '.join(cols)})")
        linked = {v.lower(): ph for v, ph in self.values.items()}
        shown: list[str] = []
        for table, column, value in values:
            ph = linked.get(value.lower())
            tph, cph = self.tables.get(table.lower()), self.columns.get(column.lower())
            if ph and tph and cph:
                item = f"{tph}.{cph}={ph}"
                if item not in shown:
                    shown.append(item)
        if shown:
            lines.append("values: " + "; ".join(shown))
        return "\n".join(lines)

    def encode_example(self, ex: Example) -> Example:
        """``ex`` with question, evidence and earlier turns encoded (gold SQL encoded too)."""
        return replace(
            ex,
            question=self.encode_text(ex.question),
            evidence=self.encode_text(ex.evidence) if ex.evidence else ex.evidence,
            gold_sql=self.encode_sql(ex.gold_sql) if ex.gold_sql else ex.gold_sql,
            turns=tuple(Turn(self.encode_text(t.question), self.encode_sql(t.sql) if t.sql else t.sql) for t in ex.turns),
        )

    # -- text the model writes -----------------------------------------------------------------
    def decode_sql(self, sql: str) -> str:
        """Placeholders back to real names and values; unknown placeholders are left as written."""
        return decode_sql(sql, self.back)

    def names_json(self) -> str:
        """``back`` as JSON: the dataset column (``sql_names``) from which rewards decode completions."""
        return json.dumps(self.back, ensure_ascii=False, sort_keys=True)


def _values_replaced(text: str, values: dict[str, str]) -> str:
    """``text`` with each value (a key of ``values``, whole words, any case, longest first) replaced
    by its entry."""
    for value, ph in sorted(values.items(), key=lambda kv: (-len(kv[0]), kv[0])):
        text = re.sub(r"(?<!\w)" + re.escape(value) + r"(?!\w)", ph, text, flags=re.IGNORECASE)
    return text


def decode_sql(sql: str, back: dict[str, str] | str | None) -> str:
    """Map placeholders in ``sql`` back with ``back`` (a dict or its JSON); ``sql`` unchanged when
    ``back`` is empty or not valid JSON."""
    if not back:
        return sql
    if isinstance(back, str):
        try:
            back = json.loads(back)
        except json.JSONDecodeError:
            return sql
        if not isinstance(back, dict):
            return sql
    return PLACEHOLDER.sub(lambda m: str(back.get(m.group(0), m.group(0))), sql)


def _link_values(db_path: str, texts: list[str], taken: set[str]) -> list[str]:
    """Database values mentioned in ``texts`` (longest first), then capitalised words of stored values."""
    from sqlcoach.schema.values import STOPWORDS, build_index, tokens

    idx = build_index(db_path)
    found: list[str] = []
    seen_low: set[str] = set()
    for text in texts:
        low = text.lower()
        cand: set[int] = set()
        for tok in set(tokens(low)) - STOPWORDS:
            cand.update(idx.by_token.get(tok, ()))
        for i in sorted(cand, key=lambda i: (-len(idx.lowered[i]), idx.lowered[i])):
            v_low = idx.lowered[i]
            if v_low in seen_low or v_low in taken or _LOOKS_LIKE.fullmatch(v_low):
                continue
            pattern = r"(?<!\w)" + re.escape(v_low) + r"(?!\w)"
            if re.search(pattern, low):
                found.append(idx.values[i][2])
                seen_low.add(v_low)
                low = re.sub(pattern, " ", low)
        # LIKE questions name one word of a stored value ("directors with Karl in their name").
        rest = re.sub("|".join(re.escape(v) for v in found) or r"(?!x)x", " ", text, flags=re.IGNORECASE)
        for w in _CAPITALISED.findall(" " + rest):
            wl = w.lower()
            if wl in seen_low or wl in taken or wl in STOPWORDS or _LOOKS_LIKE.fullmatch(wl):
                continue
            if idx.by_token.get(wl):  # the index lists the values that have this word as a token
                found.append(w)
                seen_low.add(wl)
    return found


@lru_cache(maxsize=8192)
def _build(db_path: str, stamp: tuple[int, int], texts: tuple[str, ...], numbers: bool = False) -> NameMap:
    # ``stamp`` (mtime, size) is only part of the cache key, as in introspect's and the value index's caches
    from sqlcoach.schema.introspect import introspect

    schema = introspect(db_path, sample_values=0)
    nm = NameMap(schema)
    looks_like = _LOOKS_LIKE_NUMBERS if numbers else _LOOKS_LIKE
    for t in schema.tables:
        if looks_like.fullmatch(t.name) or any(looks_like.fullmatch(c.name) for c in t.columns):
            raise DataError(f"schema names look like anonymisation placeholders (t1, c1, v1{', n1' if numbers else ''}) "
                            f"in table {t.name!r}", db_path)
    for i, t in enumerate(schema.tables, 1):
        nm.tables[t.name.lower()] = f"t{i}"
        nm.back[f"t{i}"] = t.name
    k = 0
    for t in schema.tables:
        for c in t.columns:
            low = c.name.lower()
            if low in nm.columns or low in nm.tables:
                continue
            if low.endswith("_id") and low[:-3] in nm.tables:
                ph = nm.tables[low[:-3]] + "_id"
            else:
                k += 1
                ph = f"c{k}"
            nm.columns[low] = ph
            nm.back[ph] = c.name
    taken = set(nm.tables) | set(nm.columns)
    for j, v in enumerate(_link_values(db_path, list(texts), taken), 1):
        nm.values[v] = f"v{j}"
        nm.back[f"v{j}"] = v
    if numbers:
        # after the values: a number inside a linked value ("Route 66") is the value's, not a number
        for text in texts:
            for m in _NUMBER.finditer(_values_replaced(text, dict.fromkeys(nm.values, " "))):
                if m.group(0) not in nm.numbers:
                    ph = f"n{len(nm.numbers) + 1}"
                    nm.numbers[m.group(0)] = ph
                    nm.back[ph] = m.group(0)
    return nm


def name_map(example: Example, numbers: bool = False) -> NameMap:
    """The NameMap of ``example`` (its database's schema; values its question, evidence and earlier
    turns mention; with ``numbers``, also the numbers they write in digits). Cached. DataError when
    the example has no database or it cannot be read."""
    if not example.db_path:
        raise DataError(f"example {example.id}: the anonymized template needs the database (db_path)")
    from sqlcoach.schema.introspect import resolve_db_file

    texts = (example.question, example.evidence or "", *(t.question for t in example.turns))
    st = resolve_db_file(example.db_path).stat()
    return _build(str(example.db_path), (st.st_mtime_ns, st.st_size), texts, numbers)


def restore_sql(sql: str, example: Any, numbers: bool = False) -> str:
    """``sql`` with ``example``'s placeholders mapped back."""
    return name_map(example, numbers).decode_sql(sql)
