"""SFT on agent trajectories (``sqlcoach agent rows``): no loss on observation tokens.

The labels TRL's ``SFTTrainer`` builds from ``train.sft.agent_token_rows`` are -100 on the prompt
and on every observation token, and the trained tokens are exactly the model's own turns (each
tokenized as the model generates it) plus its end token; changing an observation's text changes no
trained token. A dataset without agent rows reaches TRL unchanged, and a row without spans is
tokenized as TRL tokenizes it."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from tool_template import with_tool_template  # noqa: E402

from sqlcoach.data.export import OBSERVATION_SPANS, check_observation_spans, read_training_file  # noqa: E402
from sqlcoach.errors import DataError  # noqa: E402
from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.prompts.agent import RUN_SQL_TOOL, observation_text, solution_turn, sql_turn, tool_result_text  # noqa: E402
from sqlcoach.train import sft  # noqa: E402

TINY = TinySize(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)
CORPUS = ["SELECT name FROM singer WHERE age > 30", "<sql>SELECT count(*) FROM singer</sql>",
          "<observation>\ncolumns (1): count(*)\nrows: 1\n3\nturns left: 2\n</observation>",
          "<solution>SELECT name FROM singer</solution>", "How many singers are there?"] * 10
PROMPT = [{"role": "system", "content": "Write SQL."}, {"role": "user", "content": "How many singers are there?"}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tmp_path_factory.mktemp("sft-mask") / "model"
    init_tiny_model(path, TINY, CORPUS, seed=0)
    return path, AutoTokenizer.from_pretrained(str(path)), AutoModelForCausalLM


def agent_row(first: str, obs_body: str, answer: str) -> dict:
    turn, obs = sql_turn(first), observation_text(obs_body, 2)
    text = turn + obs + solution_turn(answer)
    return {"prompt": PROMPT, "completion": [{"role": "assistant", "content": text}],
            OBSERVATION_SPANS: [[len(turn), len(turn) + len(obs)]]}


def trl_labels(path, tokenizer, rows, tmp_path):
    """The labels SFTTrainer trains on for ``rows`` (after ``train.sft._dataset_rows``), per row."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    data = sft._dataset_rows(rows, tokenizer, log=lambda m: None)
    args = SFTConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to="none", max_length=4096,
                     packing=False, completion_only_loss=True, per_device_train_batch_size=1)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(str(path)), args=args,
                         train_dataset=Dataset.from_list(data), processing_class=tokenizer)
    return [(r["input_ids"], r["labels"]) for r in trainer.train_dataset]


def trained_text(tokenizer, ids, labels):
    return tokenizer.decode([t for t, lab in zip(ids, labels) if lab != -100])


def test_observation_tokens_get_no_loss(tiny, tmp_path):
    path, tok, _ = tiny
    row = agent_row("SELECT nme FROM singer", "error: exec_error: no such column: nme", "SELECT count(*) FROM singer")
    (ids, labels), = trl_labels(path, tok, [row], tmp_path)
    prompt_ids = tok(tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
    turn1 = tok(sql_turn("SELECT nme FROM singer"), add_special_tokens=False)["input_ids"]
    obs = tok(observation_text("error: exec_error: no such column: nme", 2), add_special_tokens=False)["input_ids"]
    last = tok(solution_turn("SELECT count(*) FROM singer") + "<|im_end|>\n", add_special_tokens=False)["input_ids"]
    # the sequence is the prompt, then each piece tokenized on its own (as run_agent appends them)
    assert ids == prompt_ids + turn1 + obs + last
    n = len(prompt_ids)
    assert labels[:n] == [-100] * n  # the prompt
    assert labels[n:n + len(turn1)] == turn1  # the model's query turn is trained
    assert labels[n + len(turn1):n + len(turn1) + len(obs)] == [-100] * len(obs)  # the observation is not
    assert labels[n + len(turn1) + len(obs):] == last  # the answer and the end of the message are
    assert "observation" not in trained_text(tok, ids, labels)
    assert trained_text(tok, ids, labels).startswith("<sql>SELECT nme FROM singer</sql><solution>")


def test_another_observation_changes_no_trained_token(tiny, tmp_path):
    path, tok, _ = tiny
    a = agent_row("SELECT name FROM singer", "columns (1): name\nrows: 1\nAda", "SELECT name FROM singer")
    b = agent_row("SELECT name FROM singer", "columns (2): name, age\nrows: 3\nAda | 31\nBo | 40\nCy | 22",
                  "SELECT name FROM singer")
    (ia, la), (ib, lb) = trl_labels(path, tok, [a, b], tmp_path)
    assert len(ia) != len(ib)  # the observations differ ...
    assert [t for t in la if t != -100] == [t for t in lb if t != -100]  # ... the trained tokens do not


def test_rows_without_agent_rows_reach_trl_unchanged(tiny):
    _, tok, _ = tiny
    rows = [{"prompt": PROMPT, "completion": [{"role": "assistant", "content": "SELECT count(*) FROM singer"}]}]
    assert sft._dataset_rows(rows, tok, log=lambda m: None) is rows


def test_a_row_without_spans_is_tokenized_as_trl_does(tiny, tmp_path):
    """In a dataset that mixes agent rows with plain ones, the plain ones get TRL's own tokens and mask."""
    path, tok, _ = tiny
    plain = {"prompt": PROMPT, "completion": [{"role": "assistant", "content": "<solution>SELECT name FROM singer</solution>"}]}
    ours = trl_labels(path, tok, [plain, agent_row("SELECT 1", "rows: 1", "SELECT 2")], tmp_path)[0]
    theirs = trl_labels(path, tok, [plain], tmp_path)[0]  # no agent row: TRL tokenizes it itself
    assert ours == theirs


def test_tool_protocol_rows_mask_the_tool_result(tiny, tmp_path):
    path, tok, _ = tiny
    tok = with_tool_template(tok)
    call = '<tool_call>\n{"name": "run_sql", "arguments": {"query": "SELECT 1"}}\n</tool_call>'
    obs = "<|im_end|>\n<|im_start|>user\n<tool_response>\n" + tool_result_text("rows: 1\n1", 2) + \
          "\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    text = call + obs + "SELECT name FROM singer"
    row = {"prompt": PROMPT, "completion": [{"role": "assistant", "content": text}], "tools": [RUN_SQL_TOOL],
           OBSERVATION_SPANS: [[len(call), len(call) + len(obs)]]}
    (ids, labels), = trl_labels(path, tok, [row], tmp_path)
    got = trained_text(tok, ids, labels)
    assert got == tok.decode(tok(call, add_special_tokens=False)["input_ids"]
                             + tok("SELECT name FROM singer<|im_end|>\n", add_special_tokens=False)["input_ids"])
    assert "tool_response" not in got and "turns left" not in got


def test_spans_are_checked_and_kept_by_the_reader(tmp_path):
    comp = [{"role": "assistant", "content": "<sql>a</sql>OBS<solution>b</solution>"}]
    assert check_observation_spans(comp, [[12, 15]]) == [[12, 15]]
    for bad in ([[15, 12]], [[0, 99]], [[1, 3], [2, 4]], [["a", 3]], "x", [[30, len(comp[0]["content"])]]):
        with pytest.raises(DataError):
            check_observation_spans(comp, bad)
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"prompt": PROMPT, "completion": comp, OBSERVATION_SPANS: [[12, 15]]}) + "\n"
                    + json.dumps({"prompt": PROMPT, "completion": comp, OBSERVATION_SPANS: [[12, 99]]}) + "\n")
    rows, problems, _ = read_training_file(path)
    assert rows == [{"prompt": PROMPT, "completion": comp, OBSERVATION_SPANS: [[12, 15]]}]
    assert len(problems) == 1 and "past the completion" in str(problems[0])


def test_added_agent_tokens_are_one_token_each_and_masked_like_their_text(tiny, tmp_path):
    """``add_agent_tokens``: with the tags grown into the vocabulary (``models.vocab.add_words``, as
    ``train sft`` does before tokenizing), each tag in a trajectory is one id; the query and answer
    tags are trained, the observation's are not."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sqlcoach.models.vocab import add_words
    from sqlcoach.prompts.agent import AGENT_TAGS

    path, _, _ = tiny
    tok, model = AutoTokenizer.from_pretrained(str(path)), AutoModelForCausalLM.from_pretrained(str(path))
    add_words(model, tok, AGENT_TAGS)
    grown = tmp_path / "grown"
    model.save_pretrained(str(grown))
    tok.save_pretrained(str(grown))
    row = agent_row("SELECT nme FROM singer", "error: no such column: nme", "SELECT name FROM singer")
    (ids, labels), = trl_labels(grown, tok, [row], tmp_path)
    tag = {w: tok.convert_tokens_to_ids(w) for w in AGENT_TAGS}
    for w in AGENT_TAGS:
        assert ids.count(tag[w]) == 1, w
    trained = {w for w in AGENT_TAGS if labels[ids.index(tag[w])] != -100}
    assert trained == {"<sql>", "</sql>", "<solution>", "</solution>"}
