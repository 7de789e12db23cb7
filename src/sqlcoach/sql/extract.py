"""SQL out of raw model text. Never raises; returns "" when nothing SQL-like is found.

Tried in order, the first that yields SQL wins:

1. the last ``<answer>...</answer>`` (its inside is extracted again: it usually holds a ```sql
   block), then the last ``<solution>...</solution>`` (the SQL agent's final answer,
   ``sqlcoach.prompts.agent``: an agent-trained model answering in one pass writes it), then the
   last ``<sql>...</sql>``;
2. the last ```sql fenced block, else the last fenced block of any language whose body looks
   like SQL; a final ```sql fence left open (generation cut off) counts up to the end;
3. the text after the last ``###Response:`` (DB-GPT-Hub's cue);
4. the last line starting with ``SQL:`` / ``SQL query:`` / ``Query:`` (the rest of that line and
   the lines after it up to a blank line);
5. the first line that starts with ``SELECT`` or ``WITH``, up to a blank line.

The SQL found is cleaned: whole-line ``--`` comments dropped, only the first statement kept
(``;`` inside literals and comments respected), trailing ``;`` and surrounding whitespace removed. It
must contain a SQL keyword (SELECT, WITH, INSERT, ...) or the result is "". Write statements are
*returned* (extraction does not judge); the executor refuses them.
"""

from __future__ import annotations

import re

_SQL_START = re.compile(
    r"^\s*(?:\(\s*)?(SELECT|WITH|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|VALUES|EXPLAIN)\b",
    re.IGNORECASE,
)
_SELECT_LINE = re.compile(r"^[ \t]*(?:\([ \t]*)?(SELECT|WITH)\b", re.IGNORECASE | re.MULTILINE)
_FENCE_LANG = re.compile(r"[ \t]*([A-Za-z0-9_+-]*)")
_SQL_PREFIX = re.compile(r"^[ \t]*(?:final[ \t]+)?(?:SQL(?:[ \t]+query)?|SQLite|Query)[ \t]*:[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
_PROSE_LINE = re.compile(
    r"^\s*(?:This|The|Note|Explanation|Here|It|I|We|In|That|These|Answer|Output|Result)\b[^;]*$",
    re.IGNORECASE,
)
_MAX_INPUT = 200_000
_MAX_PREFIX_TRIES = 20  # longer raw text is cut: extraction must stay fast on runaway generations


def _last_tag(text: str, tag: str) -> str | None:
    """Inside of the last ``<tag>...</tag>``; else, for an opened and never closed tag (generation
    cut off), the rest after the last ``<tag>``; else None. Linear time (str.rfind, no regex
    backtracking: runaway generations repeat tags thousands of times)."""
    low = text.lower()
    open_t, close_t = f"<{tag}>", f"</{tag}>"
    end = low.rfind(close_t)
    if end >= 0:
        start = low.rfind(open_t, 0, end)
        if start >= 0:
            return text[start + len(open_t) : end]
    start = low.rfind(open_t)
    if start >= 0 and start > end:
        return text[start + len(open_t) :]
    return None


def first_statement(sql: str) -> str:
    """The first statement of ``sql`` without its ``;``: a linear scan that skips semicolons inside
    quotes (', ", `, [...]) and comments (-- and /* */)."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            j = sql.find(ch, i + 1)
            while j != -1 and j + 1 < n and sql[j + 1] == ch:  # doubled quote = escaped quote
                j = sql.find(ch, j + 2)
            if j == -1:
                break  # unterminated literal: the rest belongs to it
            i = j + 1
        elif ch == "[":
            j = sql.find("]", i + 1)
            i = n if j == -1 else j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j == -1 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j == -1 else j + 2
        elif ch == ";":
            return sql[:i].strip()
        else:
            i += 1
    return sql.strip()


def clean_sql(sql: str) -> str:
    """Drop whole-line comments, keep the first statement, strip; "" unless it looks like SQL."""
    lines = [ln for ln in sql.replace("\r\n", "\n").split("\n") if not ln.strip().startswith("--")]
    text = first_statement("\n".join(lines).strip()).strip().strip("`").strip()
    return text if _SQL_START.match(text) else ""


def _until_blank(text: str) -> str:
    """Lines from the start of ``text`` up to a blank line or a prose line (not the first)."""
    out = []
    pos = 0
    n = len(text)
    while pos <= n:
        nl = text.find("\n", pos)
        line = text[pos:] if nl == -1 else text[pos:nl]
        if not line.strip():
            break
        if out and _PROSE_LINE.match(line):
            break
        out.append(line)
        if nl == -1:
            break
        pos = nl + 1
    return "\n".join(out)


def fenced_blocks(text: str) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
    """``([(lang, body), ...], open_tail)``: the closed fenced blocks in order, and the block a
    final unclosed fence opens (``None`` when there is none). A fence whose line has no newline
    after it opens nothing. Linear time: str.find, no regex backtracking."""
    blocks: list[tuple[str, str]] = []
    pos = 0
    while True:
        p = text.find("```", pos)
        if p < 0:
            return blocks, None
        nl = text.find("\n", p + 3)
        if nl < 0:
            return blocks, None
        m = _FENCE_LANG.match(text, p + 3, nl)
        lang = m.group(1) if m else ""
        q = text.find("```", nl + 1)
        if q < 0:
            return blocks, (lang, text[nl + 1 :])
        blocks.append((lang, text[nl + 1 : q]))
        pos = q + 3


def _from_fences(text: str) -> str:
    blocks, tail = fenced_blocks(text)
    for lang, body in reversed(blocks):
        if lang.lower() in ("sql", "sqlite"):
            sql = clean_sql(body)
            if sql:
                return sql
    if tail is not None and tail[0].lower() in ("sql", "sqlite"):
        sql = clean_sql(tail[1])
        if sql:
            return sql
    for _lang, body in reversed(blocks):
        sql = clean_sql(body)
        if sql:
            return sql
    return ""


def _plain(text: str) -> str:
    matches = list(_SQL_PREFIX.finditer(text))
    # the last few prefixed lines only: a runaway "SQL: ..." repetition must stay linear
    for m in reversed(matches[-_MAX_PREFIX_TRIES:]):
        rest = m.group(1) + text[m.end() :]
        sql = clean_sql(_until_blank(rest.lstrip("\n")))
        if sql:
            return sql
    m = _SELECT_LINE.search(text)
    if m:
        return clean_sql(_until_blank(text[m.start() :]))
    return ""


def _extract(text: str) -> str:
    for tag in ("answer", "solution", "sql"):
        inner = _last_tag(text, tag)
        if inner is not None:
            sql = _extract(inner) if tag != "sql" else (_from_fences(inner) or clean_sql(inner))
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
