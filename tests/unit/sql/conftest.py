"""Shared fixtures for the sql tests: a small Spider-style schema built in memory (its entry and
the fixture reader live in sql_helpers.py, which the tests import by name)."""

from __future__ import annotations

import pytest
from sql_helpers import CONCERT_ENTRY

from sqlcoach.sql.tables import schema_from_entry


@pytest.fixture(scope="session")
def concert_db():
    """The in-memory schema every EM fixture line is scored against."""
    return schema_from_entry(CONCERT_ENTRY)
