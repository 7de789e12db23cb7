"""`method: api` rows in a comparison: a fake OpenAI-compatible endpoint answers the evaluation
questions in a real child process; the row is scored by the same scorer as trained methods, gets
cost cells from the price table, a plans row, and is not asked again on a rerun."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fake_openai import FakeOpenAI, asked, dev_golds, tiny_world  # noqa: E402

from sqlcoach.config import build_config  # noqa: E402
from sqlcoach.config.compare import ApiPrice, CompareConfig, api_training_usd  # noqa: E402
from sqlcoach.errors import ConfigError  # noqa: E402
from sqlcoach.pipelines.compare import run_compare  # noqa: E402
from sqlcoach.pipelines.compare.report import cost_cells  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tiny_world(tmp_path_factory.mktemp("w") / "world")


def _responder(world):
    golds = dev_golds(world)
    order = list(golds)

    def responder(req, n):
        q = asked(req, golds)
        k = order.index(q)
        if k == 1 and n < 3:
            return ("status", 429, "", {"Retry-After": "0.05"})
        sql = golds[q] if k % 2 == 0 else "SELECT 1"
        return ("ok", sql, {"prompt_tokens": 100, "completion_tokens": 20})

    return responder


def test_api_method_validation(tmp_path):
    base = dict(start=str(tmp_path), world=str(tmp_path))
    with pytest.raises(ConfigError, match="needs base_url"):
        build_config(CompareConfig, dict(base, methods=[{"name": "a", "method": "api"}]))
    with pytest.raises(ConfigError, match="not trained"):
        build_config(CompareConfig, dict(base, methods=[{"name": "a", "method": "api", "base_url": "http://x/v1",
                                                          "model": "m", "config": "configs/sft/demo.yaml"}]))
    with pytest.raises(ConfigError, match="overrides may set only"):
        build_config(CompareConfig, dict(base, methods=[{"name": "a", "method": "api", "base_url": "http://x/v1",
                                                          "model": "m", "overrides": {"learning_rate": 1}}]))
    with pytest.raises(ConfigError, match="for method: api only"):
        build_config(CompareConfig, dict(base, methods=[{"name": "a", "method": "sft", "base_url": "http://x/v1"}]))
    with pytest.raises(ConfigError, match="prices.api.a"):
        build_config(CompareConfig, dict(base, methods=[{"name": "a", "method": "sft"}],
                                         prices={"api": {"a": {"input_per_m": 1, "per_call": 2}}}))


def test_compare_with_an_api_row(world, tmp_path):
    start = tmp_path / "start"
    start.mkdir()
    (start / "config.json").write_text("{}")
    prices = {"hardware": "NVIDIA A40", "train_per_hour": 0.475, "predict_per_hour": 0.475,
              "api": {"served": {"input_per_m": 0.5, "output_per_m": 1.5, "train_usd": 8.0}}}
    with FakeOpenAI(_responder(world)) as srv:
        cfg = build_config(CompareConfig, dict(
            start=str(start), world=str(world), eval_start=False, eval_limit=8, template="sql_terminal",
            schema_style="compact", schema_sample_values=0, prices=prices, threads=1,
            methods=[{"name": "served", "method": "api", "base_url": srv.base_url, "model": "fake",
                      "concurrency": 2, "max_retries": 4}]))
        out = tmp_path / "cmp"
        report = run_compare(cfg, out, log=lambda m: None)
        row = report["methods"][0]
        assert row["status"] == "ok", row
        ev = row["eval"]
        assert ev["questions"] == 8 and ev["summary"]["all"]["ex"] == 0.5  # gold for half, SELECT 1 for the rest
        assert ev["api_retries"] >= 1 and not any(ev["api_errors"].values())
        assert ev["prompt_tokens"] == 800 and ev["generated_tokens"] == 160 and ev["usage_known"] == 8
        assert ev["summary"]["plans"]["explained_gold"] == 8
        n_req = len(srv.requests)
        # rerun: the row is reused, the endpoint is not asked again
        again = run_compare(cfg, out, log=lambda m: None)
        assert again["methods"][0]["status"] == "ok" and len(srv.requests) == n_req
    cells = dict(zip(("method", "EX", "questions", "train", "hours", "trained", "per1k", "tok", "priced"),
                     cost_cells(row, report["config"]["prices"])))
    # 100 in + 20 out per question at $0.5 / $1.5 per 1M: $0.00008 per question, $0.08 per 1,000
    assert cells["per1k"] == "0.0800" and cells["train"] == "8.00" and cells["tok"] == "100+20"
    assert cells["hours"] == "-" and cells["trained"] == "-"  # a fixed train_usd: no tokens to show
    md = (out / "report.md").read_text()
    assert "## Cost" in md and "| served | 50.0 | 8 | 8.00 | - | - | 0.0800 | 100+20 |" in md
    assert "## Plans (EXPLAIN QUERY PLAN)" in md
    page = (out / "report.html").read_text()
    assert "<h2>Cost</h2>" in page and "<h2>Plans (EXPLAIN QUERY PLAN)</h2>" in page
    recs = [json.loads(x) for x in (out / "methods" / "served" / "pred.jsonl").read_text().splitlines()]
    assert len(recs) == 8 and all(r["usage"]["completion_tokens"] == 20 for r in recs)


def test_cost_of_a_trained_row():
    row = {"name": "sft", "method": "sft", "status": "ok",
           "train": {"prepare_seconds": 60.0, "process_seconds": 3540.0},
           "eval": {"questions": 100, "predict_seconds": 36.0, "prompt_tokens": 30000, "generated_tokens": 4000,
                    "summary": {"all": {"ex": 0.25}}}}
    c = cost_cells(row, {"hardware": "NVIDIA A40", "train_per_hour": 0.475, "predict_per_hour": 0.475})
    # one hour of training at $0.475; 0.36 s per prediction -> 360 s per 1,000 -> $0.0475
    assert c[3:7] == ["0.4750", "1.000", "-", "0.0475"] and c[7] == "300+40" and c[8].startswith("NVIDIA A40")
    none = cost_cells(row, None)  # no prices: nothing invented, the hours are still measured
    assert (none[3], none[4], none[6]) == ("-", "1.000", "-")


def test_cost_of_a_fine_tuned_api_row_is_trained_tokens_times_the_training_price():
    """Seed 004's comparison: GPT-3.5 fine-tuned through the provider's API beside a LoRA run."""
    row = {"name": "gpt35-ft", "method": "api", "status": "ok", "config": {"model": "ft:gpt-3.5-turbo:acme::x"},
           "eval": {"questions": 100, "usage_known": 100, "prompt_tokens": 50000, "generated_tokens": 3000,
                    "summary": {"all": {"ex": 0.8}}}}
    price = {"input_per_m": 3.0, "output_per_m": 6.0, "train_per_m": 8.0, "trained_tokens": 1_423_230}
    c = cost_cells(row, {"api": {"ft:gpt-3.5-turbo:acme::x": price}})  # found by its model name
    # 1,423,230 tokens x $8 / 1M = $11.39; (500 x $3 + 30 x $6) / 1M x 1000 = $1.68 per 1,000
    assert c[3:7] == ["11.39", "-", "1,423,230", "1.68"]
    assert c[8] == "$3/$6 per 1M tokens in/out, training $8 per 1M tokens"
    assert api_training_usd(price) == pytest.approx(11.38584)
    assert api_training_usd({"train_usd": 5.0}) == 5.0 and api_training_usd({}) == 0.0
    # the config's own entry gives the same figure and refuses an ambiguous or unpriced one
    assert api_training_usd(ApiPrice(**price)) == api_training_usd(price)
    with pytest.raises(ConfigError, match="not both"):
        ApiPrice(train_usd=1.0, train_per_m=8.0, trained_tokens=10)
    with pytest.raises(ConfigError, match="needs train_per_m"):
        ApiPrice(trained_tokens=10)
    with pytest.raises(ConfigError, match=">= 0"):
        ApiPrice(trained_tokens=-1, train_per_m=8.0)
