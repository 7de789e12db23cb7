"""Run ONE untrusted SQL query against a SQLite file, in the current process.

Model-generated SQL is hostile input. ``execute`` never raises because of the SQL text: every
failure comes back as an ``ExecResult`` with an error class (``no_sql``, ``parse_error``,
``exec_error``, ``timeout``, ``too_large``) and a short message.

What IS guaranteed (for ``execute``):

* No write to the database file through our connection. Three independent layers: the file is
  opened with ``mode=ro`` (SQLite's pager refuses every write), ``PRAGMA query_only=ON`` is set by
  us before anything else runs, and an authorizer allows only reads (``SELECT``, column reads,
  functions and recursive CTEs; every PRAGMA, including the table-valued ``pragma_*()`` forms,
  is refused). Statements that do not go through the authorizer in every SQLite version
  (``REINDEX`` with no argument, ``VACUUM``, ``BEGIN``...) are refused by their leading keyword
  before SQLite sees them. We open with ``mode=ro``, not ``immutable=1``: immutable skips locking
  and change detection, which is safe only if nobody ever writes the file (a user rebuilding a
  database during an evaluation would get corrupt reads).
  No ``-journal``/``-wal`` file is created next to a database in rollback-journal mode (Spider's
  and BIRD's files; a WAL-mode database may get its ``-shm`` index file, which holds no data).
* No ``ATTACH`` (authorizer, and ``SQLITE_LIMIT_ATTACHED`` is 0), no extension loading
  (``load_extension`` denied, and disabled on the connection where Python exposes the switch),
  no ``readfile``/``writefile``/``fts3_tokenizer``/``edit``.
* One statement only: a second statement is refused ("multiple statements"); a trailing ``;``
  followed by whitespace or comments is allowed.
* A deadline (``Limits.timeout``) checked inside SQLite's virtual machine every
  ``PROGRESS_STEPS`` VM instructions (a progress handler) and in the Python fetch loop, so endless
  recursive CTEs and cartesian products stop at the deadline.
* Caps on result size: at most ``max_rows`` rows and about ``max_bytes`` bytes (strings and
  blobs by length, 8 bytes per number); a single value larger than ``max_bytes`` is refused by
  SQLite itself (``SQLITE_LIMIT_LENGTH``). Exceeding a cap gives ``too_large``.
* Text that is not valid UTF-8 is returned decoded with U+FFFD replacement, never an error.

What is NOT guaranteed:

* CPU time inside a single long C call that runs no VM instructions can overrun the deadline.
  A real example: ``SELECT printf('%.*c', 2000000000, 'x')`` spends ~20 s in printf's padding
  loop (the result is refused at the end as too big); one huge sort step is another. The
  hard wall-clock limit belongs to ``ExecutorPool``, which kills the worker process
  (tests/unit/execution/test_hostile.py runs exactly this query).
* Memory: the address-space cap (``RLIMIT_AS``) and SQLite's ``hard_heap_limit`` are
  process-wide, so they are applied only in the pool's worker processes
  (``configure_worker_process``), never in the caller's process, and ``RLIMIT_AS`` is skipped on
  platforms without it. In-process execution has no memory cap beyond the row/byte caps.
* Protection against a maliciously crafted database file (we trust the benchmark's files).
* Temporary files: SQLite may spill big sorts to its temp directory (not the database file).
* Timing isolation: ``seconds`` is wall-clock time and depends on the machine's load.
* A symlink to a database that is re-pointed while the process runs: real paths are memoised.
* Parallelism within one process: ``execute`` is thread-safe but serialises threads (use the
  pool's worker processes for parallel execution).

``execute_on_copy`` runs one ``INSERT``/``UPDATE``/``DELETE`` on a throw-away copy of the
database (for rewards that score data-modifying SQL); the original file is only ever opened
read-only.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sqlcoach.errors import ConfigError
from sqlcoach.types import ExecResult

# The progress handler runs every PROGRESS_STEPS VM instructions. Measured here on a 4M-row join
# (about 0.3 s, loaded 2-core machine): no handler 0.40 s, N=100 0.41 s, N=1000 0.33 s,
# N=10000 0.30 s, i.e. the cost at N=1000 is within noise, while SQLite runs ~100 M steps/s, so
# the deadline is checked about every 10 us.
PROGRESS_STEPS = 1000
# Rows fetched per fetchmany call: large enough to amortise the call, small enough that the
# caps and the deadline are checked often.
FETCH_CHUNK = 256
# Connections kept open per process (one per database file); each holds a file descriptor.
MAX_OPEN_CONNECTIONS = 256

_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION})
_SQLITE_RECURSIVE = getattr(sqlite3, "SQLITE_RECURSIVE", 33)
_DENIED_FUNCTIONS = frozenset(
    {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "sqlite_dbpage"}
)
# Statement keywords that are never a read-only query. Some of these do not reach the
# authorizer at all in some SQLite versions (REINDEX without argument), so we refuse them by
# keyword before SQLite parses them. Junk words are left to SQLite, which reports parse errors.
_REFUSED_KEYWORDS = frozenset(
    {
        "alter", "analyze", "attach", "begin", "commit", "create", "delete", "detach", "drop",
        "end", "insert", "pragma", "reindex", "release", "replace", "rollback", "savepoint",
        "update", "upsert", "vacuum",
    }
)  # fmt: skip
_DML_KEYWORDS = frozenset({"insert", "replace", "update", "delete"})
# Leading keywords execute_on_copy refuses before copying anything (WITH may start a DML).
_NOT_DML_KEYWORDS = (_REFUSED_KEYWORDS - _DML_KEYWORDS) | {"select", "values", "explain"}
_SYNTAX_MARKERS = (
    "syntax error",
    "incomplete input",
    "unrecognized token",
    "parser stack overflow",
    "expression tree is too large",
    "too many terms in compound select",
    "too many columns",
    "null character",
)
_TRAILING = " \t\r\n\f\v;"
_SIZE_MARKERS = ("string or blob too big", "out of memory")


@dataclass(frozen=True)
class Limits:
    """Per-query limits. ``timeout`` in seconds; ``max_memory_mb`` applies to pool workers only."""

    timeout: float = 30.0
    max_rows: int = 100_000
    max_bytes: int = 64 * 2**20
    max_memory_mb: int = 2048

    def __post_init__(self) -> None:
        if isinstance(self.timeout, bool) or not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise ConfigError(f"Limits.timeout must be a positive number of seconds, got {self.timeout!r}")
        for name in ("max_rows", "max_bytes", "max_memory_mb"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise ConfigError(f"Limits.{name} must be a positive int, got {value!r}")
        if self.max_bytes >= 2**31:
            # SQLITE_LIMIT_LENGTH is a 32-bit int; larger values are silently clamped by SQLite.
            raise ConfigError(f"Limits.max_bytes must be below 2**31 (SQLite's own ceiling), got {self.max_bytes}")


class _TooLarge(Exception):
    pass


class _Deadline(Exception):
    pass


# realpath -> (inode key, connection). Reused across queries: opening a connection and reading
# the schema costs ~100 us, more than a typical Spider query.
_CONNS: OrderedDict[str, tuple[tuple[int, int], sqlite3.Connection]] = OrderedDict()
_WORKER_CONFIGURED = False
# Serialises execute() across threads of one process: the cached connections and each one's
# progress handler (which holds the current deadline) are shared state.
_LOCK = threading.Lock()


def _forget_connections_after_fork() -> None:
    # A SQLite connection must not be used across fork. The child drops the parent's (without
    # closing them: closing could touch state shared with the parent) and opens its own.
    global _CONNS, _LEFTOVERS
    _LEFTOVERS = list(_CONNS.values())
    _CONNS = OrderedDict()


_LEFTOVERS: list[Any] = []
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_connections_after_fork)


def configure_worker_process(limits: Limits) -> None:
    """Apply the process-wide memory caps of ``limits`` to THIS process (a pool worker).

    Guarantees: ``RLIMIT_AS`` is set to the current address-space size plus
    ``limits.max_memory_mb`` (relative, so a worker forked from a large parent still works)
    where the ``resource`` module supports it; SQLite's ``hard_heap_limit`` is set to
    ``max_memory_mb``. Never call it in a process that does other work.
    """
    global _WORKER_CONFIGURED
    cap = limits.max_memory_mb * 2**20
    try:
        import resource

        current = _address_space_bytes()
        if current is not None and hasattr(resource, "RLIMIT_AS"):
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            want = current + cap
            if hard != resource.RLIM_INFINITY:
                want = min(want, hard)
            resource.setrlimit(resource.RLIMIT_AS, (want, hard))
    except (ImportError, OSError, ValueError):
        pass  # unsupported platform: documented as not guaranteed
    _WORKER_CONFIGURED = True
    try:
        mem = sqlite3.connect(":memory:")
        mem.execute(f"PRAGMA hard_heap_limit={int(cap)}")  # process-wide in SQLite
        mem.close()
    except sqlite3.Error:
        pass  # SQLite < 3.31: no hard heap limit


def _address_space_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[0])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _leading_keyword(sql: str) -> str:
    """The first word of ``sql`` after whitespace and comments, lower-cased ('' if none)."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace() or ch == ";":
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            break
    j = i
    while j < n and (sql[j].isalnum() or sql[j] == "_"):
        j += 1
    return sql[i:j].lower()


def _read_only_authorizer(action: int, arg1: Any, arg2: Any, db: Any, trigger: Any) -> int:
    if action in _ALLOWED_ACTIONS:
        if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in _DENIED_FUNCTIONS:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
    if action == _SQLITE_RECURSIVE:
        return sqlite3.SQLITE_OK  # legal read query; the deadline stops endless ones
    return sqlite3.SQLITE_DENY


def _set_limits(conn: sqlite3.Connection, limits: Limits) -> None:
    if hasattr(conn, "setlimit"):
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.max_bytes)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, min(limits.max_bytes, 1_000_000))
        # SQLite's compiled-in defaults, set explicitly so that a build with larger ones does not
        # let deeply nested model output exhaust the C stack.
        conn.setlimit(sqlite3.SQLITE_LIMIT_EXPR_DEPTH, 1000)
        conn.setlimit(sqlite3.SQLITE_LIMIT_COMPOUND_SELECT, 500)


def _decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _open_read_only(path: str) -> sqlite3.Connection:
    """A cached read-only connection to ``path`` (a real path). Raises sqlite3/OS errors."""
    st = os.stat(path)  # raises FileNotFoundError: never let SQLite create a file
    key = (st.st_dev, st.st_ino)
    cached = _CONNS.get(path)
    if cached is not None:
        if cached[0] == key:
            _CONNS.move_to_end(path)
            return cached[1]
        # The file was replaced under the same name: the old connection would read stale data.
        _CONNS.pop(path)
        cached[1].close()
    uri = "file:" + urllib.parse.quote(path) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only=ON")  # before the authorizer, which would refuse it
        if hasattr(conn, "enable_load_extension"):
            conn.enable_load_extension(False)
        # text_factory stays str (C speed); a connection switches to _decode_text the first time
        # its database yields invalid UTF-8 (see _run_statement).
        conn.set_authorizer(_read_only_authorizer)
    except BaseException:
        conn.close()
        raise
    _CONNS[path] = (key, conn)
    while len(_CONNS) > MAX_OPEN_CONNECTIONS:
        _, (_, old) = _CONNS.popitem(last=False)
        old.close()
    return conn


_REALPATHS: dict[str, str] = {}


def _realpath(db_path: str | Path) -> str:
    # os.path.realpath costs ~40 us (one lstat per path component), more than a typical query;
    # memoised per spelling. A symlink retargeted during a run is not noticed (documented).
    key = os.fspath(db_path)
    real = _REALPATHS.get(key)
    if real is None:
        if len(_REALPATHS) > 4 * MAX_OPEN_CONNECTIONS:
            _REALPATHS.clear()
        real = _REALPATHS[key] = os.path.realpath(key)
    return real


def close_connections() -> None:
    """Close every cached connection of this process (the next query reopens as needed)."""
    with _LOCK:
        while _CONNS:
            _, (_, conn) = _CONNS.popitem()
            conn.close()


def _classify(exc: BaseException, deadline_hit: bool) -> tuple[str, str]:
    """Map an exception raised while running untrusted SQL to (error class, short message)."""
    if deadline_hit or isinstance(exc, _Deadline):
        return "timeout", "deadline passed"
    if isinstance(exc, (_TooLarge, MemoryError, OverflowError)):
        return "too_large", _short(exc) or "out of memory"
    if isinstance(exc, RecursionError):
        return "parse_error", "query nested too deeply"
    msg = _short(exc)
    low = msg.lower()
    if "one statement at a time" in low:
        return "exec_error", "multiple statements"
    if isinstance(exc, (ValueError, UnicodeError)) and not isinstance(exc, sqlite3.Error):
        return "parse_error", msg  # e.g. lone surrogates that cannot be encoded as UTF-8
    if any(m in low for m in _SIZE_MARKERS):
        return "too_large", msg
    if any(m in low for m in _SYNTAX_MARKERS):
        return "parse_error", msg
    if low == "interrupted":
        return "timeout", "deadline passed"
    if "not authorized" in low or "readonly" in low or "read-only" in low:
        return "exec_error", f"refused: {msg} (only read-only queries may run)"
    return "exec_error", msg


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fetch_capped(cur: sqlite3.Cursor, limits: Limits, deadline: float) -> list[tuple]:
    rows: list[tuple] = []
    nbytes = 0
    while True:
        chunk = cur.fetchmany(FETCH_CHUNK)
        if not chunk:
            return rows
        for row in chunk:
            for v in row:
                nbytes += len(v) if isinstance(v, (str, bytes)) else 8
        rows.extend(chunk)
        done = len(chunk) < FETCH_CHUNK  # a short chunk means the cursor is exhausted
        if len(rows) > limits.max_rows:
            raise _TooLarge(f"more than {limits.max_rows} rows")
        if nbytes > limits.max_bytes:
            raise _TooLarge(f"result larger than {limits.max_bytes} bytes")
        if time.monotonic() > deadline:
            raise _Deadline()
        if done:
            return rows


def _run_statement(
    conn: sqlite3.Connection,
    sql: str,
    limits: Limits,
    t0: float,
    finish: Callable[[sqlite3.Connection, sqlite3.Cursor, Limits, float], ExecResult],
) -> ExecResult:
    """Run ``sql`` on ``conn`` with the deadline handler; ``finish`` turns the cursor into a result."""
    deadline = t0 + limits.timeout
    hit = [False]

    def progress() -> int:
        if time.monotonic() > deadline:
            hit[0] = True
            return 1  # nonzero: SQLite aborts the statement with "interrupted"
        return 0

    _set_limits(conn, limits)
    conn.set_progress_handler(progress, PROGRESS_STEPS)
    cur = None
    try:
        try:
            cur = conn.execute(sql)
            return finish(conn, cur, limits, deadline)
        except sqlite3.OperationalError as exc:
            if "could not decode to utf-8" not in str(exc).lower() or conn.text_factory is _decode_text:
                raise
            # Invalid UTF-8 in the data: decode with replacement from now on and run it again.
            if cur is not None:
                cur.close()
            conn.text_factory = _decode_text
            cur = conn.execute(sql)
            return finish(conn, cur, limits, deadline)
    except Exception as exc:  # noqa: BLE001 - untrusted SQL: every failure is data
        err, msg = _classify(exc, hit[0])
        return ExecResult(rows=None, error=err, message=msg, seconds=time.monotonic() - t0)
    finally:
        if cur is not None:
            try:
                cur.close()
            except sqlite3.Error:
                pass
        conn.set_progress_handler(None, 0)


def _finish_query(conn: sqlite3.Connection, cur: sqlite3.Cursor, limits: Limits, deadline: float) -> ExecResult:
    t_start = deadline - limits.timeout
    if cur.description is None:
        return ExecResult(rows=None, error="no_sql", message="no statement (only comments or ';')",
                          seconds=time.monotonic() - t_start)  # fmt: skip
    columns = tuple(d[0] for d in cur.description)
    rows = _fetch_capped(cur, limits, deadline)
    return ExecResult(rows=tuple(rows), columns=columns, seconds=time.monotonic() - t_start)


def execute(db_path: str | Path, sql: str, limits: Limits = Limits()) -> ExecResult:
    """Run one untrusted read-only query on ``db_path`` and return what happened.

    Guarantees: never raises because of ``sql`` (any text, including NUL bytes, deep nesting,
    writes, several statements); never writes to the database file; stops at ``limits``
    (see the module docstring for exactly how). ``error`` is None on success, else one of
    ``no_sql``, ``parse_error``, ``exec_error``, ``timeout``, ``too_large``. A missing or
    unreadable database file gives ``exec_error`` (it is never created).
    """
    t0 = time.monotonic()
    if not isinstance(sql, str) or not sql.strip():
        return ExecResult(rows=None, error="no_sql", message="empty SQL")
    # "SELECT 1;" and "SELECT 1;;" are normal model output, not two statements.
    sql = sql.rstrip(_TRAILING)
    keyword = _leading_keyword(sql)
    if keyword in _REFUSED_KEYWORDS:
        return ExecResult(rows=None, error="exec_error",
                          message=f"refused: {keyword.upper()} is not a read-only query")  # fmt: skip
    with _LOCK:  # the connection cache and a connection's progress handler are per process
        try:
            conn = _open_read_only(_realpath(db_path))
        except (OSError, sqlite3.Error, ValueError) as exc:
            return ExecResult(rows=None, error="exec_error", message=f"cannot open database: {_short(exc)}",
                              seconds=time.monotonic() - t0)  # fmt: skip
        return _run_statement(conn, sql, limits, t0, _finish_query)


def _dml_authorizer(seen: list[bool]) -> Callable[..., int]:
    allowed = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}

    def auth(action: int, arg1: Any, arg2: Any, db: Any, trigger: Any) -> int:
        if action in allowed:
            if db not in (None, "main") or str(arg1).lower().startswith("sqlite_"):
                return sqlite3.SQLITE_DENY  # no writes to temp tables or SQLite's own tables
            seen[0] = True
            return sqlite3.SQLITE_OK
        return _read_only_authorizer(action, arg1, arg2, db, trigger)

    return auth


def execute_on_copy(db_path: str | Path, sql: str, limits: Limits = Limits()) -> ExecResult:
    """Run ONE untrusted ``INSERT``/``UPDATE``/``DELETE`` on a temporary copy of ``db_path``.

    Guarantees: the original file is opened read-only only (``mode=ro``) and copied with SQLite's
    backup API into a private temporary directory, which is deleted before returning; the
    statement gets the same deadline and caps as ``execute``; only INSERT/UPDATE/DELETE plus reads
    are authorized (no DDL, PRAGMA, ATTACH, extensions, transactions, several statements). On
    success ``rows == ((changes,),)`` and ``columns == ("changes",)``, where ``changes`` is the
    number of rows the statement itself changed (SQLite's ``changes()``: trigger effects are not
    counted). A statement that is not data-modifying gives ``exec_error``. The copy's time is not
    counted against ``limits.timeout``.
    """
    t_copy = time.monotonic()
    if not isinstance(sql, str) or not sql.strip():
        return ExecResult(rows=None, error="no_sql", message="empty SQL")
    # "SELECT 1;" and "SELECT 1;;" are normal model output, not two statements.
    sql = sql.rstrip(_TRAILING)
    keyword = _leading_keyword(sql)
    if keyword in _NOT_DML_KEYWORDS:
        return ExecResult(rows=None, error="exec_error",
                          message=f"refused: {keyword.upper()} is not INSERT/UPDATE/DELETE")  # fmt: skip
    tmpdir = tempfile.mkdtemp(prefix="sqlcoach-dml-")
    conn = None
    try:
        try:
            real = os.path.realpath(os.fspath(db_path))
            os.stat(real)
            src = sqlite3.connect("file:" + urllib.parse.quote(real) + "?mode=ro", uri=True)
            try:
                conn = sqlite3.connect(os.path.join(tmpdir, "copy.sqlite"), isolation_level=None,
                                       check_same_thread=False)  # fmt: skip
                src.backup(conn)
            finally:
                src.close()
            if hasattr(conn, "enable_load_extension"):
                conn.enable_load_extension(False)
            conn.text_factory = _decode_text
        except (OSError, sqlite3.Error, ValueError) as exc:
            return ExecResult(rows=None, error="exec_error", message=f"cannot copy database: {_short(exc)}",
                              seconds=time.monotonic() - t_copy)  # fmt: skip
        seen = [False]
        conn.set_authorizer(_dml_authorizer(seen))

        def finish(c: sqlite3.Connection, cur: sqlite3.Cursor, lim: Limits, deadline: float) -> ExecResult:
            if cur.description is not None:  # RETURNING: drain it so the statement completes
                _fetch_capped(cur, lim, deadline)
            if not seen[0]:
                return ExecResult(rows=None, error="exec_error",
                                  message="refused: not an INSERT/UPDATE/DELETE statement",
                                  seconds=time.monotonic() - (deadline - lim.timeout))  # fmt: skip
            # changes() is the statement's own count (not triggers'); Cursor.rowcount is -1 for
            # a DML statement that starts with WITH.
            changes = c.execute("SELECT changes()").fetchone()[0]
            return ExecResult(rows=((changes,),), columns=("changes",),
                              seconds=time.monotonic() - (deadline - lim.timeout))  # fmt: skip

        return _run_statement(conn, sql, limits, time.monotonic(), finish)
    finally:
        if conn is not None:
            conn.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
