"""SQL out of raw model text. Never raises; returns "" when nothing SQL-like is found.

Tried in order, the first that yields SQL wins:

1. the last ``<answer>...</answer>`` (its inside is extracted again: it usually holds a ```sql
   block), then the last ``<sql>...</sql>``;
2. the last ```sql fenced block, else the last fenced block of any language whose body looks
   like SQL; a final ```sql fence left open (generation cut off) counts up to the end;
3. the text after the last ``###Response:`` (DB-GPT-Hub's cue);
4. the last line starting with ``SQL:`` / ``SQL query:`` / ``Query:`` (the rest of that line and
   the lines after it up to a blank line);
5. the first line that starts with ``SELECT`` or ``WITH``, up to a blank line.

The SQL found is cleaned: whole-line ``--`` comments dropped, only the first statement kept
(``;`` inside string literals respected), trailing ``;`` and surrounding whitespace removed. It
must contain a SQL keyword (SELECT, WITH, INSERT, ...) or the result is "". Write statements are
*returned* (extraction does not judge); the executor refuses them.
"""

from __future__ import annotations

import re
import sqlite3

_SQL_START = re.compile(
    r"^\s*\(?\s*(SELECT|WITH|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|VALUES|EXPLAIN)\b",
    re.IGNORECASE,
)
_SELECT_LINE = re.compile(r"^[ \t]*\(?[ \t]*(SELECT|WITH)\b", re.IGNORECASE | re.MULTILINE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_OPEN_SQL_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)[^\n]*\n(.*)\Z", re.DOTALL | re.IGNORECASE)
_SQL_PREFIX = re.compile(r"^[ \t]*(?:final[ \t]+)?(?:SQL(?:[ \t]+query)?|SQLite|Query)[ \t]*:[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
_PROSE_LINE = re.compile(
    r"^\s*(?:This|The|Note|Explanation|Here|It|I|We|In|That|These|Answer|Output|Result)\b[^;]*$",
    re.IGNORECASE,
)
_MAX_INPUT = 200_000  # longer raw text is cut: extraction must stay fast on runaway generations


def _last_tag(text: str, tag: str) -> str | None:
    matches = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL | re.IGNORECASE)
    if matches:
        return matches[-1]
    # an opened, never closed tag (generation cut off): take the rest
    m = re.search(rf"<{tag}>(?!.*<{tag}>)(.*)\Z", text, re.DOTALL | re.IGNORECASE)
    return m.group(1) if m else None


def first_statement(sql: str) -> str:
    """The first complete statement of ``sql`` (semicolons in literals kept), without ``;``."""
    acc = ""
    for piece in sql.split(";"):
        acc = f"{acc};{piece}" if acc else piece
        if sqlite3.complete_statement(acc + ";"):
            return acc.strip()
    return acc.strip()


def clean_sql(sql: str) -> str:
    """Drop whole-line comments, keep the first statement, strip; "" unless it looks like SQL."""
    lines = [ln for ln in sql.replace("\r\n", "\n").split("\n") if not ln.strip().startswith("--")]
    text = first_statement("\n".join(lines).strip()).strip().strip("`").strip()
    return text if _SQL_START.match(text) else ""


def _until_blank(text: str) -> str:
    out = []
    for i, line in enumerate(text.split("\n")):
        if not line.strip():
            break
        if i > 0 and _PROSE_LINE.match(line):
            break
        out.append(line)
    return "\n".join(out)


def _from_fences(text: str) -> str:
    blocks = _FENCE.findall(text)
    for lang, body in reversed(blocks):
        if lang.lower() in ("sql", "sqlite"):
            sql = clean_sql(body)
            if sql:
                return sql
    m = _OPEN_SQL_FENCE.search(text)
    if m and "```" not in m.group(1):
        sql = clean_sql(m.group(1))
        if sql:
            return sql
    for _lang, body in reversed(blocks):
        sql = clean_sql(body)
        if sql:
            return sql
    return ""


def _plain(text: str) -> str:
    matches = list(_SQL_PREFIX.finditer(text))
    for m in reversed(matches):
        rest = m.group(1) + text[m.end() :]
        sql = clean_sql(_until_blank(rest.strip("\n")))
        if sql:
            return sql
    m = _SELECT_LINE.search(text)
    if m:
        return clean_sql(_until_blank(text[m.start() :]))
    return ""


def _extract(text: str) -> str:
    for tag in ("answer", "sql"):
        inner = _last_tag(text, tag)
        if inner is not None:
            sql = _extract(inner) if tag == "answer" else (_from_fences(inner) or clean_sql(inner))
            if sql:
                return sql
    sql = _from_fences(text)
    if sql:
        return sql
    idx = text.rfind("###Response:")
    if idx >= 0:
        tail = text[idx + len("###Response:") :]
        sql = _plain(tail) or clean_sql(_until_blank(tail.strip()))
        if sql:
            return sql
    return _plain(text)


def extract_sql(text: str) -> str:
    """The SQL in raw model ``text`` (see module docstring for the rules); "" when none.

    Accepts anything: bytes are decoded as UTF-8 with replacement, other non-strings give "".
    """
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", errors="replace")
        if not isinstance(text, str):
            return ""
        text = text[:_MAX_INPUT].replace("\x00", "")
        return _extract(text)
    except Exception:  # noqa: BLE001 - hostile text must never crash a run; "" is the no_sql class
        return ""
