"""End to end through the CLI on a tiny world: `model init`, `train sft`, `predict` (greedy and
self-consistency, then resume), `export`; each step on a tiny model for a few steps."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from sqlcoach.cli import main  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sqlcoach.data.world import build_world

    out = tmp_path_factory.mktemp("w") / "world"
    build_world(out, seed=0, n_train=60, n_dev=10, progress=False)
    return out


def test_cli_init_train_predict_export(world, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["model", "init", str(model), "--size", "tiny", "--corpus", str(world), "--vocab-size", "600"]) == 0
    assert "parameters" in capsys.readouterr().out
    cfg = tmp_path / "sft.yaml"
    cfg.write_text("# sqlcoach train sft --config sft.yaml\nmethod: lora\nschema_sample_values: 0\n")
    sft_out = tmp_path / "sft"
    rc = main(["train", "sft", "--config", str(cfg), f"model={model}", f"data_path={world}",
               f"output_dir={sft_out}", "max_steps=2", "per_device_train_batch_size=4", "use_cpu=true",
               "dtype=float32", "lora_r=4", "lora_alpha=8", "save_steps=1", "logging_steps=1",
               "max_length=1024", "disable_tqdm=true", "learning_rate=1e-3"])
    assert rc == 0
    summary = json.loads((sft_out / "summary.json").read_text())["summary"]
    assert summary["global_step"] == 2 and summary["rows"] == 60

    adapter = sft_out / "final"
    # the model remembers how it was prompted: model init's recipe, carried on by SFT
    from sqlcoach.prompts.recipe import read_recipe

    recipe = read_recipe(adapter)
    assert (recipe.template, recipe.schema_style, recipe.schema_sample_values) == ("sql_terminal", "compact", 0)
    assert recipe.source == "sft" and recipe.history == ["model init"] and recipe.max_length == 1024
    pred = tmp_path / "pred" / "dev.sql"
    common = ["--data", str(world), "--split", "dev", "--max-new-tokens", "12", "--batch-size", "4", "--workers", "0"]
    assert main(["predict", "--model", str(adapter), "--out", str(pred), *common]) == 0  # prompt settings from the recipe
    out = capsys.readouterr().out
    assert "examples/s" in out and "tokens/s" in out and "note:" not in out
    assert main(["predict", "--model", str(adapter), "--out", str(tmp_path / "other.sql"), "--limit", "2",
                 "--schema-samples", "2", *common]) == 0
    assert "was trained with schema_sample_values=0; this run uses schema_sample_values=2" in capsys.readouterr().out
    assert len(pred.read_text().split("\n")) == 11  # 10 lines + final newline
    # the schema-prefix cache (on by default for greedy) changes no answer
    nocache = tmp_path / "pred" / "nocache.sql"
    assert main(["predict", "--model", str(adapter), "--out", str(nocache), "--prefix-cache", "off", *common]) == 0
    assert nocache.read_bytes() == pred.read_bytes()
    capsys.readouterr()
    sc = tmp_path / "pred" / "sc.sql"
    assert main(["predict", "--model", str(adapter), "--out", str(sc), "--n", "3", *common]) == 0
    recs = [json.loads(x) for x in sc.with_suffix(".jsonl").read_text().splitlines()]
    assert len(recs) == 10 and all(len(r["samples"]) == 3 and len(r["votes"]) == 3 for r in recs)
    # running again with --resume: nothing left to predict
    assert main(["predict", "--model", str(adapter), "--out", str(sc), "--n", "3", "--resume", *common]) == 0
    assert "predicted 0 examples (10 resumed" in capsys.readouterr().out
    # stale resume: another model into the same folder is not given the first model's predictions
    assert main(["predict", "--model", str(model), "--out", str(sc), "--n", "3", "--resume", *common]) == 0
    cap = capsys.readouterr()
    assert "not resuming from" in cap.err and "model.name" in cap.err and "predicting every example afresh" in cap.err
    assert "predicted 10 examples (0 resumed" in cap.out
    assert (sc.parent / "sc.jsonl.stale").is_file()  # the old predictions are kept aside, not lost
    meta = json.loads((sc.parent / "sc.sql.meta.json").read_text())
    assert meta["model"]["name"] == str(model.resolve()) and meta["prompt"]["value_retrieval"] == recipe.value_retrieval
    # other decoding settings: afresh too, and the message names the setting
    assert main(["predict", "--model", str(model), "--out", str(sc), "--n", "3", "--temperature", "0.5", "--resume", *common]) == 0
    assert "decoding.temperature: 0.8 -> 0.5" in capsys.readouterr().err
    # another selection rule: recorded in every record; evaluate then finds the samples beside the file
    ne = tmp_path / "pred" / "ne.sql"
    assert main(["predict", "--model", str(adapter), "--out", str(ne), "--n", "3", "--select", "vote-nonempty", *common]) == 0
    recs = [json.loads(x) for x in ne.with_suffix(".jsonl").read_text().splitlines()]
    assert all(r["select"] == "vote-nonempty" and 0 <= r["chosen"] < 3 for r in recs if r["sql"])
    capsys.readouterr()
    assert main(["evaluate", "--gold", str(world / "dev_gold.sql"), "--pred", str(ne), "--db", str(world / "database"),
                 "--etype", "exec", "--workers", "0", "--no-explain"]) == 0
    out = capsys.readouterr().out
    assert "headroom: 10 questions, 3 samples each" in out and "vote-nonempty@3" in out and "pass@3" in out

    merged = tmp_path / "merged"
    assert main(["export", "--adapter", str(adapter), "--out", str(merged)]) == 0
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(merged).config.model_type == "qwen2"


def test_train_sft_reads_the_chat_and_alpaca_exports(world, tmp_path, capsys):
    """Export round trip: `data build` writes chat / dbgpt files, `train sft data_kind=export`
    trains on them, and the model's recipe records the prompt the chat file was built with."""
    from sqlcoach.prompts.recipe import read_recipe

    model = tmp_path / "model"
    assert main(["model", "init", str(model), "--size", "tiny", "--corpus", str(world), "--vocab-size", "600"]) == 0
    chat, dbgpt = tmp_path / "train.chat.jsonl", tmp_path / "train.dbgpt.json"
    for fmt, out in (("chat", chat), ("dbgpt", dbgpt)):
        assert main(["data", "build", "--kind", "spider", "--path", str(world), "--split", "train", "--format", fmt,
                     "--template", "minimal", "--schema-style", "compact", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    cfg = tmp_path / "sft.yaml"
    cfg.write_text("# sqlcoach train sft --config sft.yaml\nmethod: lora\nlora_r: 4\nlora_alpha: 8\n")
    common = ["max_steps=1", "per_device_train_batch_size=4", "use_cpu=true", "dtype=float32", "save_steps=1",
              "logging_steps=1", "max_length=1024", "disable_tqdm=true", "data_kind=export"]
    for data, tag in ((chat, "chat"), (dbgpt, "dbgpt")):
        out = tmp_path / f"sft-{tag}"
        assert main(["train", "sft", "--config", str(cfg), f"model={model}", f"data_path={data}", f"output_dir={out}", *common]) == 0
        summary = json.loads((out / "summary.json").read_text())["summary"]
        assert summary["rows"] == 60 and summary["global_step"] == 1
    rec = read_recipe(tmp_path / "sft-chat" / "final")
    assert (rec.template, rec.schema_style, rec.value_retrieval) == ("minimal", "compact", 10)
    # a config that contradicts the file's prompt is refused before any training
    assert main(["train", "sft", "--config", str(cfg), f"model={model}", f"data_path={chat}", f"output_dir={tmp_path / 'x'}",
                 "template=omnisql", *common]) == 2
    assert "was exported with template='minimal'" in capsys.readouterr().err


def test_hf_generation_is_batched_and_ordered(world, tmp_path):
    """Left padding + length sorting must not change answers: batch 1 and batch 4 agree (greedy)."""
    from sqlcoach.generate.hf import generate_texts
    from sqlcoach.models.load import load_model
    from sqlcoach.models.tiny import init_tiny_model, world_corpus

    init_tiny_model(tmp_path / "m", "tiny", world_corpus(world), vocab_size=600)
    model, tok = load_model(tmp_path / "m", device="cpu", dtype="float32")
    prompts = ["<|im_start|>user\nHow many singers?<|im_end|>\n<|im_start|>assistant\n",
               "<|im_start|>user\nList the names of all the zoos in Berlin ordered by name.<|im_end|>\n<|im_start|>assistant\n",
               "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"]
    one = generate_texts(model, tok, prompts, max_new_tokens=8, batch_size=1)
    many = generate_texts(model, tok, prompts, max_new_tokens=8, batch_size=4)
    assert one.texts == many.texts and all(len(t) == 1 for t in many.texts)
    assert 0 < many.generated_tokens <= 3 * 8
    sampled = generate_texts(model, tok, prompts, n=3, temperature=1.0, max_new_tokens=8, batch_size=2)
    assert all(len(t) == 3 for t in sampled.texts)


def test_pairs_mine_with_a_verifier_folder_reads_no_gold(world, tmp_path, capsys):
    """``pairs mine --scorer verifier --verifier DIR`` through the CLI on questions whose gold is
    removed: the verifier folder loads, every sample is counted by whether it ran, and the file and
    its stats are written (an untrained policy and verifier: the wiring, not the choices)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fake_verifier import untrained_verifier

    model = tmp_path / "model"
    assert main(["model", "init", str(model), "--size", "tiny", "--corpus", str(world), "--vocab-size", "600"]) == 0
    verifier = untrained_verifier(model, tmp_path / "verifier")
    from sqlcoach.data import load_examples

    unlabeled = tmp_path / "unlabeled.jsonl"
    unlabeled.write_text("".join(json.dumps({"question": ex.question, "db_id": ex.db_id, "db_path": ex.db_path}) + "\n"
                                 for ex in load_examples("spider", str(world), "dev")[:4]))
    out = tmp_path / "pairs.jsonl"
    capsys.readouterr()
    assert main(["pairs", "mine", "--model", str(model), "--kind", "jsonl", "--data", str(unlabeled), "--k", "3",
                 "--max-new-tokens", "12", "--workers", "0", "--device", "cpu", "--out", str(out),
                 "--scorer", "verifier", "--verifier", str(verifier)]) == 0
    printed = capsys.readouterr().out
    assert "samples that ran" in printed and "chosen = best verifier score" in printed
    stats = json.loads(out.with_name("pairs.stats.json").read_text())
    assert stats["scorer"] == "verifier" and stats["stats"]["samples"] == 12 and stats["stats"]["gold_errors"] == 0
    assert out.exists()
    # the execution scorer on the same questions: no gold, no pair
    assert main(["pairs", "mine", "--model", str(model), "--kind", "jsonl", "--data", str(unlabeled), "--k", "3",
                 "--max-new-tokens", "12", "--workers", "0", "--device", "cpu", "--out", str(tmp_path / "ex.jsonl")]) == 0
    assert json.loads((tmp_path / "ex.stats.json").read_text())["stats"]["gold_errors"] == 4
