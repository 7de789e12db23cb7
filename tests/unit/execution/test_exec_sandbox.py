"""sandbox.execute / execute_on_copy: results, error classes, caps, connection reuse."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from exec_testdb import BIG_ROWS, SINGERS, make_db, sha256, side_files

from sqlcoach.execution import sandbox
from sqlcoach.execution.sandbox import Limits, execute, execute_on_copy


@pytest.fixture()
def db(tmp_path):
    return make_db(tmp_path / "music.sqlite")


def test_limits_validation():
    assert Limits().timeout == 30.0
    for bad in ({"timeout": 0}, {"timeout": -1.0}, {"max_rows": 0}, {"max_bytes": 2**31}, {"max_memory_mb": 1.5}, {"max_rows": True}):
        with pytest.raises(ValueError, match="Limits"):
            Limits(**bad)


def test_select_returns_rows_and_columns(db):
    res = execute(db, "SELECT singer_id, name FROM singer ORDER BY singer_id")
    assert res.ok and res.error is None
    assert res.columns == ("singer_id", "name")
    assert res.rows == tuple((s[0], s[1]) for s in SINGERS)
    assert isinstance(res.rows, tuple) and all(isinstance(r, tuple) for r in res.rows)
    assert res.seconds >= 0


@pytest.mark.parametrize(
    "sql",
    ["SELECT count(*) FROM singer;", "SELECT count(*) FROM singer ;;  \n", "SELECT count(*) FROM singer; -- done",
     "/* lead */ SELECT count(*) FROM singer", "select count(*) from singer;\n/* tail */"],
)  # fmt: skip
def test_trailing_semicolons_and_comments_allowed(db, sql):
    assert execute(db, sql).rows == ((len(SINGERS),),)


@pytest.mark.parametrize(
    "sql, error",
    [
        ("", "no_sql"),
        ("  \n\t ", "no_sql"),
        ("-- just a comment", "no_sql"),
        ("SELEC name FROM singer", "parse_error"),
        ("SELECT 'unterminated", "parse_error"),
        ("SELECT name FROM singer WHERE", "parse_error"),
        ("SELECT # FROM singer", "parse_error"),
        ("SELECT 1\x00", "parse_error"),
        ("SELECT '\ud800'", "parse_error"),
        ("SELECT nope FROM singer", "exec_error"),
        ("SELECT * FROM no_such_table", "exec_error"),
        ("SELECT 1; SELECT 2", "exec_error"),
    ],
)
def test_error_classes(db, sql, error):
    res = execute(db, sql)
    assert res.error == error, res
    assert res.rows is None and res.message


def test_multiple_statements_message(db):
    assert execute(db, "SELECT 1; DROP TABLE singer").message == "multiple statements"


def test_missing_database_is_exec_error_and_not_created(tmp_path):
    missing = tmp_path / "nope.sqlite"
    res = execute(missing, "SELECT 1")
    assert res.error == "exec_error" and "cannot open" in res.message
    assert not missing.exists()


def test_invalid_utf8_is_decoded_with_replacement(db):
    res = execute(db, "SELECT txt FROM bad_text")
    assert res.ok and res.rows == (("\ufffdA",),)
    # the connection keeps working for ordinary text afterwards
    assert execute(db, "SELECT name FROM singer WHERE singer_id = 1").rows == (("Alice",),)


def test_row_cap_gives_too_large(db):
    assert execute(db, "SELECT id FROM big", Limits(max_rows=BIG_ROWS)).ok
    res = execute(db, "SELECT id FROM big", Limits(max_rows=BIG_ROWS - 1))
    assert res.error == "too_large" and str(BIG_ROWS - 1) in res.message


def test_byte_cap_gives_too_large(db):
    res = execute(db, "SELECT label FROM big", Limits(max_bytes=1000))
    assert res.error == "too_large"
    # a single oversized value is refused by SQLite itself (SQLITE_LIMIT_LENGTH)
    assert execute(db, "SELECT zeroblob(5000)", Limits(max_bytes=1000)).error == "too_large"


def test_deadline_stops_endless_query(db):
    import time

    t0 = time.monotonic()
    res = execute(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c", Limits(timeout=0.3))
    took = time.monotonic() - t0
    assert res.error == "timeout"
    assert 0.29 <= took < 1.0
    # the next query on the same (cached) connection gets a fresh deadline
    assert execute(db, "SELECT count(*) FROM singer", Limits(timeout=0.3)).ok


def test_recursive_cte_with_limit_is_allowed(db):
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 5) SELECT sum(x) FROM c"
    assert execute(db, sql).rows == ((15,),)


def test_connection_is_cached_and_reopened_when_file_replaced(tmp_path):
    path = make_db(tmp_path / "a.sqlite")
    assert execute(path, "SELECT count(*) FROM singer").rows == ((6,),)
    conn = sandbox._CONNS[str(path.resolve())][1]
    assert execute(path, "SELECT 1").ok and sandbox._CONNS[str(path.resolve())][1] is conn
    # replace the file under the same name: the stale connection must not be used
    other = tmp_path / "b.sqlite"
    c = sqlite3.connect(other)
    c.execute("CREATE TABLE singer (x)")
    c.commit()
    c.close()
    shutil.move(other, path)
    assert execute(path, "SELECT count(*) FROM singer").rows == ((0,),)
    sandbox.close_connections()
    assert not sandbox._CONNS


def test_execute_never_writes(db):
    before = sha256(db)
    for sql in ["DELETE FROM singer", "WITH x AS (SELECT 1) DELETE FROM singer", "SELECT * FROM pragma_table_info('singer')"]:
        assert execute(db, sql).error == "exec_error"
    assert sha256(db) == before and side_files(db) == []


# ---------------------------------------------------------------- execute_on_copy


def test_execute_on_copy_counts_changes_and_leaves_original(db):
    before = sha256(db)
    res = execute_on_copy(db, "DELETE FROM singer WHERE country = 'France'")
    assert res.ok and res.rows == ((2,),) and res.columns == ("changes",)
    # triggers run on the copy but are not counted (SQLite's changes())
    assert execute_on_copy(db, "DELETE FROM singer").rows == ((len(SINGERS),),)
    assert execute_on_copy(db, "UPDATE big SET label = 'x' WHERE id < 10 RETURNING id").rows == ((10,),)
    assert execute_on_copy(db, "WITH a AS (SELECT 1) INSERT INTO audit(note) SELECT 'n' FROM big LIMIT 7;").rows == ((7,),)
    assert execute_on_copy(db, "INSERT INTO singer VALUES (99, 'Zed', 'Peru', 40)").rows == ((1,),)
    # each statement saw a fresh copy: the original still has every singer
    assert execute(db, "SELECT count(*) FROM singer").rows == ((len(SINGERS),),)
    assert sha256(db) == before and side_files(db) == []


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM singer", "DROP TABLE singer", "CREATE TABLE z (a)", "ALTER TABLE singer ADD COLUMN z",
     "ATTACH ':memory:' AS x", "PRAGMA writable_schema=ON", "DELETE FROM singer; DELETE FROM concert",
     "DELETE FROM sqlite_master", "SELECT load_extension('x')", "BEGIN", "VACUUM"],
)  # fmt: skip
def test_execute_on_copy_refuses_non_dml(db, sql):
    before = sha256(db)
    res = execute_on_copy(db, sql)
    assert res.error == "exec_error", res
    assert sha256(db) == before


def test_execute_on_copy_deadline_and_cleanup(db, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    res = execute_on_copy(db, "DELETE FROM big WHERE id IN (SELECT a.id FROM big a, big b, big c)", Limits(timeout=0.3))
    assert res.error == "timeout"
    assert list((tmp_path / "tmp").iterdir()) == []  # the copy is deleted
    assert execute_on_copy(db, "", Limits()).error == "no_sql"
    assert execute_on_copy(tmp_path / "missing.sqlite", "DELETE FROM t").error == "exec_error"


def test_concurrent_threads_get_their_own_results(db):
    from concurrent.futures import ThreadPoolExecutor

    def work(k: int) -> list:
        return [execute(db, f"SELECT {k} * 1000 + {i}").rows for i in range(50)]

    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(work, range(4)))
    for k, rows in enumerate(outs):
        assert rows == [((k * 1000 + i,),) for i in range(50)]
