"""``sqlcoach view`` over generated run folders (tests/view_fixture.py), through FastAPI's
TestClient: what is found, listing / filtering / paging / sorting, one question opened with
live result tables, the A/B diff with McNemar's test, training runs, malformed lines, the API
key, and requests that try to name a path."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import view_fixture as vf  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from sqlcoach.cli import main  # noqa: E402
from sqlcoach.errors import DataError  # noqa: E402
from sqlcoach.metrics.stats import mcnemar_counts  # noqa: E402
from sqlcoach.view.app import build_app, samples_of, turns_of  # noqa: E402
from sqlcoach.view.setup import ViewOptions, open_viewer  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return vf.make_runs(tmp_path_factory.mktemp("view-runs"))


def _client(*roots, api_key=None, data=None):
    viewer = open_viewer(ViewOptions(roots=[str(r) for r in roots], api_key=api_key, data=data, sql_workers=0),
                         log=lambda m: None)
    return TestClient(build_app(viewer)), viewer


@pytest.fixture(scope="module")
def client(runs):
    c, viewer = _client(runs["demo"], runs["compare"])
    yield c
    viewer.close()


def _file(client, label):
    files = client.get("/api/catalog").json()["files"]
    return next(f for f in files if f["label"] == label)


def test_catalog_finds_predictions_trainings_and_reports(client):
    cat = client.get("/api/catalog").json()
    labels = [f["label"] for f in cat["files"]]
    assert labels == ["demo/pred/greedy.jsonl", "demo/pred/sc2.jsonl", "compare-x/methods/a/pred.jsonl",
                      "compare-x/methods/b/pred.jsonl"]
    a = _file(client, "demo/pred/greedy.jsonl")
    assert (a["count"], a["scored"], a["right"]) == (6, 6, 3)
    assert [t["label"] for t in cat["trainings"]] == ["demo/sft", "compare-x/methods/a/train"]
    assert cat["trainings"][0]["summary"]["global_step"] == 40
    assert [p[0] for p in cat["trainings"][0]["curves"]["loss"]] == [float(s) for s in range(5, 41, 5)]
    assert cat["trainings"][0]["config"] == {"learning_rate": 1e-3}
    assert sorted(cat["trainings"][1]["curves"]) == ["execution", "format", "loss"]  # the reward curve's values too
    assert sorted(r["label"] for r in cat["reports"]) == ["compare-x/report.html", "demo/report.html"]


def test_rows_carry_question_database_hardness_gold_prediction_verdict_error(client):
    fid = _file(client, "demo/pred/greedy.jsonl")["id"]
    rows = client.get(f"/api/files/{fid}/rows").json()["rows"]
    assert [r["question"] for r in rows] == [q for _, q, _ in vf.QUESTIONS]
    assert [r["verdict"] for r in rows] == ["right", "right", "wrong", "wrong", "right", "wrong"]
    assert [r["error"] for r in rows] == [None, None, "wrong_result", "exec_error", None, "wrong_result"]
    assert rows[4]["db_id"] == "shop" and rows[4]["gold"] == vf.QUESTIONS[4][2] and rows[4]["pred"] == vf.PRED_A[4]
    assert all(r["hardness"] in ("easy", "medium", "hard", "extra") for r in rows)


def test_filters_search_sort_and_facets(client):
    fid = _file(client, "demo/pred/greedy.jsonl")["id"]

    def idx(**params):
        return [r["index"] for r in client.get(f"/api/files/{fid}/rows", params=params).json()["rows"]]

    assert idx(verdict="wrong") == [2, 3, 5]
    assert idx(error="exec_error") == [3]
    assert idx(error="none") == [0, 1, 4]
    assert idx(db="shop") == [4, 5]
    assert idx(db="shop", verdict="right") == [4]
    assert idx(q="FRANCE") == [3]  # case-insensitive, question text
    assert idx(q="max(age)") == [2]  # and the SQL
    assert idx(sort="db", order="desc") == [5, 4, 3, 2, 1, 0]
    assert idx(sort="verdict") == [0, 1, 4, 2, 3, 5]
    facets = client.get(f"/api/files/{fid}/rows").json()["facets"]
    assert facets["verdict"] == {"right": 3, "wrong": 3}
    assert facets["db"] == {"concert": 4, "shop": 2}
    hard = facets["hardness"]
    assert sum(hard.values()) == 6
    level = next(iter(hard))
    assert len(idx(hardness=level)) == hard[level]
    for bad in ({"verdict": "maybe"}, {"sort": "../x"}, {"order": "up"}, {"limit": 0}, {"limit": 10_000}, {"offset": -1}):
        r = client.get(f"/api/files/{fid}/rows", params=bad)
        assert r.status_code == 400, bad
        assert "error" in r.json()


def test_paging_over_thousands_of_rows(tmp_path):
    world = vf.make_world(tmp_path / "data")
    vf.per_example_file(tmp_path / "big" / "rows.jsonl", 5000)
    c, viewer = _client(tmp_path / "big", data=world)
    try:
        seen = []
        for offset in range(0, 5000, 500):
            page = c.get("/api/files/0/rows", params={"offset": offset, "limit": 500}).json()
            assert page["total"] == 5000 and len(page["rows"]) == 500
            seen += [r["index"] for r in page["rows"]]
        assert seen == list(range(5000))
        wrong = c.get("/api/files/0/rows", params={"verdict": "wrong", "limit": 10, "offset": 20}).json()
        assert wrong["total"] == 5000 // 6 * 3  # indices 2, 3, 5 of every 6 (the last two rows, 4998 and 4999, are right)
        assert all(r["verdict"] == "wrong" for r in wrong["rows"]) and len(wrong["rows"]) == 10
        # per-example rows are matched to --data by database and gold: the question is known
        assert wrong["rows"][0]["question"] in {q for _, q, _ in vf.QUESTIONS}
    finally:
        viewer.close()


def test_open_question_runs_both_queries_and_explains_them(client):
    fid = _file(client, "demo/pred/greedy.jsonl")["id"]
    d = client.get(f"/api/files/{fid}/rows/2").json()
    assert d["question"] == "What is the average age of singers?"
    assert d["gold_pretty"] == "SELECT\n  AVG(age)\nFROM singer"
    assert d["gold_result"]["columns"] == ["avg(age)"] and d["gold_result"]["rows"] == [[34.5]]
    assert d["pred_result"]["rows"] == [[45]]
    assert d["plans"]["gold"]["features"]["full_scans"] == 1 and d["plans"]["gold"]["lines"] == ["SCAN singer"]
    assert d["plans"]["pred_worse"] is False
    err = client.get(f"/api/files/{fid}/rows/3").json()
    assert err["pred_result"]["error"] == "exec_error" and "nation" in err["pred_result"]["message"]
    assert [r[0] for r in err["gold_result"]["rows"]] == ["Ana", "Cy"]


def test_samples_votes_verifier_scores_and_agent_turns(client):
    fid = _file(client, "demo/pred/sc2.jsonl")["id"]
    rows = client.get(f"/api/files/{fid}/rows").json()["rows"]
    pos = next(r["pos"] for r in rows if r["index"] == 2)
    d = client.get(f"/api/files/{fid}/rows/{pos}").json()
    assert [s["sql"] for s in d["samples"]] == [vf.PRED_B[2], vf.PRED_A[2]]
    assert [s["votes"] for s in d["samples"]] == [1, 1]
    assert [s["verifier_scores"] for s in d["samples"]] == [0.9, 0.2]
    assert [s["chosen"] for s in d["samples"]] == [True, False]
    assert d["turns"][0]["observation"] == "avg(age)\n34.5"
    assert d["turns"][0]["query_pretty"] == "SELECT\n  AVG(age)\nFROM singer"
    # candidates as objects: their fields are the columns
    objs = samples_of({"samples": [{"sql": "SELECT 1", "score": 0.7}, {"sql": "SELECT 2", "score": 0.1}], "chosen": 1})
    assert objs == [{"sql": "SELECT 1", "chosen": False, "score": 0.7}, {"sql": "SELECT 2", "chosen": True, "score": 0.1}]
    # records without them: empty lists, not errors
    assert samples_of({"sql": "x"}) == [] and turns_of({"turns": "junk"}) == []


def test_malformed_line_is_reported_with_file_and_line_and_the_rest_loads(client):
    f = _file(client, "demo/pred/sc2.jsonl")
    assert f["count"] == 6 and f["bad_count"] == 1
    bad = f["bad_lines"][0]
    assert bad["line"] == vf.BAD_LINE and bad["file"].endswith("demo/pred/sc2.jsonl")
    assert bad["error"].startswith("invalid JSON") and bad["text"].startswith('{"index": 99')
    assert (f["scored"], f["right"]) == (6, 4)


def test_an_unreadable_file_is_left_out_and_the_others_load(tmp_path, runs):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "broken.jsonl").write_bytes(b'{"index": 0, "sql": "SELECT \xff"}\n')
    vf.per_example_file(tmp_path / "run" / "rows.jsonl", 4, bad_at=2)
    c, viewer = _client(tmp_path / "run", data=runs["demo"] / "world")
    try:
        cat = c.get("/api/catalog").json()
        assert [f["label"] for f in cat["files"]] == ["run/rows.jsonl"]
        assert cat["files"][0]["count"] == 4 and cat["files"][0]["bad_lines"][0]["line"] == 2
        assert any("broken.jsonl: left out" in p for p in cat["problems"])
    finally:
        viewer.close()


def test_ab_diff_with_mcnemar(client):
    a = _file(client, "demo/pred/greedy.jsonl")["id"]
    b = _file(client, "demo/pred/sc2.jsonl")["id"]
    d = client.get("/api/diff", params={"a": a, "b": b}).json()
    assert d["paired"] == 6
    assert sorted(x["a_pos"] for x in d["a_only"]) == vf.A_ONLY
    assert sorted(x["b_pos"] for x in d["b_only"]) == vf.B_ONLY
    assert (d["a_right"], d["b_right"], d["both_right"], d["both_wrong"]) == (3, 4, 2, 1)
    assert d["mcnemar_p"] == mcnemar_counts(1, 2)
    rev = client.get("/api/diff", params={"a": b, "b": a}).json()
    assert len(rev["a_only"]) == 2 and len(rev["b_only"]) == 1
    # the comparison's two methods pair by example too (different world folder, same questions)
    ca, cb = (_file(client, f"compare-x/methods/{m}/pred.jsonl")["id"] for m in "ab")
    assert client.get("/api/diff", params={"a": ca, "b": cb}).json()["paired"] == 6


def test_blobs_serve_plots_and_reports_by_id_only(client):
    cat = client.get("/api/catalog").json()
    plot = cat["trainings"][0]["plots"][0]
    r = client.get(f"/blob/{plot}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    rep = cat["reports"][0]["id"]
    r = client.get(f"/blob/{rep}")
    assert r.status_code == 200 and "report" in r.text and "sandbox" in r.headers["content-security-policy"]


@pytest.mark.parametrize("path", [
    "/blob/../../../../etc/passwd", "/blob/..%2F..%2F..%2Fetc%2Fpasswd", "/blob/%2Fetc%2Fpasswd", "/blob//etc/passwd",
    "/blob/-1", "/blob/999", "/blob/0x1", "/blob/1e3", "/api/files/..%2F..%2Fetc%2Fpasswd/rows",
    "/api/files/0/rows/..%2F..%2Fetc%2Fpasswd", "/api/files/%2Fetc%2Fpasswd/rows", "/api/files/99/rows",
    "/api/files/0/rows/999", "/api/diff?a=0&b=..%2Fx", "/api/diff?a=/etc/passwd&b=0",
    "/%2e%2e/%2e%2e/etc/passwd", "/static/../../etc/passwd",
])
def test_traversal_requests_are_refused(client, path):
    r = client.get(path)
    assert r.status_code in (400, 404), (path, r.status_code)
    assert "root:" not in r.text


def test_filter_values_are_never_paths(client):
    r = client.get("/api/files/0/rows", params={"db": "../../../../etc/passwd", "q": "/etc/passwd"})
    assert r.status_code == 200 and r.json()["total"] == 0


def test_a_link_to_outside_the_folder_is_left_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.html").write_text("<p>secret</p>")
    run = vf.make_runs(tmp_path / "runs")["demo"]
    (run / "pred" / "report.html").symlink_to(outside / "secret.html")
    os.symlink(outside, run / "linked")  # a symlinked folder is not walked
    vf.per_example_file(outside / "rows.jsonl", 3)
    c, viewer = _client(run)
    try:
        cat = c.get("/api/catalog").json()
        assert [r["label"] for r in cat["reports"]] == ["demo/report.html"]
        assert not any("linked" in f["label"] for f in cat["files"])
        assert any("a link to outside" in p for p in cat["problems"])
        for i in range(len(viewer.catalog.files)):
            assert "secret" not in c.get(f"/blob/{i}").text
        # a report re-pointed outside after start-up is not served either
        rid = cat["reports"][0]["id"]
        (run / "report.html").unlink()
        (run / "report.html").symlink_to(outside / "secret.html")
        r = c.get(f"/blob/{rid}")
        assert r.status_code == 404 and "secret" not in r.text
    finally:
        viewer.close()


def test_api_key_guards_the_api_but_not_the_page(runs):
    c, viewer = _client(runs["demo"], api_key="s3cret")
    try:
        assert c.get("/").status_code == 200
        r = c.get("/api/catalog")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert c.get("/blob/0").status_code == 401
        assert c.get("/api/catalog", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/catalog", headers={"Authorization": "Bearer s3cret"}).json()["auth"] is True
    finally:
        viewer.close()


def test_without_a_world_rows_are_unscored_and_say_why(tmp_path, runs):
    rec = json.loads((runs["demo"] / "pred" / "greedy.jsonl").read_text().splitlines()[0])
    vf.write_jsonl(tmp_path / "alone" / "pred.jsonl", [rec])
    c, viewer = _client(tmp_path / "alone" / "pred.jsonl")
    try:
        f = c.get("/api/catalog").json()["files"][0]
        assert f["scored"] == 0 and "--data" in f["note"]
        d = c.get("/api/files/0/rows/0").json()
        assert d["verdict"] == "unscored" and d["has_database"] is False and d["pred_result"]["error"] == "not_run"
    finally:
        viewer.close()
    c, viewer = _client(tmp_path / "alone", data=runs["demo"] / "world")
    try:
        assert c.get("/api/catalog").json()["files"][0]["right"] == 1
    finally:
        viewer.close()


def test_nothing_known_is_a_one_line_error_naming_what_was_looked_for(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.jsonl").write_text('{"something": "else"}\n')
    with pytest.raises(DataError, match="looked for prediction JSONL"):
        open_viewer(ViewOptions(roots=[str(tmp_path / "empty")], sql_workers=0), log=lambda m: None)
    assert main(["view", str(tmp_path / "empty"), "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sqlcoach view: error: nothing to show in") and "summary.json" in err and "\n" not in err
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
