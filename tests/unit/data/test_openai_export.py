"""`data build --format openai`: OpenAI's chat fine-tuning JSONL, the prompt of sqlcoach's own
training rows, and its token count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlcoach.cli import main
from sqlcoach.data import load_spider
from sqlcoach.data.export import (
    TOKENS_PER_EXAMPLE,
    TOKENS_PER_MESSAGE,
    APPROX_COUNTER,
    count_training_tokens,
    export_examples,
    format_defaults,
    read_training_file,
)
from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.prompts.recipe import DEFAULTS
from sqlcoach.schema.serialize import approx_tokens


def _lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # every line is one JSON object


def test_openai_records_are_the_training_rows_with_the_gold_as_answer(data_dir: Path, tmp_path: Path) -> None:
    exs = [e for e in load_spider(data_dir / "spider", "dev") if e.db_path]
    out = tmp_path / "ft.jsonl"
    d = format_defaults("openai")
    assert (d.template, d.schema_style, d.value_retrieval, d.sample_values) == (
        DEFAULTS["template"], DEFAULTS["schema_style"], DEFAULTS["value_retrieval"], DEFAULTS["schema_sample_values"])
    summary = export_examples(exs, out, "openai", template=d.template, schema_style=d.schema_style,
                              value_retrieval=d.value_retrieval, progress=False)
    recs = _lines(out)
    assert summary.records == len(recs) == len(exs) == 2
    builder = PromptBuilder(**{"template": d.template, "schema_style": d.schema_style, "sample_values": d.sample_values},
                            value_retrieval=d.value_retrieval)
    for ex, rec in zip(exs, recs):
        assert list(rec) == ["messages"]
        assert [m["role"] for m in rec["messages"]] == ["user", "assistant"]  # sql_terminal has no system message
        assert rec["messages"][-1]["content"] == ex.gold_sql  # the bare gold SQL
        row = builder.sft_row(ex)  # what `train sft` trains on ...
        assert rec["messages"][:-1] == row["prompt"] and rec["messages"][-1:] == row["completion"]
        assert rec["messages"][:-1] == builder.prediction_messages(ex)  # ... and `predict --backend openai` sends
    assert summary.tokens is not None and summary.tokens.examples == 2 and summary.tokens.tokens > 0
    assert read_training_file(out)[0] == [builder.sft_row(ex) for ex in exs]


def test_openai_records_carry_the_templates_system_message(data_dir: Path, tmp_path: Path) -> None:
    exs = [e for e in load_spider(data_dir / "spider", "dev") if e.db_path]
    out = tmp_path / "ft.jsonl"
    export_examples(exs, out, "openai", template="reasoning", schema_style="ddl", progress=False)
    rec = _lines(out)[0]
    assert [m["role"] for m in rec["messages"]] == ["system", "user", "assistant"]
    assert rec["messages"][-1]["content"].rstrip().endswith("```sql\nSELECT count(*) FROM item\n```\n</answer>")


def test_token_count_arithmetic() -> None:
    recs = [{"messages": [{"role": "user", "content": "abcdefgh"}, {"role": "assistant", "content": "SELECT 1"}]},
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                          {"role": "assistant", "content": "x"}]}]
    tc = count_training_tokens(recs, len, "characters")
    # per example 3, per message 3 + role + content
    want = (TOKENS_PER_EXAMPLE + 2 * TOKENS_PER_MESSAGE + len("user") + 8 + len("assistant") + 8) + (
        TOKENS_PER_EXAMPLE + 3 * TOKENS_PER_MESSAGE + len("system") + 1 + len("user") + 1 + len("assistant") + 1)
    assert (tc.tokens, tc.examples, tc.counter) == (want, 2, "characters")
    assert "one epoch; counted by characters" in tc.line()


def test_cli_build_openai_prints_the_token_count_and_its_counter(data_dir: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ft.jsonl"
    assert main(["data", "build", "--kind", "spider", "--path", str(data_dir / "spider"), "--format", "openai",
                 "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    recs = _lines(out)
    assert len(recs) == 2 and all(r["messages"][0]["content"].startswith("I want you to act as a SQL terminal") for r in recs)
    line = next(ln for ln in printed.out.splitlines() if ln.startswith("training tokens: "))
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        assert f"counted by {APPROX_COUNTER}: tiktoken is not installed" in line
        assert line.startswith(f"training tokens: {count_training_tokens(recs, approx_tokens).tokens} tokens in 2 examples")
    # 'lost' has no database: reported, not written
    assert "problems: 3" in printed.err and "no database" in (tmp_path / "ft.jsonl.problems.txt").read_text()


def test_bad_openai_records_and_bad_numbers_are_clear_errors(data_dir: Path, tmp_path: Path) -> None:
    f = tmp_path / "ft.jsonl"
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "SELECT 1"}]}
    f.write_text(json.dumps(good) + "\n" + json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    rows, problems, _ = read_training_file(f)
    assert rows == [{"prompt": good["messages"][:1], "completion": good["messages"][1:]}]
    assert [(p.line, "must end with the assistant's answer" in p.message) for p in problems] == [(2, True)]
    for flag in ("--sample-values", "--value-retrieval"):
        assert main(["data", "build", "--kind", "spider", "--path", str(data_dir / "spider"), "--format", "openai",
                     "--out", str(tmp_path / "x.jsonl"), flag, "-1"]) == 2
