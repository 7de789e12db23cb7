"""Seed 004's round trip without the provider: a fine-tuning file from `data build --format
openai`, a fake endpoint that has 'learnt' exactly that file (it answers a request only when its
messages are, byte for byte, a prompt of the file), and `predict --backend openai` against it.
Every answer is the gold only if prediction sends the very prompt the file trained on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fake_openai import FakeOpenAI, tiny_world  # noqa: E402

from sqlcoach.cli import main  # noqa: E402
from sqlcoach.data import load_examples  # noqa: E402
from sqlcoach.generate.api_backend import predict_api  # noqa: E402
from sqlcoach.generate.openai_client import ChatClient  # noqa: E402


def test_the_tuned_model_is_asked_the_prompts_it_was_trained_on(tmp_path: Path) -> None:
    world = tiny_world(tmp_path / "world")
    ft = tmp_path / "ft.jsonl"
    assert main(["data", "build", "--kind", "spider", "--path", str(world), "--split", "dev", "--format", "openai",
                 "--out", str(ft), "--no-progress"]) == 0
    learnt = {}
    for line in ft.read_text(encoding="utf-8").splitlines():
        msgs = json.loads(line)["messages"]
        learnt[json.dumps(msgs[:-1])] = msgs[-1]["content"]
    exs = load_examples("spider", str(world), "dev")
    assert len(learnt) == len(exs) == 8

    def tuned(req: dict, n: int) -> tuple:
        return ("ok", learnt.get(json.dumps(req["messages"]), "SELECT 'never seen this prompt'"))

    with FakeOpenAI(tuned) as srv:
        client = ChatClient(srv.base_url, "ft:gpt-3.5-turbo-0125:acme::x", timeout=5.0, max_retries=1)
        s = predict_api(client, exs, tmp_path / "pred.sql", concurrency=2, progress=False)  # default prompt settings
    assert not any(s.errors.values())
    assert (tmp_path / "pred.sql").read_text().splitlines() == [ex.gold_sql for ex in exs]
