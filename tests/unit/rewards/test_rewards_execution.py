"""The `execution` and `execution_binary` rewards: golden values, partial credit, safety."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from rewards_testdb import checksum, make_concert_db

from sqlcoach.errors import ConfigError
from sqlcoach.rewards.execution import ExecutionBinaryReward, ExecutionReward, PoolHandle, result_jaccard

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "rewards" / "execution.txt"


def _golden_cases() -> list[tuple[int, str, str, float | None]]:
    cases = []
    for lineno, line in enumerate(GOLDEN.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(" ; ")
        assert len(parts) == 3, f"{GOLDEN}:{lineno}: expected 'pred ; gold ; reward', got {line!r}"
        pred, gold, expected = (p.strip() for p in parts)
        cases.append((lineno, pred, gold, None if expected == "None" else float(expected)))
    return cases


CASES = _golden_cases()


def test_golden_file_has_every_kind_of_case():
    expected = [c[3] for c in CASES]
    assert len(CASES) >= 30
    assert None in expected and 0.0 in expected and 1.2 in expected
    assert any(e is not None and 0.0 < e < 1.2 for e in expected)


def test_golden_execution_rewards(concert_db, pool):
    """Every golden line, scored in ONE batch (as GRPO calls it), and the database is unchanged."""
    before = checksum(concert_db)
    reward = ExecutionReward(pool=pool)
    got = reward(
        prompts=["q"] * len(CASES),
        completions=[pred for _, pred, _, _ in CASES],
        gold_sql=[gold for _, _, gold, _ in CASES],
        db_path=[str(concert_db)] * len(CASES),
    )
    wrong = []
    for (lineno, pred, gold, expected), value, outcome in zip(CASES, got, reward.last_outcomes):
        ok = value is None if expected is None else (value is not None and math.isclose(value, expected, abs_tol=1e-9))
        if not ok:
            wrong.append(f"line {lineno}: {pred!r} vs {gold!r}: expected {expected}, got {value} ({outcome})")
    assert not wrong, "\n".join(wrong)
    assert checksum(concert_db) == before


def test_each_case_alone_matches_the_batch(concert_db, pool):
    # Batching and de-duplication must not change a completion's reward.
    reward = ExecutionReward(pool=pool)
    for _, pred, gold, expected in CASES[:12]:
        value = reward(None, [pred], gold_sql=[gold], db_path=[str(concert_db)])[0]
        assert value == pytest.approx(expected) if expected is not None else value is None


def test_conversational_completions_and_duplicates(concert_db, pool):
    reward = ExecutionReward(pool=pool)
    right = [{"role": "assistant", "content": "<reasoning>x</reasoning><sql>SELECT name FROM singer</sql>"}]
    wrong = [{"role": "assistant", "content": "```sql\nSELECT country FROM singer\n```"}]
    got = reward(
        prompts=[[{"role": "user", "content": "names?"}]] * 4,
        completions=[right, wrong, right, [{"role": "assistant", "content": "no idea"}]],
        gold_sql=["SELECT name FROM singer"] * 4,
        db_path=[str(concert_db)] * 4,
    )
    assert got == pytest.approx([1.2, 0.36, 1.2, 0.0])


def test_error_classes_reported(concert_db, pool):
    reward = ExecutionReward(pool=pool)
    preds = ["SELECT name FROM singers", "SELECT nme FROM singer", "SELEC x", "DELETE FROM singer"]
    reward(None, preds, gold_sql="SELECT name FROM singer", db_path=str(concert_db))
    assert [o.error for o in reward.last_outcomes] == ["missing_table", "missing_column", "no_sql", "wrong_statement"]


def test_dml_runs_on_a_copy(concert_db, pool):
    before = checksum(concert_db)
    reward = ExecutionReward(pool=pool)
    got = reward(
        None,
        ["DELETE FROM singer", "INSERT INTO singer VALUES (9, 'Zed', 'NZ', 50)", "DELETE FROM nowhere"],
        gold_sql=["DELETE FROM singer WHERE age > 40"] * 3,
        db_path=[str(concert_db)] * 3,
    )
    assert got == pytest.approx([0.6, 0.6, 0.12])
    assert checksum(concert_db) == before
    assert reward.last_outcomes[1].executed and reward.last_outcomes[2].error == "missing_table"


def test_binary_reward(concert_db, pool):
    reward = ExecutionBinaryReward(pool=pool)
    got = reward(
        None,
        ["SELECT name FROM singer", "SELECT country FROM singer", "SELECT nope FROM singer", "", "SELECT 1"],
        gold_sql=["SELECT name FROM singer"] * 4 + ["SELECT nope FROM singer"],
        db_path=[str(concert_db)] * 5,
    )
    assert got[:4] == pytest.approx([1.0, 0.1, 0.0, 0.0])
    assert got[4] is None
    assert reward.__name__ == "execution_binary"


def test_missing_database_or_gold_gives_none(concert_db, pool, tmp_path):
    reward = ExecutionReward(pool=pool)
    got = reward(
        None,
        ["SELECT 1", "SELECT 1", "SELECT 1"],
        gold_sql=["SELECT 1", None, "SELECT 1"],
        db_path=[str(tmp_path / "absent.sqlite"), str(concert_db), None],
    )
    assert got == [None, None, None]
    assert not (tmp_path / "absent.sqlite").exists()  # never created by the executor


def test_missing_column_is_a_config_error(pool):
    with pytest.raises(ConfigError, match="gold_sql"):
        ExecutionReward(pool=pool)(None, ["SELECT 1"], db_path=["x"])
    with pytest.raises(ConfigError, match="2 values for 1"):
        ExecutionReward(pool=pool)(None, ["SELECT 1"], db_path=["x", "y"], gold_sql=["SELECT 1"])


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        ExecutionReward(weight=-1)
    with pytest.raises(ConfigError, match="mode"):
        ExecutionReward(mode="nope")


def test_test_suite_folder(tmp_path, pool):
    # A folder of databases: equal only if equal on every file (test-suite EX).
    import sqlite3

    folder = tmp_path / "concert"
    folder.mkdir()
    main = make_concert_db(folder / "concert.sqlite")
    variant = make_concert_db(folder / "variant.sqlite")
    conn = sqlite3.connect(variant)
    conn.execute("UPDATE singer SET age = 99 WHERE name = 'Cid'")
    conn.commit()
    conn.close()
    reward = ExecutionReward(pool=pool)
    pred, gold = "SELECT name FROM singer WHERE name != 'Bob'", "SELECT name FROM singer WHERE age < 40"
    # Same rows on the main file only; partial credit comes from the main file's results (J = 1).
    assert reward(None, [pred], gold_sql=[gold], db_path=[str(main)]) == pytest.approx([1.2])
    assert reward(None, [pred], gold_sql=[gold], db_path=[str(folder)]) == pytest.approx([0.6])
    assert reward(None, [gold], gold_sql=[gold], db_path=[str(folder)]) == pytest.approx([1.2])


def test_bird_mode_column_order_matters(concert_db, pool):
    reward = ExecutionReward(pool=pool, mode="bird")
    got = reward(None, ["SELECT age, name FROM singer"], gold_sql=["SELECT name, age FROM singer"],
                 db_path=[str(concert_db)])  # fmt: skip
    # not equal under BIRD's rule; both columns common by name: J = 1 -> 0.5 w
    assert got == pytest.approx([0.6])


def test_real_worker_processes(concert_db):
    # The default path: a pool with worker processes, created lazily and closed by the handle.
    handle = PoolHandle(workers=2)
    try:
        reward = ExecutionReward(pool=handle)
        got = reward(None, ["SELECT name FROM singer"] * 3 + ["SELECT nme FROM singer"],
                     gold_sql="SELECT name FROM singer", db_path=str(concert_db))  # fmt: skip
        assert got == pytest.approx([1.2, 1.2, 1.2, 0.144])
    finally:
        handle.close()


def test_pickle_drops_the_pool(concert_db, pool):
    import pickle

    reward = ExecutionReward(pool=pool)
    copy = pickle.loads(pickle.dumps(reward))
    assert copy.__name__ == "execution" and copy.weight == 1.2
    assert copy.scorer.handle._pool is None


# ----------------------------------------------------------------- Jaccard on hand-made results


def test_jaccard_projects_on_common_columns():
    pred = [(1, "a"), (2, "b"), (3, "c")]
    gold = [("a",), ("b",), ("z",)]
    assert result_jaccard(pred, ("id", "Name"), gold, ("name",)) == pytest.approx(2 / 4)


def test_jaccard_no_common_column_is_zero():
    assert result_jaccard([(1,)], ("x",), [(1,)], ("y",)) == 0.0


def test_jaccard_repeated_names_pair_in_order():
    pred = [(1, 2)]
    gold = [(1, 2)]
    assert result_jaccard(pred, ("n", "n"), gold, ("N", "N")) == 1.0
    assert result_jaccard([(2, 1)], ("n", "n"), gold, ("n", "n")) == 0.0


def test_jaccard_whitespace_and_case_in_names():
    assert result_jaccard([(3,)], ("COUNT( * )",), [(3,)], ("count(*)",)) == 1.0


def test_jaccard_without_names_pairs_by_position():
    assert result_jaccard([(1, 2), (3, 4)], (), [(1, 2)], ()) == pytest.approx(0.5)
    assert result_jaccard([(1,)], (), [(1, 2)], ()) == 0.0


def test_jaccard_empty_results():
    assert result_jaccard([], ("a",), [], ("a",)) == 1.0
    assert result_jaccard([], ("a",), [(1,)], ("a",)) == 0.0


def test_statement_routing_shortcut_agrees_with_the_parser():
    from sqlcoach.rewards.execution import _kind, _statement
    from sqlcoach.sql.rewrite import statement_type

    texts = [
        "SELECT 1",
        "  -- note\n/* x */ (SELECT name FROM singer)",
        "select * from t union select * from u",
        "INSERT INTO singer VALUES (1, 'a', 'b', 2)",
        "update singer set age = 1",
        "DELETE FROM singer",
        "WITH x AS (SELECT 1) DELETE FROM singer WHERE singer_id IN (SELECT * FROM x)",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "VALUES (1)",
        "DROP TABLE singer",
        "PRAGMA table_info(singer)",
    ]
    for text in texts:
        parsed = statement_type(text)
        assert _kind(_statement(text)) == _kind(parsed), text
        if parsed != "unparsable":
            assert _statement(text) == parsed, text
    # a SELECT that sqlglot cannot parse still routes as a read (SQLite's parser decides)
    assert _statement("SELECT a FROM t WHERE (((") == "select"


def test_statement_routing_is_linear_on_hostile_text():
    import time

    from sqlcoach.rewards.execution import _statement

    t0 = time.perf_counter()
    for text in (" " * 5000 + "1", "(" * 5000 + "1", "/*" + " " * 5000, "-- x\n" * 2000 + "?"):
        _statement(text)
    assert time.perf_counter() - t0 < 5.0


def test_anonymized_completions_are_decoded_with_sql_names(concert_db, pool):
    import json

    from sqlcoach.rewards.complexity import ComplexityReward

    names = json.dumps({"t1": "singer", "c1": "name", "c2": "country", "v1": "France"})
    reward = ExecutionBinaryReward(pool=pool)
    gold = "SELECT name FROM singer WHERE country = 'France'"
    got = reward(None, ["SELECT c1 FROM t1 WHERE c2 = 'v1'", "SELECT c1 FROM t1"],
                 gold_sql=gold, db_path=str(concert_db), sql_names=[names, names])
    assert got == [1.0, 0.1]
    # without the column the same completion names no real table: it fails to run
    assert reward(None, ["SELECT c1 FROM t1 WHERE c2 = 'v1'"], gold_sql=gold, db_path=str(concert_db)) == [0.0]
    # the complexity reward reads the decoded SQL too (same shape as gold: full credit)
    assert ComplexityReward()(None, ["SELECT c1 FROM t1 WHERE c2 = 'v1'"], gold_sql=[gold], sql_names=[names]) == [0.6]
