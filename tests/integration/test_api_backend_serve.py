"""The API backend against a real `sqlcoach serve` process (a tiny model taught one query):
`predict --backend openai` -> `evaluate` -> a `method: api` row in `compare`, then `judge`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import serve_fixture as sf  # noqa: E402
from serve_process import ServeProcess  # noqa: E402

from sqlcoach.cli import main  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-serve")
    model = sf.taught_model(root / "model")
    data = root / "data"
    sf.make_databases(root / "dbs")
    (data / "database").mkdir(parents=True)
    shutil.copytree(root / "dbs" / "concert", data / "database" / "concert")
    qs = [("List singer names and ages by age.", sf.TAUGHT_SQL),
          ("How many singers are there?", "SELECT count(*) FROM singer"),
          ("Names and ages of singers, youngest first.", sf.TAUGHT_SQL),
          ("Which singers are older than 30?", "SELECT name FROM singer WHERE age > 30")]
    (data / "dev.json").write_text(json.dumps([{"db_id": "concert", "question": q, "query": g} for q, g in qs]))
    (data / "dev_gold.sql").write_text("".join(f"{g}\tconcert\n" for _, g in qs))
    with ServeProcess(model, "--served-model-name", "taught", "--max-tokens", "32", log=root / "serve.log") as srv:
        yield srv, model, data, root


def test_predict_evaluate_compare_judge_against_serve(setup, capsys):
    srv, model, data, root = setup
    out = root / "pred.sql"
    assert main(["predict", "--backend", "openai", "--base-url", srv.url + "/v1", "--model", "taught", "--data",
                 str(data), "--out", str(out), "--max-new-tokens", "32", "--concurrency", "2"]) == 0
    assert "errors: none" in capsys.readouterr().out
    recs = [json.loads(x) for x in out.with_suffix(".jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(r["usage"]["prompt_tokens"] > 0 and r["usage"]["completion_tokens"] > 0 for r in recs)
    assert out.read_text().splitlines() == [sf.TAUGHT_SQL] * 4  # the taught model's one answer
    assert main(["evaluate", "--gold", str(data / "dev_gold.sql"), "--pred", str(out), "--db", str(data / "database"),
                 "--etype", "exec", "--workers", "0", "--quiet"]) == 0
    assert "EX 0.5000" in capsys.readouterr().out

    cfg = root / "cmp.yaml"
    cfg.write_text(f"start: {model}\nworld: {data}\neval_start: false\nmax_new_tokens: 32\nthreads: 1\n"
                   "prices: {api: {taught: {input_per_m: 1.0, output_per_m: 2.0}}}\n"
                   f"methods:\n  - {{name: taught, method: api, base_url: '{srv.url}/v1', model: taught}}\n")
    assert main(["compare", "--config", str(cfg), "--out", str(root / "cmp")]) == 0
    report = json.loads((root / "cmp" / "report.json").read_text())
    row = report["methods"][0]
    assert row["status"] == "ok" and row["eval"]["summary"]["all"]["ex"] == 0.5 and row["eval"]["questions"] == 4
    assert "## Cost" in (root / "cmp" / "report.md").read_text()

    # the judge plumbing against the same server. The shipped rubric prompt is longer than this
    # tiny model's 512-token context: every request is refused (HTTP 400), recorded, no crash
    judge = ["judge", "--pred", str(out), "--gold", str(data / "dev_gold.sql"), "--questions", str(data / "dev.json"),
             "--db", str(data / "database"), "--url", srv.url + "/v1", "--model", "taught", "--max-tokens", "16"]
    assert main([*judge, "--out", str(root / "judge")]) == 0
    s = json.loads((root / "judge" / "summary.json").read_text())
    assert s["examples"] == 4 and s["request_errors"]["http_error"] == 4 and s["ex"] == 0.5
    # a short template the user supplies: the replies arrive; a tiny model's are not rubric replies: counted
    tpl = root / "short.txt"
    tpl.write_text("Rate it. Question: {question}\nOutput: {prediction}\nSQL_SCORE:")
    assert main([*judge, "--template", str(tpl), "--out", str(root / "judge2")]) == 0
    s = json.loads((root / "judge2" / "summary.json").read_text())
    assert not any(s["request_errors"].values()) and s["judged"] + s["malformed_replies"] == 4
    recs = [json.loads(x) for x in (root / "judge2" / "judge.jsonl").read_text().splitlines()]
    assert all(r["reply"] and r["usage"]["completion_tokens"] for r in recs)
