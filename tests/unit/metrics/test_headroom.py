"""Headroom of sampled runs: pass@k against a brute-force count, selectors scored through the real
executor and comparer, the gold-error conventions, and the strict reader of predict's JSONL."""

from __future__ import annotations

import itertools
import json

import pytest

from sqlcoach.errors import DataError
from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.metrics.headroom import headroom, headroom_files, pass_at_k, read_samples


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_the_share_of_k_subsets_holding_a_correct_sample(n):
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(range(n), k))
            brute = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)


def test_pass_at_k_large_n_and_bad_arguments():
    assert pass_at_k(200, 1, 1) == pytest.approx(1 / 200)
    assert pass_at_k(200, 0, 100) == 0.0 and pass_at_k(200, 150, 100) == 1.0
    for bad in [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


FRANCE = "SELECT name FROM singer WHERE country = 'France'"
MARS = "SELECT name FROM singer WHERE country = 'Mars'"  # runs, returns no row
BROKEN = "SELECT nme FROM singer"
COUNT = "SELECT count(*) FROM singer"

SAMPLES = [
    [MARS, MARS, FRANCE, BROKEN],  # greedy wrong, vote -> the empty majority (wrong), vote-nonempty right
    [COUNT, COUNT, "SELECT count(singer_id) FROM singer", ""],  # every sample that runs is right
    [COUNT, MARS, "", ""],  # the gold fails: gold_error
]
GOLDS = [FRANCE, COUNT, "SELECT nope FROM singer"]
HARD = ["easy", "easy", "medium"]


@pytest.fixture
def pool():
    with ExecutorPool(workers=0) as p:
        yield p


def _files(db_dir):
    return [(str(db_dir / "music" / "music.sqlite"),)] * 3


def test_table_rows_from_real_execution(db_dir, pool):
    t = headroom(SAMPLES, GOLDS, _files(db_dir), HARD, pool=pool, replicates=200)
    assert t.n == 4 and t.questions == 3 and t.levels == ["easy", "medium", "all"]
    mean = {r.name: r.cells["all"].mean for r in t.rows}
    assert mean["greedy"] == pytest.approx(1 / 3)
    assert mean["vote@4"] == pytest.approx(1 / 3)  # two empty results outvote the right one
    assert mean["vote-nonempty@4"] == pytest.approx(2 / 3)
    assert mean["first@4"] == pytest.approx(1 / 3)
    assert mean["pass@1"] == pytest.approx((1 / 4 + 3 / 4 + 0) / 3)
    assert mean["pass@4"] == pytest.approx(2 / 3)
    assert [r.name for r in t.rows] == ["greedy", "first@4", "vote@4", "vote-nonempty@4",
                                        "pass@1", "pass@2", "pass@3", "pass@4"]
    easy = t.row("vote-nonempty@4").cells["easy"]
    assert (easy.mean, easy.questions) == (1.0, 2)
    for r in t.rows:
        for e in r.cells.values():
            assert 0 <= e.lo <= e.mean <= e.hi <= 1
    assert t.row("vote-nonempty@4").vs_greedy.mean == pytest.approx(1 / 3)
    text = t.table()
    assert "vote-nonempty@4" in text and "questions" in text and "0.667 [" in text


def test_any_two_rows_are_paired_on_the_same_questions(db_dir, pool):
    t = headroom(SAMPLES, GOLDS, _files(db_dir), HARD, pool=pool, replicates=200)
    assert t.row("vote@4").values == (0.0, 1.0, 0.0) and t.row("vote-nonempty@4").values == (1.0, 1.0, 0.0)
    d = t.difference("vote-nonempty@4", "vote@4")
    assert d.mean == pytest.approx(1 / 3) and (d.a_only, d.b_only) == (1, 0)
    assert t.difference("vote@4", "vote@4").mean == 0.0
    assert t.row("pass@1").values == pytest.approx((1 / 4, 3 / 4, 0.0))
    with pytest.raises(KeyError, match="no row 'verifier@4'.*vote@4"):
        t.difference("verifier@4", "vote@4")


def test_gold_errors_exclude_leaves_the_question_out(db_dir, pool):
    t = headroom(SAMPLES, GOLDS, _files(db_dir), HARD, pool=pool, gold_errors="exclude", replicates=200)
    assert t.questions == 2 and t.left_out == {"gold_error": 1} and t.levels == ["easy", "all"]
    assert t.row("pass@4").cells["all"].mean == 1.0


def test_a_greedy_file_replaces_sample_one(db_dir, pool):
    t = headroom(SAMPLES, GOLDS, _files(db_dir), HARD, pool=pool, greedy=[FRANCE, "", COUNT], replicates=200)
    assert t.row("greedy").cells["all"].mean == pytest.approx(1 / 3) and t.greedy_source == "a separate greedy file"
    assert t.row("vote-nonempty@4").vs_greedy.mean == pytest.approx(1 / 3)


def test_unequal_or_single_sample_counts_are_errors(db_dir, pool):
    with pytest.raises(DataError, match="same number"):
        headroom([[COUNT, COUNT], [COUNT]], GOLDS[:2], _files(db_dir)[:2], HARD[:2], pool=pool)
    with pytest.raises(DataError, match="same number"):
        headroom([[COUNT]], GOLDS[:1], _files(db_dir)[:1], HARD[:1], pool=pool)
    with pytest.raises(DataError, match="golds"):
        headroom(SAMPLES, GOLDS[:2], _files(db_dir), HARD, pool=pool)


def _write_run(tmp_path, samples):
    gold = tmp_path / "gold.sql"
    gold.write_text("".join(f"{g}\tmusic\n" for g in GOLDS))
    jsonl = tmp_path / "sc.jsonl"
    jsonl.write_text("".join(json.dumps({"index": i, "sql": s[0], "samples": s}) + "\n" for i, s in enumerate(samples)))
    return gold, jsonl


def test_headroom_files_reads_predicts_jsonl(tmp_path, db_dir):
    gold, jsonl = _write_run(tmp_path, SAMPLES)
    t = headroom_files(gold, jsonl, db_dir=db_dir, workers=0)
    assert t.row("vote-nonempty@4").cells["all"].mean == pytest.approx(2 / 3)
    assert t.as_dict()["rows"][0]["cells"]["all"]["questions"] == 3


def test_read_samples_is_strict(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"index": 0, "samples": ["a", "b"]}) + "\n{torn\n")
    with pytest.raises(DataError, match=r"r.jsonl:2"):
        read_samples(p, 2)
    p.write_text(json.dumps({"index": 0, "sql": "a"}) + "\n")
    with pytest.raises(DataError, match="predict --n"):
        read_samples(p, 1)
    p.write_text(json.dumps({"index": 0, "samples": ["a", "b"]}) + "\n")
    with pytest.raises(DataError, match="no record"):
        read_samples(p, 2)
    p.write_text(json.dumps({"index": 3, "samples": ["a"]}) + "\n")
    with pytest.raises(DataError, match="not an example index"):
        read_samples(p, 2)
    p.write_text("".join(json.dumps({"index": 0, "samples": ["a\n b", "c"]}) + "\n" for _ in range(2)))
    with pytest.raises(DataError, match="twice"):
        read_samples(p, 1)
    p.write_text(json.dumps({"index": 0, "samples": ["a\n b", "c"]}) + "\n")
    assert read_samples(p, 1) == [["a b", "c"]]


def _cli(*argv):
    from sqlcoach.cli import main

    return main(["evaluate", "--etype", "exec", "--workers", "0", "--no-explain", *map(str, argv)])


def test_evaluate_finds_the_samples_beside_the_prediction_file(tmp_path, db_dir, capsys):
    gold, jsonl = _write_run(tmp_path, SAMPLES)
    pred = tmp_path / "sc.sql"  # what predict wrote beside sc.jsonl: the chosen (here: first) sample
    pred.write_text("".join(s[0] + "\n" for s in SAMPLES))
    out = tmp_path / "summary.json"
    assert _cli("--gold", gold, "--pred", pred, "--db", db_dir, "--out", out) == 0
    text = capsys.readouterr().out
    assert "headroom: 3 questions, 4 samples each" in text and "vote-nonempty@4" in text
    summary = json.loads(out.read_text())
    assert summary["headroom"]["samples"] == str(jsonl) and summary["headroom"]["n"] == 4
    from sqlcoach.metrics.html import summary_html

    page = summary_html(summary)
    assert "Headroom of the sampled run" in page and "<td class='l'>vote-nonempty@4</td><td>66.67 [" in page
    # --no-headroom turns the search off; a prediction file of another run gets a warning, no table
    assert _cli("--gold", gold, "--pred", pred, "--db", db_dir, "--no-headroom") == 0
    assert "headroom" not in capsys.readouterr().out
    pred.write_text("SELECT 1\n" * 3)
    assert _cli("--gold", gold, "--pred", pred, "--db", db_dir) == 0
    cap = capsys.readouterr()
    assert "headroom:" not in cap.out and "not the same run" in cap.err


def test_evaluate_with_explicit_samples_and_greedy(tmp_path, db_dir, capsys):
    gold, jsonl = _write_run(tmp_path, SAMPLES)
    greedy = tmp_path / "greedy.sql"
    greedy.write_text(f"{FRANCE}\n{COUNT}\n\n")
    assert _cli("--gold", gold, "--pred", greedy, "--db", db_dir, "--samples", jsonl, "--greedy", greedy) == 0
    text = capsys.readouterr().out
    assert "greedy = a separate greedy file" in text


def test_evaluate_headroom_bad_input_is_one_line_errors(tmp_path, db_dir, capsys):
    gold, jsonl = _write_run(tmp_path, SAMPLES)
    pred = tmp_path / "p.sql"
    pred.write_text("SELECT 1\n")
    assert _cli("--gold", gold, "--pred", pred, "--db", db_dir, "--greedy", pred) == 2
    assert "needs a sampled run" in capsys.readouterr().err
    jsonl.write_text('{"index": 0, "sql": "x"}\n')
    assert _cli("--gold", gold, "--pred", pred, "--db", db_dir, "--samples", jsonl) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sc.jsonl:1" in err
