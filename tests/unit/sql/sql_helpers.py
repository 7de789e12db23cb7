"""What the sql tests import by name: the Spider-style schema entry and the fixture-file reader.
(A module of its own, not conftest.py: tests/unit/metrics has a conftest too, and ``from conftest
import ...`` found the other one when both folders ran in one pytest call.)"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sql"

# concert_singer-like: column index 0 is "*", then the columns table by table.
CONCERT_ENTRY = {
    "db_id": "concert_mini",
    "table_names_original": ["stadium", "singer", "concert", "singer_in_concert"],
    "column_names_original": [
        [-1, "*"],
        [0, "Stadium_ID"], [0, "Name"], [0, "Capacity"], [0, "Location"],  # 1-4
        [1, "Singer_ID"], [1, "Name"], [1, "Country"], [1, "Age"], [1, "Is_male"],  # 5-9
        [2, "concert_ID"], [2, "concert_Name"], [2, "Theme"], [2, "Stadium_ID"], [2, "Year"],  # 10-14
        [3, "concert_ID"], [3, "Singer_ID"],  # 15-16
    ],
    "primary_keys": [1, 5, 10, [15, 16]],
    "foreign_keys": [[13, 1], [15, 10], [16, 5]],
}


def fixture_lines(name: str, fields: int) -> list[tuple[int, list[str]]]:
    """(line number, fields) of a `` ; ``-separated fixture file, comments and blanks skipped."""
    out = []
    for number, line in enumerate((FIXTURES / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(" ; ")]
        assert len(parts) == fields, f"{name}:{number}: expected {fields} fields, got {len(parts)}"
        out.append((number, parts))
    return out
