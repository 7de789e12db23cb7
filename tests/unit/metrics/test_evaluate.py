import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sqlcoach.metrics import evaluate_files, evaluate_pairs
from sqlcoach.types import ERROR_CLASSES


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_correct_wrong_and_error_classes(db_dir):
    golds = [("SELECT count(*) FROM singer", "music")] * 5
    preds = [
        "SELECT count(*) FROM singer;",
        "SELECT count(*) FROM singer WHERE age > 30",
        "SELECT count(*) FROM nosuch",
        "SELEC count(*) FROM singer",
        "",
    ]
    r = evaluate_pairs(preds, golds, db_dir=db_dir, etype="exec", workers=0)
    got = [(v.ex, v.error) for v in r.verdicts]
    assert got == [
        (True, None),
        (False, "wrong_result"),
        (False, "exec_error"),
        (False, "parse_error"),
        (False, "no_sql"),
    ]
    assert r.summary["all"]["ex"] == pytest.approx(0.2)
    assert r.summary["errors"]["no_sql"] == 1


def test_distinct_is_stripped_by_default_and_kept_on_request(db_dir):
    golds = [("SELECT count(DISTINCT country) FROM singer", "music")]
    preds = ["SELECT count(country) FROM singer"]
    default = evaluate_pairs(preds, golds, db_dir=db_dir, etype="exec", workers=0)
    keep = evaluate_pairs(preds, golds, db_dir=db_dir, etype="exec", workers=0, keep_distinct=True)
    assert default.verdicts[0].ex is True  # the official default cannot see this error
    assert keep.verdicts[0].ex is False


def test_order_matters_only_with_gold_order_by(db_dir):
    g_ordered = ("SELECT name FROM singer ORDER BY age", "music")
    g_plain = ("SELECT name FROM singer", "music")
    rev = "SELECT name FROM singer ORDER BY age DESC"
    r = evaluate_pairs([rev, rev], [g_ordered, g_plain], db_dir=db_dir, etype="exec", workers=0)
    assert [v.ex for v in r.verdicts] == [False, True]


def test_bird_mode_column_order_matters_and_duplicates_do_not(db_dir):
    golds = [("SELECT name, age FROM singer", "music"), ("SELECT country FROM singer", "music")]
    preds = ["SELECT age, name FROM singer", "SELECT DISTINCT country FROM singer"]
    spider = evaluate_pairs(preds, golds, db_dir=db_dir, etype="exec", workers=0, mode="spider", keep_distinct=True)
    bird = evaluate_pairs(preds, golds, db_dir=db_dir, etype="exec", workers=0, mode="bird", ves_iterations=2)
    assert [v.ex for v in spider.verdicts] == [True, False]
    assert [v.ex for v in bird.verdicts] == [False, True]
    assert "soft_f1" in bird.summary["bird"] and "ves" in bird.summary["bird"]
    assert bird.verdicts[1].extra["time_ratio"] > 0 and bird.verdicts[0].extra["time_ratio"] == 0


def test_test_suite_needs_a_match_on_every_database_file(db_dir):
    # On suite.sqlite the oldest French singer is Bob; on suite_2.sqlite (ages swapped) it is Ann:
    # a query that hard-codes the answer passes on the first file only, and is caught.
    gold = ("SELECT name FROM singer WHERE country = 'France' ORDER BY age DESC LIMIT 1", "suite")
    right = "SELECT name FROM singer WHERE country = 'France' ORDER BY age DESC LIMIT 1"
    lucky = "SELECT name FROM singer WHERE name = 'Bob'"
    r = evaluate_pairs([right, lucky], [gold, gold], db_dir=db_dir, etype="exec", workers=0)
    assert [v.ex for v in r.verdicts] == [True, False]
    one = evaluate_pairs([lucky], [(gold[0], "music")], db_dir=db_dir, etype="exec", workers=0)
    assert one.verdicts[0].ex is True


def test_plug_value_tries_gold_literals(db_dir):
    gold = ("SELECT name FROM singer WHERE country = 'France'", "music")
    pred = "SELECT name FROM singer WHERE country = 'france'"
    plain = evaluate_pairs([pred], [gold], db_dir=db_dir, etype="exec", workers=0)
    plugged = evaluate_pairs([pred], [gold], db_dir=db_dir, etype="exec", workers=0, plug_value=True)
    assert plain.verdicts[0].ex is False and plugged.verdicts[0].ex is True


def test_missing_database_is_gold_error_counted_wrong_by_default_and_both_figures_shown(db_dir):
    # the official convention: a gold that cannot run stays in the denominator as a wrong answer
    golds = [("SELECT 1", "music"), ("SELECT 1", "nowhere")]
    r = evaluate_pairs(["SELECT 1", "SELECT 1"], golds, db_dir=db_dir, etype="exec", workers=0)
    assert r.verdicts[1].error == "gold_error"
    a = r.summary["all"]
    assert a["scored"] == 1 and a["ex"] == 0.5 and a["gold_errors"] == 1
    assert a["ex_gold_errors_counted"] == 0.5 and a["ex_gold_errors_excluded"] == 1.0
    assert "gold errors: 1 counted as wrong" in r.table() and "EX with them left out 1.0000 over 1" in r.table()
    # the other convention, on request: left out of the denominator, the counted figure still shown
    r2 = evaluate_pairs(["SELECT 1", "SELECT 1"], golds, db_dir=db_dir, etype="exec", workers=0, gold_errors="exclude")
    assert r2.summary["all"]["ex"] == 1.0 and r2.summary["gold_error_convention"] == "exclude"
    assert "EX with them counted as wrong 0.5000 over 2" in r2.table()
    assert any("nowhere" in w for w in r.warnings)


def test_hostile_predictions_finish_classified_and_leave_files_untouched(db_dir):
    target = db_dir / "music" / "music.sqlite"
    before = sha(target)
    hostile = [
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c",
        "DELETE FROM singer",
        "UPDATE singer SET age = 0",
        "DROP TABLE singer",
        "CREATE TABLE t(x)",
        "VACUUM",
        "SELECT 1; DROP TABLE singer",
        "ATTACH DATABASE ':memory:' AS x",
        "PRAGMA writable_schema = ON",
        "SELECT load_extension('libx')",
        "SELECT randomblob(2000000000)",
        "(" * 3000 + "SELECT 1" + ")" * 3000,
        "SELECT \x00 1",
        "\x00\x01\x02 junk ))) ",
        "",
    ]
    golds = [("SELECT count(*) FROM singer", "music")] * len(hostile)
    t0 = time.perf_counter()
    r = evaluate_pairs(hostile, golds, db_dir=db_dir, etype="all", workers=2, timeout=1.0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 15, elapsed
    for v, sql in zip(r.verdicts, hostile):
        assert v.ex is False, sql
        assert v.error in ERROR_CLASSES and v.error not in (None, "gold_error"), (sql[:40], v.error)
    assert r.verdicts[0].error == "timeout"
    assert sha(target) == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["music.sqlite"]


def test_cli_writes_per_example_rows_and_summary(db_dir, tmp_path):
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT name FROM singer\tmusic\nSELECT count(*) FROM singer\tmusic\n")
    pred = tmp_path / "pred.sql"
    pred.write_text("SELECT name FROM singer\n\n")
    rows, out = tmp_path / "rows.jsonl", tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "sqlcoach.cli", "evaluate", "--gold", str(gold), "--pred", str(pred),
         "--db", str(db_dir), "--etype", "all", "--workers", "1",
         "--per-example", str(rows), "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "EX" in proc.stdout and "no_sql 1" in proc.stdout
    recs = [json.loads(l) for l in rows.read_text().splitlines()]
    assert [r["ex"] for r in recs] == [True, False]
    for r in recs:
        assert {"index", "db_id", "hardness", "ex", "em", "error", "seconds"} <= set(r)
    assert recs[1]["error"] == "no_sql" and recs[0]["hardness"] == "easy"
    summary = json.loads(out.read_text())
    assert summary["all"]["ex"] == 0.5 and summary["all"]["em"] == 0.5


def test_cli_does_not_import_torch(db_dir, tmp_path):
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT 1\tmusic\n")
    pred = tmp_path / "pred.sql"
    pred.write_text("SELECT 1\n")
    code = (
        "import sys; from sqlcoach.cli import main; "
        f"main(['evaluate','--gold',{str(gold)!r},'--pred',{str(pred)!r},'--db',{str(db_dir)!r},'--etype','all','--workers','0','--quiet']); "
        "bad = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules]; "
        "print('HEAVY', bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_turn_reports_interaction_accuracy(db_dir, tmp_path):
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT 1\tmusic\nSELECT 2\tmusic\n\nSELECT 3\tmusic\n")
    pred = tmp_path / "pred.sql"
    pred.write_text("SELECT 1\nSELECT 9\n\nSELECT 3\n")
    r = evaluate_files(gold, pred, db_dir=db_dir, etype="exec", workers=0)
    assert r.summary["all"]["ex"] == pytest.approx(2 / 3)
    assert r.summary["interaction"]["count"] == 2 and r.summary["interaction"]["ex"] == 0.5


def test_difficulty_breakdown_and_bird_metrics_in_the_table(db_dir):
    golds = [("SELECT name FROM singer", "music"), ("SELECT count(*) FROM singer", "music"),
             ("SELECT age FROM singer WHERE country = 'France'", "music")]
    preds = ["SELECT name FROM singer", "SELECT count(*) FROM concert", "SELECT age FROM singer"]
    r = evaluate_pairs(preds, golds, db_dir=db_dir, etype="exec", workers=0, mode="bird",
                       difficulties=["simple", "moderate", "moderate"], ves_iterations=3)
    by = r.summary["by_difficulty"]
    assert by["simple"]["ex"] == 1.0 and by["moderate"]["ex"] == 0.0 and by["moderate"]["count"] == 2
    # Soft-F1: 1 for the correct one, 0 for the wrong count, partial for the superset of ages
    soft = [v.extra["soft_f1"] for v in r.verdicts]
    assert soft[0] == 1.0 and soft[1] == 0.0 and 0 < soft[2] < 1
    table = r.table()
    assert "simple" in table and "moderate" in table and "soft_f1" in table and "ves" in table


_SPIDER = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.mark.skipif(not (_SPIDER / "spider-reference" / "dev972_gold.tsv").is_file(),
                    reason="needs ../shared/data (Spider dev databases and spider-reference)")
def test_spider_dev_rows_are_the_same_whether_hardness_is_scanned_or_parsed(monkeypatch):
    # sql.hardness_scan replaced the parser for plain golds: the per-example rows and the summary
    # of a whole Spider dev evaluation must not change when every gold is parsed instead.
    import sqlcoach.sql.hardness as hardness_mod

    monkeypatch.setenv("SQLCOACH_NO_CACHE", "1")
    ref = _SPIDER / "spider-reference"
    kwargs = dict(db_dir=_SPIDER / "spider" / "database", tables_path=_SPIDER / "spider" / "tables.json", etype="exec",
                  explain=False)

    def rows():
        report = evaluate_files(ref / "dev972_gold.tsv", ref / "flipdir.sql", **kwargs)
        out = [{k: v for k, v in r.items() if k != "seconds"} for r in report.rows()]
        return out, {k: v for k, v in report.summary.items() if k != "seconds"}

    scanned = rows()
    monkeypatch.setattr(hardness_mod, "scan_counts", lambda sql: None)  # the forked labellers inherit it
    parsed = rows()
    assert scanned == parsed
    assert {r["hardness"] for r in scanned[0]} == {"easy", "medium", "hard", "extra"}
