"""Helpers shared by the reward callables: completion text, dataset columns, names.

TRL calls every reward function as ``f(prompts=..., completions=..., completion_ids=..., **columns)``
where each dataset column is a list aligned with ``completions`` (one entry per completion, the
prompt's row repeated once per generation). Completions are plain strings for standard datasets
and ``[{"role": "assistant", "content": ...}]`` lists for conversational ones.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Sequence

from sqlcoach.errors import ConfigError
from sqlcoach.sql.extract import clean_sql, extract_sql


def completion_text(completion: Any) -> str:
    """The text of one completion, standard or conversational.

    Guarantees a ``str``: a string is returned as is; a conversational completion (a list of
    ``{"role", "content"}`` messages, or a single such dict) gives the content of its last
    assistant message (the last message when none says ``assistant``); anything else, including
    ``None`` and content that is not text, gives ``""``.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)) and completion:
        messages = [m for m in completion if isinstance(m, dict)]
        chosen = None
        for message in reversed(messages):
            if message.get("role") == "assistant":
                chosen = message
                break
        if chosen is None and messages:
            chosen = messages[-1]
        if chosen is not None:
            content = chosen.get("content")
            if isinstance(content, str):
                return content
            # Multimodal-style content: [{"type": "text", "text": ...}, ...]
            if isinstance(content, list):
                return "".join(
                    part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
    return ""


@lru_cache(maxsize=4096)
def text_sql(text: str) -> str:
    """The SQL of a completion's text: ``extract_sql``, else the whole text when it is itself one
    statement (``clean_sql``); ``""`` when neither finds SQL. Memoised: a GRPO group often repeats
    a completion, and the complexity and execution rewards read the same completions."""
    sql = extract_sql(text)
    if sql:
        return sql
    # extract_sql finds bare SELECT/WITH text but not a bare INSERT/UPDATE/DELETE.
    try:
        return clean_sql(text[:200_000].replace("\x00", ""))
    except Exception:  # noqa: BLE001 - hostile text must never crash a run: no SQL found
        return ""


def completion_sql(completion: Any, names: Any = None) -> str:
    """``text_sql(completion_text(completion))``: the SQL of a standard or conversational completion.

    ``names`` is the row's ``sql_names`` column (JSON placeholder -> name, written for the
    ``anonymized`` template): when given, placeholders in the SQL are mapped back so that the SQL
    runs on the real database."""
    sql = text_sql(completion_text(completion))
    if names:
        from sqlcoach.prompts.anonymize import decode_sql

        sql = decode_sql(sql, names)
    return sql


def names_of(columns: dict[str, Any], n: int, *, reward: str) -> list[Any]:
    """The optional ``sql_names`` column as a list of length ``n`` (``None`` where absent)."""
    return column(columns, "sql_names", n, reward=reward, required=False)


def column(columns: dict[str, Any], name: str, n: int, *, reward: str, required: bool = True) -> list[Any]:
    """The dataset column ``name`` as a list of length ``n``.

    A scalar (a value that is not a list/tuple) is broadcast to every completion, so that direct
    callers can pass one ``db_path`` for a whole batch. Raises ``ConfigError`` when a required
    column is missing or its length differs from the number of completions; returns ``[None] * n``
    for a missing optional column.
    """
    if name not in columns or columns[name] is None:
        if required:
            raise ConfigError(
                f"reward {reward!r} needs the dataset column {name!r} (one value per completion); "
                f"columns passed: {sorted(k for k in columns if k not in _TRAINER_KEYS)}"
            )
        return [None] * n
    value = columns[name]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ConfigError(f"reward {reward!r}: column {name!r} has {len(values)} values for {n} completions")
    return values


# Keyword arguments the trainer adds next to the dataset columns.
_TRAINER_KEYS = frozenset({"trainer_state", "log_extra", "log_metric", "environments", "completion_ids", "prompts"})


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def words(text: str) -> list[str]:
    """Whitespace-separated words of ``text`` that contain at least one letter or digit."""
    return [w for w in text.split() if any(ch.isalnum() for ch in w)]


def identifiers(text: str) -> set[str]:
    """Lower-cased identifier-like tokens of ``text`` (letters, digits, underscore)."""
    return {m.group(0).lower() for m in _WORD.finditer(text)}
