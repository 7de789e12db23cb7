"""The prediction driver with a fake generator: file formats, voting through the real executor,
resume after a crash (torn JSONL line reported with file and line)."""

from __future__ import annotations

import json
import sqlite3

import pytest

import sqlcoach.generate.predict as P
from sqlcoach.generate.hf import Generations
from sqlcoach.prompts.settings import PromptSettings
from sqlcoach.types import Example

REAL_BUILD_PROMPTS = P.build_prompts  # before the autouse fixture below replaces it


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price INTEGER)")
    con.executemany("INSERT INTO item VALUES (?, ?, ?)", [(1, "pen", 3), (2, "cup", 7), (3, "hat", 12)])
    con.commit()
    con.close()
    return str(path)


def _examples(db, n=5):
    return [Example(id=f"e{i}", db_id="shop", question=f"q{i}", gold_sql="SELECT 1", db_path=db) for i in range(n)]


class FakeGen:
    """Answers depend on the prompt text; records which prompts it was asked about."""

    def __init__(self, answers):
        self.answers = answers
        self.seen: list[str] = []

    def __call__(self, model, tokenizer, prompts, *, n, on_batch=None, **kw):
        self.seen.extend(prompts)
        texts = [list(self.answers(p, n)) for p in prompts]
        if on_batch:
            on_batch(len(prompts))
        return Generations(texts, prompt_tokens=10 * len(prompts), generated_tokens=5 * n * len(prompts), seconds=0.01)


@pytest.fixture(autouse=True)
def plain_prompts(monkeypatch):
    # The prompt text is the question: the driver's logic is under test here, not the templates.
    monkeypatch.setattr(P, "build_prompts", lambda exs, tok, **kw: [e.question for e in exs])


def test_greedy_files(tmp_path, db):
    gen = FakeGen(lambda p, n: ["SELECT name\nFROM item\n  WHERE id = 1"] if p != "q3" else ["I cannot answer"])
    out = tmp_path / "pred.sql"
    s = P.predict(None, None, _examples(db), out, generate_fn=gen, extract=lambda t: t if t.startswith("SELECT") else "",
                  progress=False, chunk_size=2)
    lines = out.read_text().split("\n")
    assert lines[:5] == ["SELECT name FROM item WHERE id = 1"] * 3 + [""] + ["SELECT name FROM item WHERE id = 1"]
    assert len(out.read_text().splitlines()) == 5
    recs = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert [r["index"] for r in recs] == [0, 1, 2, 3, 4]
    assert recs[3]["raw"] == "I cannot answer" and recs[3]["sql"] == ""
    assert s.predicted_now == 5 and s.resumed == 0 and s.generated_tokens == 25


def test_self_consistency_votes_by_result(tmp_path, db):
    samples = ["SELECT name FROM item WHERE price > 100",  # runs, empty result: a group of 1
               "SELECT nme FROM item",                      # fails
               "SELECT name FROM item WHERE price > 5",     # cup, hat
               "SELECT name FROM item WHERE id >= 2",       # cup, hat (same rows, other SQL)
               ""]
    gen = FakeGen(lambda p, n: samples[:n])
    out = tmp_path / "sc.sql"
    P.predict(None, None, _examples(db, 2), out, n=5, generate_fn=gen, extract=lambda t: t, progress=False, workers=0)
    rec = json.loads((tmp_path / "sc.jsonl").read_text().splitlines()[0])
    assert rec["sql"] == samples[2] and rec["chosen"] == 2
    assert rec["votes"] == [1, 0, 2, 2, 0]
    assert rec["sample_errors"][1] == "exec_error" and rec["sample_errors"][4] == "not_run"
    assert out.read_text().splitlines() == [samples[2]] * 2


def test_select_rule_is_applied_recorded_and_part_of_the_run_key(tmp_path, db):
    from sqlcoach.generate.resume import read_meta

    samples = ["SELECT name FROM item WHERE price > 100",  # runs, empty result
               "SELECT name FROM item WHERE price > 100",  # the same empty result: the vote's majority
               "SELECT nme FROM item",                      # fails
               "SELECT name FROM item WHERE price > 5"]     # cup, hat
    gen = FakeGen(lambda p, n: samples[:n])
    keys = {}
    for rule, want in (("vote", 0), ("vote-nonempty", 3), ("first", 0)):
        out = tmp_path / f"{rule}.sql"
        P.predict(None, None, _examples(db, 1), out, n=4, generate_fn=gen, extract=lambda t: t, progress=False,
                  workers=0, select=rule)
        rec = json.loads(out.with_suffix(".jsonl").read_text().splitlines()[0])
        assert (rec["chosen"], rec["select"], rec["sql"]) == (want, rule, samples[want])
        assert rec["votes"] == [2, 2, 0, 1] and rec["fallback"] is False
        keys[rule] = read_meta(out)["run_key"]
    assert len(set(keys.values())) == 3  # a file chosen by one rule never resumes under another


def test_unknown_select_rule_fails_before_any_file_is_touched(tmp_path, db):
    from sqlcoach.errors import ConfigError

    out = tmp_path / "pred.sql"
    out.write_text("SELECT keep\n")
    for rule, match in (("majority", "vote-nonempty"), ("verifier", "--verifier DIR")):
        with pytest.raises(ConfigError, match=match):
            P.predict(None, None, _examples(db, 1), out, n=2, generate_fn=FakeGen(lambda p, n: ["x"] * n),
                      select=rule, progress=False)
    assert out.read_text() == "SELECT keep\n"


def test_a_verifier_selector_reads_the_schema_and_its_scores_are_recorded(tmp_path, db):
    from sqlcoach.generate.verifier_select import VerifierSelector

    class Fake:
        read = []

        def score(self, items):
            self.read.extend(items)
            return [float(len(sql)) for _, _, sql, _ in items]  # the longest SQL that runs wins

    samples = ["SELECT name FROM item", "SELECT name FROM item WHERE price > 5", "SELECT nme FROM item WHERE 1 = 1 AND 2 = 2"]
    out = tmp_path / "pred.sql"
    P.predict(None, None, _examples(db, 1), out, n=3, generate_fn=FakeGen(lambda p, n: samples[:n]),
              extract=lambda t: t, progress=False, workers=0, select=VerifierSelector(Fake(), "verifier"))
    rec = json.loads(out.with_suffix(".jsonl").read_text().splitlines()[0])
    assert (rec["chosen"], rec["select"]) == (1, "verifier")  # the failing sample would score highest: never scored
    assert rec["scores"] == [float(len(x)) for x in samples[:2]] + [None] and rec["score"] == len(samples[1])
    assert "item(" in Fake.read[0][1]  # predict filled the schema text the verifier reads
    from sqlcoach.generate.resume import read_meta

    assert "verifier:" in json.dumps(read_meta(out))  # the rule and the verifier join the run key


def test_cli_select_needs_samples():
    from sqlcoach.cli import build_parser
    from sqlcoach.commands.predict import run
    from sqlcoach.errors import ConfigError

    args = build_parser().parse_args(["predict", "--model", "m", "--data", "d", "--out", "o.sql", "--select", "first"])
    with pytest.raises(ConfigError, match="--n 2"):
        run(args)
    assert build_parser().parse_args(["predict", "--model", "m", "--data", "d", "--out", "o.sql"]).select is None


def test_resume_skips_done_examples_and_reports_torn_line(tmp_path, db, capsys):
    out = tmp_path / "pred.sql"
    jsonl = tmp_path / "pred.jsonl"
    # a first run of the same settings that died after examples 0 and 2, mid-way through 3
    first = FakeGen(lambda p, n: ["SELECT 42" if p == "q0" else "SELECT 43"])
    P.predict(None, None, _examples(db), out, generate_fn=first, extract=lambda t: t, progress=False)
    recs = {json.loads(x)["index"]: x for x in jsonl.read_text().splitlines()}
    jsonl.write_text(recs[0] + "\n" + recs[2] + "\n" + '{"index": 3, "sql": "SELEC')
    gen = FakeGen(lambda p, n: ["SELECT 7"])
    s = P.predict(None, None, _examples(db), out, generate_fn=gen, extract=lambda t: t, progress=False, resume=True)
    assert sorted(gen.seen) == ["q1", "q3", "q4"]
    assert s.resumed == 2 and s.predicted_now == 3
    assert s.bad_lines and s.bad_lines[0].startswith(f"{jsonl}:3:")
    assert "pred.jsonl:3" in capsys.readouterr().err
    assert out.read_text().splitlines() == ["SELECT 42", "SELECT 7", "SELECT 43", "SELECT 7", "SELECT 7"]
    # every line of the rewritten JSONL is valid, one record per example
    recs = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert sorted(r["index"] for r in recs) == [0, 1, 2, 3, 4]
    # a second run has nothing left to do
    gen2 = FakeGen(lambda p, n: ["SELECT 8"])
    s2 = P.predict(None, None, _examples(db), out, generate_fn=gen2, extract=lambda t: t, progress=False, resume=True)
    assert gen2.seen == [] and s2.predicted_now == 0 and s2.resumed == 5


def test_fresh_run_replaces_old_files_and_resume_keeps_finished_records(tmp_path, db):
    out = tmp_path / "pred.sql"
    jsonl = tmp_path / "pred.jsonl"
    out.write_text("SELECT stale\n" * 9)
    jsonl.write_text(
        json.dumps({"index": 0, "id": "e0", "db_id": "shop", "raw": "r", "sql": "SELECT 42"}) + "\n"
        + json.dumps({"index": 1, "id": "e1", "db_id": "shop", "raw": "r", "sql": "SELECT 43"}) + "\n"
    )
    # resume=False (the default): nothing of the old run survives, every example is predicted
    gen = FakeGen(lambda p, n: ["SELECT 7"])
    s = P.predict(None, None, _examples(db, 3), out, generate_fn=gen, extract=lambda t: t, progress=False)
    assert sorted(gen.seen) == ["q0", "q1", "q2"] and s.resumed == 0 and s.predicted_now == 3
    assert out.read_text().splitlines() == ["SELECT 7"] * 3
    assert [json.loads(x)["sql"] for x in jsonl.read_text().splitlines()] == ["SELECT 7"] * 3
    # resume=True: the finished records are kept (not predicted again), the missing ones predicted
    lines = jsonl.read_text().splitlines()
    jsonl.write_text(lines[0].replace("SELECT 7", "SELECT 42") + "\n")
    gen2 = FakeGen(lambda p, n: ["SELECT 8"])
    s2 = P.predict(None, None, _examples(db, 3), out, generate_fn=gen2, extract=lambda t: t, progress=False, resume=True)
    assert sorted(gen2.seen) == ["q1", "q2"] and s2.resumed == 1 and s2.predicted_now == 2
    assert out.read_text().splitlines() == ["SELECT 42", "SELECT 8", "SELECT 8"]


def test_unknown_template_fails_before_any_file_is_touched(tmp_path, db):
    from sqlcoach.errors import ConfigError

    out = tmp_path / "pred.sql"
    out.write_text("SELECT keep\n")
    with pytest.raises(ConfigError, match="unknown template"):
        P.predict(None, None, _examples(db, 1), out, generate_fn=FakeGen(lambda p, n: ["x"]),
                  prompt=PromptSettings(template="nope"), progress=False)
    assert out.read_text() == "SELECT keep\n"


def test_build_prompts_is_the_builder_prediction_text(db):
    from sqlcoach.prompts.builder import PromptBuilder

    exs = _examples(db, 2)
    want = [PromptBuilder("minimal", "compact", 0).prediction_text(ex, None) for ex in exs]
    assert REAL_BUILD_PROMPTS(exs, None, prompt=PromptSettings(template="minimal", schema_sample_values=0)) == want


def test_one_line():
    assert P.one_line("SELECT a,\n  b\r\nFROM t\t WHERE x = 1") == "SELECT a, b FROM t WHERE x = 1"


def test_read_predictions(tmp_path, db):
    gen = FakeGen(lambda p, n: ["SELECT 1", "SELECT 1"][:n])
    P.predict(None, None, _examples(db, 2), tmp_path / "p.sql", n=2, generate_fn=gen, extract=lambda t: t,
              progress=False, workers=0)
    preds = P.read_predictions(tmp_path / "p.jsonl")
    assert [p.index for p in preds] == [0, 1] and preds[0].votes == (2, 2) and preds[0].samples == ("SELECT 1", "SELECT 1")


def test_anonymized_template_sql_is_mapped_back_before_voting(tmp_path, db):
    # t1 = item, c1 = id, c2 = name, c3 = price; "cup" in the question is the value v1
    exs = [Example(id="a", db_id="shop", question="What is the price of the cup?", gold_sql="SELECT 1", db_path=db)]
    samples = ["SELECT c3 FROM t1 WHERE c2 = 'v1'", "SELECT c3 FROM t1 WHERE c2 = 'v1'", "SELECT c9 FROM t1"]
    gen = FakeGen(lambda p, n: samples[:n])
    out = tmp_path / "anon.sql"
    P.predict(None, None, exs, out, n=3, generate_fn=gen, extract=lambda t: t, progress=False, workers=0,
              prompt=PromptSettings(template="anonymized"))
    rec = json.loads((tmp_path / "anon.jsonl").read_text().splitlines()[0])
    assert rec["sql"] == "SELECT price FROM item WHERE name = 'cup'"
    assert rec["raw"] == samples[0] and rec["votes"] == [2, 2, 0]
    assert out.read_text().splitlines() == ["SELECT price FROM item WHERE name = 'cup'"]


def test_cli_resume_flag_is_off_by_default():
    from sqlcoach.cli import build_parser

    base = ["predict", "--model", "m", "--data", "d", "--out", "o.sql"]
    assert build_parser().parse_args(base).resume is False
    assert build_parser().parse_args([*base, "--resume"]).resume is True


def test_cli_prefix_cache_flag_defaults_to_auto():
    from sqlcoach.cli import build_parser

    base = ["predict", "--model", "m", "--data", "d", "--out", "o.sql"]
    assert build_parser().parse_args(base).prefix_cache == "auto"
    assert build_parser().parse_args([*base, "--prefix-cache", "off"]).prefix_cache == "off"
