"""`sqlcoach serve` / `sqlcoach ask` argument errors, and the --backend vllm exec."""

from __future__ import annotations

import importlib.util
import json

import pytest

from sqlcoach.cli import main


def test_vllm_backend_without_vllm_is_a_clear_error(tiny_dir, capsys):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    assert main(["serve", str(tiny_dir), "--backend", "vllm"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs vLLM" in err and "sqlcoach[vllm]" in err


def test_vllm_argv_translates_the_flags(tiny_dir, tmp_path):
    from sqlcoach.serve.setup import ServeOptions
    from sqlcoach.serve.vllm import vllm_argv

    argv = vllm_argv(ServeOptions(model=str(tiny_dir), port=9001, api_key="k", served_model_name="m",
                                  max_model_len=512))
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    s = " ".join(argv)
    assert "--host 127.0.0.1 --port 9001" in s and f"--model {tiny_dir}" in s and "--served-model-name m" in s
    assert "--api-key k" in s and "--max-model-len 512" in s
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_dir)}))
    s = " ".join(vllm_argv(ServeOptions(model=str(adapter), served_model_name="sql")))
    assert f"--model {tiny_dir} --enable-lora --lora-modules sql={adapter}" in s


@pytest.mark.parametrize("argv, words", [
    (["serve", "no/such/model"], "model not found"),
    (["serve", "{tiny}", "--port", "0"], "--port"),
    (["serve", "{tiny}", "--max-queue", "0"], "--max-queue"),
    (["serve", "{tiny}", "--databases", "no/such/dir"], "not a folder"),
    (["serve", "{tiny}", "--template", "nope"], "unknown template"),
    (["ask", "--db", "no/such.sqlite", "q", "--model", "{tiny}"], "database file not found"),
    (["ask", "--db", "{db}", "--model", "{tiny}"], "give a question"),
    (["ask", "--db", "{db}", "q", "--url", "ftp://x"], "--url must start with http"),
    (["ask", "--db", "{db}", "q", "--url", "http://127.0.0.1:9"], "cannot reach"),
    (["ask", "--db", "{db}", "q", "--model", "{tiny}", "--n", "0"], "--n must be >= 1"),
    (["ask", "--db", "{db}", "q", "--model", "{tiny}", "--select", "vote"], "needs --n 2 or more"),
    (["ask", "--db", "{db}", "q", "--model", "{tiny}", "--n", "3", "--select", "verifier"], "--verifier goes with"),
    (["ask", "--db", "{db}", "q", "--model", "{tiny}", "--n", "3", "--verifier", "{tiny}"], "--verifier goes with"),
    (["ask", "--db", "{db}", "q", "--model", "{tiny}", "--n", "3", "--temperature", "0"], "--temperature"),
    (["ask", "--db", "{db}", "q", "--model", "{tiny}", "--n", "3", "--select", "verifier", "--verifier", "{tiny}"],
     "is not a verifier"),
    (["serve", "{tiny}", "--verifier", "no/such/dir"], "--verifier"),
    (["serve", "{tiny}", "--max-n", "0"], "--max-n"),
    (["serve", "{tiny}", "--agent-turns", "12"], "--max-agent-turns"),
    (["serve", "{tiny}", "--backend", "vllm", "--verifier", "{tiny}"], "--verifier"),
])
def test_user_errors_are_one_line(argv, words, tiny_dir, databases, capsys):
    db = databases / "shop.sqlite"
    argv = [a.format(tiny=tiny_dir, db=db) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and words in err, err
    assert err.splitlines()[-1].startswith(f"sqlcoach {argv[0]}: error: ")


def test_table_format():
    from sqlcoach.serve.text2sql import format_table

    t = format_table(["name", "age"], [["Ana", 31], ["Bo", None]])
    assert t.splitlines()[1] == "| name | age  |" and "| Bo   | NULL |" in t and t.endswith("2 rows")
    assert "(8 more rows not shown)" in format_table(["x"], [[i] for i in range(10)], max_rows=2)


def test_ask_n_select_prints_the_choice(taught_dir, databases, capsys):
    db = databases / "concert" / "concert.sqlite"
    assert main(["ask", "--db", str(db), "--model", str(taught_dir), "--device", "cpu", "--n", "3", "--select",
                 "vote-nonempty", "--temperature", "0.1", "--max-new-tokens", "24", "Who are the singers?"]) == 0
    out = capsys.readouterr().out
    assert "chosen by vote-nonempty: candidate #" in out and " of 3 " in out and "#2 votes" in out
    assert "4 rows" in out
    assert main(["ask", "--db", str(db), "--model", str(taught_dir), "--device", "cpu", "--n", "2", "--json",
                 "--max-new-tokens", "24", "Who?"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["select"] == "vote" and len(doc["candidates"]) == 2 and len(doc["votes"]) == 2 and doc["score"] is None
