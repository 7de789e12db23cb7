"""Text-level rewrites the execution scorer applies before running SQL.

They work on the text with regular expressions and import no parser, so that the evaluation's
main process can start executing before sqlglot is loaded (parsing runs in parallel, elsewhere).
``sqlcoach.sql.rewrite`` re-exports them next to the parser-based rewrites.
"""

from __future__ import annotations

import re

# A quoted region ('...', "...", `...`, [...]) or a bare DISTINCT word; only the latter is removed.
_DISTINCT = re.compile(
    r"""('(?:[^']|'')*'?|"(?:[^"]|"")*"?|`[^`]*`?|\[[^\]]*\]?)|(?<![\w.$])(distinct)(?![\w$])""",
    re.IGNORECASE,
)
_WS = re.compile(r"\s+")


def postprocess(sql: str) -> str:
    """The official post-processing: ``> =``, ``< =`` and ``! =`` joined. Nothing else changes."""
    return sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")


def strip_distinct(sql: str) -> str:
    """``sql`` with every DISTINCT keyword removed (outside quotes), the rest of the text kept.

    ``SELECT DISTINCT a`` -> ``SELECT  a``; ``count(DISTINCT a)`` -> ``count( a)``. A DISTINCT inside
    a string, a quoted name, or as part of a longer name (``distinct_id``) is kept.
    """

    def repl(match: re.Match) -> str:
        return match.group(1) if match.group(1) is not None else ""

    return _DISTINCT.sub(repl, sql)


def has_order_by(sql: str) -> bool:
    """True when "order by" occurs anywhere in ``sql`` (case and whitespace insensitive), as the
    official decides whether row order matters."""
    return "order by" in _WS.sub(" ", sql.lower())
