"""The one error root of sqlcoach and its few leaves.

Library code raises one of these where a *user's* input is at fault (a config value, a data file,
a database, a model folder); the CLI prints the message on one line and exits 2, never a
traceback. A bug in sqlcoach itself stays an ordinary exception (and a traceback).

The leaves also derive from the built-in class a caller would have caught before (``ValueError``
for bad values and files, ``RuntimeError`` for a failing run), so existing ``except ValueError``
code keeps working.
"""

from __future__ import annotations


class SqlcoachError(Exception):
    """An error the user can act on; the CLI prints it without a traceback and exits 2."""


class ConfigError(SqlcoachError, ValueError):
    """A configuration value or command-line argument breaks a rule; the message says which rule."""


class DataError(SqlcoachError, ValueError):
    """A data file is missing or malformed. ``path`` and ``line`` say where, when known."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ExecutionError(SqlcoachError, RuntimeError):
    """SQL could not be run as asked: a database that cannot be opened, a pool that cannot start,
    a result that breaks the caller's contract (``len(results) != len(jobs)``)."""


class ModelError(SqlcoachError, RuntimeError):
    """A model or tokenizer folder cannot be loaded or used as asked (missing files, no chat
    template, an architecture transformers does not know, a generation that broke a contract)."""
