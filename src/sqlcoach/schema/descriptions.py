"""BIRD's column and value descriptions: ``<db folder>/database_description/<table>.csv``.

Each BIRD database folder holds one CSV per table with the header ``original_column_name,
column_name, column_description, data_format, value_description`` (the files are not all UTF-8:
some are Latin-1, some start with a byte-order mark; both are read). ``read_descriptions`` maps
``table -> column -> (description, value description)``, both lower-cased keys, texts with their
whitespace collapsed and cut to ``max_chars``; a description that only repeats the column's name
is dropped (it tells a model nothing). A folder without the files gives ``{}``; an unreadable
file is skipped (descriptions are an aid, never a reason for a prompt to fail).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

FOLDER = "database_description"


def _text(value: str | None, max_chars: int) -> str:
    text = re.sub(r"\s+", " ", (value or "")).strip()
    return text if len(text) <= max_chars else text[: max_chars - 3].rstrip() + "..."


def _read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    for enc in ("utf-8-sig", "latin-1"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    reader = csv.DictReader(io.StringIO(text))
    return [{(k or "").strip().lower(): (v or "") for k, v in row.items()} for row in reader]


def read_descriptions(db_folder: str | Path, max_chars: int = 200) -> dict[str, dict[str, tuple[str, str]]]:
    """``{table: {column: (description, value_description)}}`` from ``db_folder/database_description``."""
    folder = Path(db_folder) / FOLDER
    if not folder.is_dir():
        return {}
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for f in sorted(folder.glob("*.csv")):
        try:
            rows = _read_csv(f)
        except (OSError, csv.Error):
            continue
        cols: dict[str, tuple[str, str]] = {}
        for row in rows:
            name = _text(row.get("original_column_name"), 200)
            if not name:
                continue
            desc = _text(row.get("column_description"), max_chars)
            if desc.lower() in (name.lower(), _text(row.get("column_name"), 200).lower()):
                desc = ""
            vdesc = _text(row.get("value_description"), max_chars)
            if desc or vdesc:
                cols[name.lower()] = (desc, vdesc)
        if cols:
            out[f.stem.strip().lower()] = cols
    return out


def stamp(db_folder: str | Path) -> int:
    """A number that changes when the description files change (part of the schema cache key)."""
    folder = Path(db_folder) / FOLDER
    if not folder.is_dir():
        return 0
    return sum(f.stat().st_mtime_ns + f.stat().st_size for f in folder.glob("*.csv"))
