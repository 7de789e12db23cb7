"""One rendering of a query's execution result, within a budget: what a model or a person reads.

``render_result(result, budget=..., length=...)`` is the one function that turns an
``ExecResult`` (or ``None`` for a query that was never run) into text. The verifier's input, the
agent's observation and the web pages all call it, so they read the same thing.

What it writes (each part only while it fits):

* success: ``columns (3): name | age | city``, then ``rows: 17``, then the first rows, one line
  each, cells joined by `` | ``, then ``... 12 more rows`` for the rows that were left out;
  an empty result is ``rows: 0 (empty result)``;
* failure: ``error: exec_error: no such column: nme`` (the error class from
  ``sqlcoach.types.ERROR_CLASSES`` and the sandbox's message); a timeout is
  ``error: timeout: the query ran past its time limit`` plus the message when there is one;
* not run (``None``): ``not run: no SQL``.

Cells: ``NULL`` for None; ``<blob N bytes>`` for bytes (never their content: it is arbitrary
binary); floats with up to 6 significant digits (``repr`` would spend the budget on binary noise
such as ``0.30000000000000004``); text with newlines and tabs escaped (``\\n``, ``\\t``) so one row
stays one line, and any cell longer than ``max_cell`` characters cut with ``...``.

The budget guarantee: ``length(render_result(r, budget=b, length=length)) <= b`` for every
result and every ``b >= 0`` (``length`` defaults to ``len``, a character budget; pass
``token_length(tokenizer)`` for a token budget). Rows are added whole while they fit; when even
the header does not fit it is cut, and the text is ``""`` when nothing fits. A ``length``
function that is not monotone in the text (token counts can shrink when text is appended) is
still safe: the final text is measured, and cut again until it fits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlcoach.types import ExecResult

#: Length of a piece of text in the unit of the budget (characters, tokens).
LengthFn = Callable[[str], int]

#: What ends a cell or a line cut to fit.
ELLIPSIS = "..."
SEP = " | "


def token_length(tokenizer: Any) -> LengthFn:
    """A ``LengthFn`` counting ``tokenizer``'s tokens (no special tokens): any object with
    ``encode(text, add_special_tokens=False)``, as Hugging Face tokenizers have."""

    def length(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return length


def format_cell(value: Any, max_cell: int = 64) -> str:
    """One value as text (see the module docstring for the rules), at most ``max_cell`` characters."""
    if value is None:
        text = "NULL"
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = f"<blob {len(bytes(value))} bytes>"
    elif isinstance(value, bool):  # before int: bool is an int subclass
        text = str(int(value))
    elif isinstance(value, float):
        text = format(value, ".6g")
    else:
        text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return _cut_chars(text, max_cell)


def render_result(
    result: ExecResult | None,
    *,
    budget: int = 1000,
    length: LengthFn | None = None,
    max_rows: int = 10,
    max_cell: int = 64,
    max_columns: int = 32,
) -> str:
    """``result`` as text of at most ``budget`` units of ``length`` (characters by default).

    ``max_rows``: rows shown at most (fewer when the budget is spent first); ``max_cell``:
    characters per cell; ``max_columns``: column names and cells shown per row, the rest
    summarised as ``... (+N columns)``. Never raises for any value a query can return."""
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    measure: LengthFn = length or len
    if result is None:
        return _fit("not run: no SQL", budget, measure)
    if result.error is not None or result.rows is None:
        return _fit(_error_text(result), budget, measure)
    rows = result.rows
    header = [_columns_line(result.columns, rows, max_cell, max_columns),
              f"rows: {len(rows)}" + (" (empty result)" if not rows else "")]
    text = "\n".join(header)
    if measure(text) > budget:
        return _fit(text, budget, measure)
    shown = 0
    for row in rows[:max_rows]:
        more = len(rows) - shown - 1
        candidate = "\n".join([text, _row_line(row, max_cell, max_columns)] + ([_more(more)] if more else []))
        if measure(candidate) > budget:
            break
        text = "\n".join([text, _row_line(row, max_cell, max_columns)])
        shown += 1
    left = len(rows) - shown
    if left:
        with_more = f"{text}\n{_more(left)}"
        # The trailer says rows were left out; if even it does not fit, the row count above says so.
        text = with_more if measure(with_more) <= budget else text
    return _fit(text, budget, measure)


def _more(left: int) -> str:
    return f"... {left} more row{'s' if left != 1 else ''}"


def _error_text(result: ExecResult) -> str:
    err = result.error or "exec_error"
    msg = " ".join((result.message or "").split())
    if err == "timeout":
        return "error: timeout: the query ran past its time limit" + (f" ({msg})" if msg else "")
    return f"error: {err}: {msg}" if msg else f"error: {err}"


def _columns_line(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_cell: int, max_columns: int) -> str:
    names = [format_cell(c, max_cell) for c in columns]
    if not names and rows:
        names = [f"col{i + 1}" for i in range(len(rows[0]))]  # a result without names (tests, DML)
    return f"columns ({len(names)}): " + _joined(names, max_columns)


def _row_line(row: Sequence[Any], max_cell: int, max_columns: int) -> str:
    return _joined([format_cell(v, max_cell) for v in row], max_columns)


def _joined(cells: list[str], max_columns: int) -> str:
    if len(cells) > max_columns:
        return SEP.join(cells[:max_columns]) + f"{SEP}... (+{len(cells) - max_columns} columns)"
    return SEP.join(cells)


def _cut_chars(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return text[:limit]
    return text[: limit - len(ELLIPSIS)] + ELLIPSIS


def _fit(text: str, budget: int, measure: LengthFn) -> str:
    """``text`` when it fits, else its longest prefix (ending with ``...`` when that fits too)
    that does; ``""`` when nothing does. Binary search on the prefix, then a check of the result."""
    if measure(text) <= budget:
        return text
    lo, hi = 0, len(text)  # the longest fitting prefix length lies in [lo, hi)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid].rstrip() + ELLIPSIS) <= budget:
            lo = mid
        else:
            hi = mid - 1
    out = text[:lo].rstrip() + ELLIPSIS if lo else ""
    # A length function that is not monotone can defeat the search: shrink until it really fits.
    while out and measure(out) > budget:
        out = out[:-1]
    return out
