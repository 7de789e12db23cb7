"""A user error anywhere in the CLI prints one line and exits 2, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlcoach.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv, words", [
    (["train", "sft", "--config", "configs/sft/demo.yaml", "template=omnisq"], ["template must be one of", "omnisql", "'omnisq'"]),
    (["train", "grpo", "--config", "configs/grpo/demo.yaml", "schema_style=compactt"], ["schema_style must be one of", "compact"]),
    (["train", "ppo", "--config", "configs/ppo/demo.yaml", "data_kind=spyder"], ["data_kind must be one of", "spider"]),
    (["train", "dpo", "--config", "no/such/file.yaml"], ["config file not found"]),
    (["train", "rm", "--config", "configs/rm/demo.yaml", "learning_rat=1"], ["unknown key", "learning_rate"]),
    (["compare", "--config", "configs/compare/demo.yaml", "--out", "x", "template=omnisq"], ["template must be one of"]),
    (["demo", "--out", "DIR", "template=omnisq"], ["template must be one of"]),
])
def test_user_errors_are_one_line_with_exit_2(argv, words, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    if argv[0] == "demo":
        argv = ["demo", "--out", str(tmp_path / "demo"), *argv[3:]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"sqlcoach {argv[0]}: error: ")
    for w in words:
        assert w in err, (w, err)
    if argv[0] == "demo":  # the typo fails before the world is built
        assert not (tmp_path / "demo" / "world").exists()


def test_a_missing_file_is_a_user_error(capsys, tmp_path):
    assert main(["evaluate", "--gold", str(tmp_path / "gold.sql"), "--pred", str(tmp_path / "pred.sql"),
                 "--db", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("sqlcoach evaluate: error: ")


def test_help_config_lists_every_field_with_its_help(capsys):
    import dataclasses

    from sqlcoach.config import CONFIGS

    for method, cls in CONFIGS.items():
        with pytest.raises(SystemExit) as done:
            main(["train", method, "--config", "unused.yaml", "--help-config"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        for f in dataclasses.fields(cls):
            assert f"  {f.name} " in out, (method, f.name)
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


@pytest.mark.parametrize("extra, words", [
    (["--reward", "verifier"], ["the verifier reward needs a verifier folder: --verifier DIR"]),
    (["--verifier", "VDIR"], ["no reward reads it", "--reward consensus,verifier"]),
    (["--reward", "verifier", "--verifier", "EMPTY"], ["is not a verifier: no sqlcoach_verifier.json"]),
    (["--reward", "consensus,verifier", "--verifier", "VDIR", "--reward-weights", "1,x"], ["--reward-weights takes numbers"]),
    (["--reward", "consensus,verifier", "--verifier", "VDIR", "--reward-weights", "1"], ["one weight per reward"]),
])
def test_adapt_verifier_options_are_one_line_errors(extra, words, capsys, tmp_path):
    (tmp_path / "EMPTY").mkdir()
    extra = [str(tmp_path / a) if a in ("EMPTY", "VDIR") else a for a in extra]
    # the questions file does not exist: the reward options are checked before it is read
    argv = ["adapt", "--model", str(tmp_path / "m"), "--db", str(tmp_path / "x.sqlite"), "--questions",
            str(tmp_path / "q.txt"), "--out", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("sqlcoach adapt: error: "), err
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "out").exists()
