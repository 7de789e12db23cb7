"""Exceptions shared by all modules."""

from __future__ import annotations


class SqlcoachError(Exception):
    """An error the user can act on; the CLI prints it without a traceback and exits 2."""


class DataError(SqlcoachError):
    """A data file is missing or malformed. ``path`` and ``line`` say where, when known."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ConfigError(SqlcoachError):
    """A configuration value breaks a rule; the message says which rule."""
