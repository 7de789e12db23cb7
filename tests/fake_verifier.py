"""A stand-in for a trained verifier (``sqlcoach.models.verifier.Verifier``): the same ``score``
method, scores from a table keyed on the SQL (0.0 for any other), and a record of what it was asked
to read. Shared by the selection, serve and reward tests."""

from __future__ import annotations


class FakeVerifier:
    """Scores a candidate by a table keyed on its SQL; records what it read."""

    def __init__(self, by_sql):
        self.by_sql = by_sql
        self.read = []

    def score(self, items):
        self.read.extend(items)
        return [self.by_sql.get(sql, 0.0) for _, _, sql, _ in items]
