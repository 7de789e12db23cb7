"""Reading the official scorers' input files.

Spider / test-suite format
    GOLD: one ``SQL<TAB>db_id`` per line. PRED: one SQL per line, same order.
    Single-turn files: a blank PRED line is an *empty prediction* (scored ``no_sql``), never a crash
    (the official scorer crashes on it). Multi-turn files (SParC, CoSQL): interactions are separated
    by blank lines in both GOLD and PRED; a GOLD file with a blank line between two non-blank lines
    is taken as multi-turn.

BIRD format
    GOLD: ``SQL<TAB>db_id`` lines as above. PRED may also be BIRD's ``predict_dev.json``: a JSON
    object ``{"0": "SQL\\t----- bird -----\\tdb_id", ...}``, so a BIRD user switches with one flag.

Problems (a GOLD line without a tab, a PRED file with too many lines) raise ``DataError`` with the
file and line; they are not silently skipped, because every later line would be misaligned.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlcoach.errors import DataError

BIRD_SEPARATOR = "\t----- bird -----\t"


@dataclass(frozen=True)
class GoldItem:
    """One gold query; ``interaction``/``turn`` locate it in a multi-turn file (0-based)."""

    sql: str
    db_id: str
    line: int
    interaction: int = 0
    turn: int = 0


def _read_lines(path: str | Path) -> list[str]:
    """Lines of a file, ``-`` for standard input; pipes and process substitutions work too."""
    if str(path) == "-":
        text = sys.stdin.read()
    else:
        p = Path(path)
        if not p.exists() or p.is_dir():
            raise DataError("file not found", str(p))
        # newline="" keeps a stray "\r" inside a line from being taken as a line break; then strip it.
        with open(p, encoding="utf-8", errors="replace", newline="") as f:
            text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start a new one
    return [ln.rstrip("\r") for ln in lines]


def _is_multi_turn(lines: list[str]) -> bool:
    """A blank line with non-blank lines on both sides marks interaction boundaries."""
    seen_content = False
    pending_blank = False
    for ln in lines:
        if ln.strip():
            if pending_blank and seen_content:
                return True
            seen_content = True
            pending_blank = False
        else:
            pending_blank = True
    return False


def read_gold(path: str | Path) -> tuple[list[GoldItem], bool]:
    """Return (gold items, multi_turn). Raises DataError on a line without ``<TAB>db_id``."""
    lines = _read_lines(path)
    multi = _is_multi_turn(lines)
    items: list[GoldItem] = []
    interaction, turn = 0, 0
    for lineno, ln in enumerate(lines, start=1):
        if not ln.strip():
            if multi and turn > 0:
                interaction, turn = interaction + 1, 0
            continue
        if "\t" not in ln:
            raise DataError("gold line must be 'SQL<TAB>db_id'", str(path), lineno)
        sql, db_id = ln.rsplit("\t", 1)
        db_id = db_id.strip()
        if not db_id:
            raise DataError("empty db_id after the tab", str(path), lineno)
        items.append(GoldItem(sql.strip(), db_id, lineno, interaction, turn))
        turn += 1
    return items, multi


def _refuse_records(path: Path, lines: list[str]) -> None:
    """A JSON-lines file of records (``sqlcoach predict``'s ``X.jsonl``) is not a prediction file:
    read as SQL, every line would be scored ``parse_error`` and the EX would be a silent 0."""
    first = next((ln for ln in lines if ln.strip()), "")
    if not first.lstrip().startswith("{"):
        return
    try:
        record = json.loads(first)
    except ValueError:
        return
    if isinstance(record, dict):
        beside = path.with_suffix(".sql")
        hint = f" ({beside} is beside it)" if path.suffix == ".jsonl" and beside.exists() else ""
        raise DataError(
            "this is a file of JSON records, not one SQL per line: pass the .sql file that "
            f"`sqlcoach predict` writes beside its .jsonl{hint}; a sampled run's .jsonl goes to --samples",
            str(path), lines.index(first) + 1,
        )


def read_pred(path: str | Path, gold: list[GoldItem], multi_turn: bool) -> tuple[list[str], list[str]]:
    """Return (predictions aligned with ``gold``, warnings).

    Single-turn: line i is the prediction for gold i; blank lines are empty predictions; missing
    trailing lines are empty predictions (with a warning); extra non-blank lines are an error.
    Multi-turn: interactions are matched in order; a short interaction is padded with empty
    predictions (with a warning).
    """
    p = Path(path)
    if p.suffix == ".json":
        return _read_bird_json(p, gold)
    lines = _read_lines(p)
    _refuse_records(p, lines)
    warnings: list[str] = []
    if not multi_turn:
        preds = [ln.strip() for ln in lines]
        while len(preds) > len(gold) and not preds[-1]:
            preds.pop()
        if len(preds) > len(gold):
            raise DataError(
                f"{len(preds)} predictions for {len(gold)} gold queries", str(p), len(gold) + 1
            )
        if len(preds) < len(gold):
            warnings.append(
                f"{p}: {len(preds)} predictions for {len(gold)} gold queries; "
                f"the last {len(gold) - len(preds)} count as empty predictions"
            )
            preds += [""] * (len(gold) - len(preds))
        return preds, warnings

    # multi-turn: group non-blank lines into interactions; a line that is only an SQL comment
    # (``sqlcoach predict`` writes ``-- no SQL``) is an empty prediction that keeps its place
    groups: list[list[str]] = [[]]
    for ln in lines:
        if ln.strip():
            groups[-1].append("" if ln.strip().startswith("--") else ln.strip())
        elif groups[-1]:
            groups.append([])
    if not groups[-1]:
        groups.pop()
    n_inter = (gold[-1].interaction + 1) if gold else 0
    sizes = [0] * n_inter
    for g in gold:
        sizes[g.interaction] += 1
    if len(groups) > n_inter:
        raise DataError(f"{len(groups)} interactions predicted for {n_inter} in the gold", str(p))
    preds: list[str] = []
    for k, size in enumerate(sizes):
        got = groups[k] if k < len(groups) else []
        if len(got) > size:
            raise DataError(
                f"interaction {k + 1} has {len(got)} predictions for {size} gold turns", str(p)
            )
        if len(got) < size:
            warnings.append(
                f"{p}: interaction {k + 1} has {len(got)} predictions for {size} gold turns; "
                "the missing turns count as empty predictions"
            )
        preds += got + [""] * (size - len(got))
    return preds, warnings


def _read_bird_json(p: Path, gold: list[GoldItem]) -> tuple[list[str], list[str]]:
    if not p.is_file():
        raise DataError("file not found", str(p))
    try:
        data = json.loads(p.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg}", str(p), exc.lineno) from None
    if not isinstance(data, dict):
        raise DataError("expected BIRD's {index: 'SQL\\t----- bird -----\\tdb_id'} object", str(p))
    warnings: list[str] = []
    preds = [""] * len(gold)
    for key, value in data.items():
        try:
            i = int(key)
        except ValueError:
            warnings.append(f"{p}: key {key!r} is not an index; ignored")
            continue
        if not 0 <= i < len(gold):
            warnings.append(f"{p}: index {i} is outside the {len(gold)} gold queries; ignored")
            continue
        text = value if isinstance(value, str) else ""
        preds[i] = text.split(BIRD_SEPARATOR)[0].strip()
    missing = sum(1 for i in range(len(gold)) if str(i) not in data)
    if missing:
        warnings.append(f"{p}: {missing} indices missing; they count as empty predictions")
    return preds, warnings


def read_difficulties(path: str | Path, n: int) -> list[str | None]:
    """Per-example difficulty from a BIRD-style JSON list (``difficulty`` field) or a text file
    with one label per line. Returns ``None`` entries when the file has no such field."""
    p = Path(path)
    if p.suffix == ".json":
        if not p.is_file():
            raise DataError("file not found", str(p))
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc.msg}", str(p), exc.lineno) from None
        if not isinstance(data, list):
            raise DataError("expected a JSON list of examples", str(p))
        out = [(d.get("difficulty") if isinstance(d, dict) else None) for d in data]
    else:
        out = [ln.strip() or None for ln in _read_lines(p)]
    if len(out) != n:
        raise DataError(f"{len(out)} difficulty entries for {n} gold queries", str(p))
    return out
