"""Shared-prefix reuse (``sqlcoach.generate.prefix_cache``): the batch plan, the prefix rule, the
logits of the cached layout against the plain left-padded batch, and ``generate_texts`` output with
and without the cache, on a tiny random-init Qwen2."""

from __future__ import annotations

import json
import sqlite3

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from sqlcoach.generate.hf import generate_texts  # noqa: E402
from sqlcoach.generate.prefix_cache import PrefixCache, gap_layout  # noqa: E402
from sqlcoach.models.prefix_kv import cache_kwarg, plan_batches, positions, reusable, shared_prefix_len  # noqa: E402
from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402

CORPUS = [
    "How many singers are there?",
    "SELECT count(*) FROM singer",
    "CREATE TABLE singer (id INTEGER, name TEXT, age INTEGER)",
    "List the names of stadiums in Berlin, ordered by capacity.",
    "SELECT name FROM stadium WHERE city = 'Berlin' ORDER BY capacity DESC",
] * 20
TINY = TinySize(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)
SCHEMAS = [
    "CREATE TABLE singer (id INTEGER, name TEXT, age INTEGER); CREATE TABLE concert (id INTEGER, singer_id INTEGER)",
    "CREATE TABLE stadium (id INTEGER, name TEXT, city TEXT, capacity INTEGER)",
]
QUESTIONS = ["How many singers?", "List the names of stadiums in Berlin ordered by capacity.", "hi",
             "What is the age of each singer?", "Count concerts", "How many stadiums are in Berlin?"]
#: two databases' prompts, interleaved (as a caller may pass them)
PROMPTS = [
    "<|im_start|>system\nAnswer with SQL.<|im_end|>\n<|im_start|>user\n"
    f"Database schema: {SCHEMAS[k % 2]}\nQuestion: {QUESTIONS[k // 2]}<|im_end|>\n<|im_start|>assistant\n"
    for k in range(2 * len(QUESTIONS))
]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("prefix") / "tiny"
    init_tiny_model(path, TINY, CORPUS, seed=0)
    return path


def spread(model):
    """Larger random weights, so that each prompt gets its own greedy answer (the init's small weights
    answer every prompt with the same token, which would hide a wrong position or mask)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for prm in model.parameters():
            if prm.dim() == 2:
                prm.normal_(0.0, 0.3)
    return model


@pytest.fixture(scope="module")
def tiny(tiny_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = spread(AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32).eval())
    return model, AutoTokenizer.from_pretrained(tiny_path)


def test_shared_prefix_is_on_token_ids_and_leaves_every_row_a_token():
    assert shared_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5, 6]]) == 3
    assert shared_prefix_len([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter row keeps its last token
    assert shared_prefix_len([[1, 2, 3]]) == 2
    assert shared_prefix_len([[7, 2], [1, 2]]) == 0
    assert shared_prefix_len([]) == 0


def test_plan_covers_every_prompt_once_and_keeps_databases_apart():
    a = [1] * 5 + [10] * 200  # database A: a short system prompt, a long schema
    b = [1] * 5 + [20] * 200
    enc = [a + [100 + i] * (1 + i % 3) if i % 2 == 0 else b + [200 + i] * (1 + i % 4) for i in range(12)]
    batches = plan_batches(enc, 8, batch_overhead=50)
    flat = sorted(i for bt in batches for i in bt)
    assert flat == list(range(12)) and all(len(bt) <= 8 for bt in batches)
    for bt in batches:  # never a batch with both schemas: its shared prefix would be 5 tokens
        assert len({enc[i][5] for i in bt}) == 1, batches
    assert len(batches) == 2
    # with nothing shared, batches still fill up (the per-batch overhead outweighs nothing saved)
    alone = [[i] * 30 for i in range(1, 10)]
    assert [len(bt) for bt in plan_batches(alone, 4, batch_overhead=500)] == [4, 4, 1]
    assert plan_batches([], 4, batch_overhead=1) == []


def test_cached_layout_gives_the_logits_of_the_left_padded_batch(tiny):
    """Teacher-forced: each row's logits at every real position of its suffix, computed from the one-row
    prefix cache copied to every row (gap padding, positions from the mask), equal the logits of the
    plain left-padded batch: same keys, same positions."""
    model, tok = tiny
    rows = [tok(p, add_special_tokens=False)["input_ids"] + [5, 9, 17] for p in PROMPTS[0::2][:4]]
    p = shared_prefix_len(rows)
    assert p > 20
    tok.padding_side = "left"
    plain = tok.pad({"input_ids": rows}, return_tensors="pt")
    with torch.inference_mode():
        ref = model(**plain, position_ids=positions(plain["attention_mask"])).logits
        pc = PrefixCache(model)
        prefix = pc.prefix(tuple(rows[0][:p]))
        assert prefix is not None and reusable(prefix.cache)
        ids, mask = gap_layout(rows, p, tok.pad_token_id)
        got = model(input_ids=ids[:, p:], attention_mask=mask, position_ids=positions(mask)[:, p:], use_cache=True,
                    **{cache_kwarg(): prefix.rows(len(rows))}).logits
        assert prefix.cache.get_seq_length() == p  # the kept one-row cache is untouched by the batch
    for i, r in enumerate(rows):
        s = len(r) - p
        a, b = ref[i, -s:], got[i, -s:]
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (a - b).abs().max()
        assert torch.equal(a.argmax(-1), b.argmax(-1))


def test_greedy_texts_are_identical_with_and_without_the_cache(tiny):
    model, tok = tiny
    off = generate_texts(model, tok, PROMPTS, max_new_tokens=12, batch_size=4, prefix_cache=False)
    on = generate_texts(model, tok, PROMPTS, max_new_tokens=12, batch_size=4, prefix_cache=True)
    auto = generate_texts(model, tok, PROMPTS, max_new_tokens=12, batch_size=4)
    assert on.texts == off.texts == auto.texts
    assert len({t[0] for t in off.texts}) > len(PROMPTS) // 2  # the answers depend on the prompt
    assert on.prompt_tokens == off.prompt_tokens and on.generated_tokens == off.generated_tokens
    assert off.cached_prompt_tokens == 0 and on.cached_prompt_tokens > on.prompt_tokens // 3
    assert auto.cached_prompt_tokens == on.cached_prompt_tokens  # greedy: on by default


def test_samples_from_the_cache_follow_the_same_distribution(tiny):
    """n > 1 encodes each suffix once and copies it per sample; with top_p so small that only the most
    likely token survives, every sample must be the greedy answer."""
    model, tok = tiny
    greedy = generate_texts(model, tok, PROMPTS, max_new_tokens=10, batch_size=4, prefix_cache=False)
    sampled = generate_texts(model, tok, PROMPTS, n=3, temperature=1.0, top_p=1e-9, max_new_tokens=10,
                             batch_size=4, prefix_cache=True)
    assert sampled.texts == [[g[0]] * 3 for g in greedy.texts]
    assert sampled.cached_prompt_tokens > 0
    plain = generate_texts(model, tok, PROMPTS, n=3, temperature=1.0, max_new_tokens=4, batch_size=4)
    assert plain.cached_prompt_tokens == 0  # sampling: off unless asked


def test_a_cache_it_cannot_reuse_falls_back_to_plain_generation(tiny, monkeypatch):
    import sqlcoach.models.prefix_kv as pcm

    model, tok = tiny
    monkeypatch.setattr(pcm, "reusable", lambda cache: False)
    off = generate_texts(model, tok, PROMPTS[:5], max_new_tokens=6, batch_size=4, prefix_cache=False)
    on = generate_texts(model, tok, PROMPTS[:5], max_new_tokens=6, batch_size=4, prefix_cache=True)
    assert on.texts == off.texts and on.cached_prompt_tokens == 0


# ------------------------------------------------------------------ the agent loop


def test_greedy_agent_trajectories_are_identical_with_and_without_the_cache(tiny):
    """run_agent over several rounds (an untrained model writes no tags: every turn but the last is
    answered by an error observation, so the history grows): the same tokens, turn for turn."""
    from sqlcoach.generate.agent import AgentConfig, SqlAgentEnv, run_agent
    from sqlcoach.generate.prefix_cache import prefix_cache_for

    model, tok = tiny

    def trajectories(reuse):
        envs = [SqlAgentEnv(None, AgentConfig(max_turns=3)) for _ in PROMPTS]
        rolls = run_agent(model, tok, PROMPTS, envs, max_new_tokens=8, max_total_tokens=200, batch_size=4,
                          prefix_cache=reuse)
        return [(r.completion_ids, r.env_mask, [(t.kind, t.text, t.observation) for t in e.turns], e.finish)
                for r, e in zip(rolls, envs)]

    off = trajectories(None)
    reuse = prefix_cache_for(model, None, sampling=False)  # auto, greedy: on
    on = trajectories(reuse)
    assert on == off
    assert max(len(t[2]) for t in off) > 1  # several rounds ran, the later ones over a grown history
    assert len({tuple(t[0]) for t in off}) > len(PROMPTS) // 2  # the trajectories depend on the prompt
    assert reuse.cached_tokens > sum(len(tok(p)["input_ids"]) for p in PROMPTS) // 3
    assert prefix_cache_for(model, None, sampling=True) is None  # auto: off when sampling
    assert prefix_cache_for(model, True, sampling=True) is not None


def test_predict_agent_reports_the_cached_tokens_and_writes_the_same_files(tiny, tmp_path):
    from sqlcoach.generate.agent import AgentConfig
    from sqlcoach.generate.agent_predict import predict_agent
    from sqlcoach.types import Example

    model, tok = tiny
    dbs = []
    for k, ddl in enumerate(SCHEMAS):
        dbs.append(tmp_path / f"db{k}.sqlite")
        con = sqlite3.connect(dbs[-1])
        con.executescript(ddl.replace(" (", "(") + ";")
        con.close()
    exs = [Example(id=str(k), db_id=f"db{k % 2}", question=QUESTIONS[k // 2], db_path=str(dbs[k % 2]))
           for k in range(2 * len(QUESTIONS))]
    runs = {}
    for name, flag in (("off", False), ("auto", None)):
        summary = predict_agent(model, tok, exs, tmp_path / name / "p.sql", config=AgentConfig(max_turns=2),
                                max_new_tokens=6, max_total_tokens=100, batch_size=4, workers=0, progress=False,
                                instruction=False, prefix_cache=flag)
        runs[name] = (summary, (tmp_path / name / "p.sql").read_text(),
                      [json.loads(line) for line in (tmp_path / name / "p.jsonl").read_text().splitlines()])
    (s_off, sql_off, rec_off), (s_on, sql_on, rec_on) = runs["off"], runs["auto"]
    strip = lambda recs: [{k: v for k, v in r.items() if not k.endswith("seconds")} | {  # noqa: E731
        "turns": [{k: v for k, v in t.items() if k != "exec_seconds"} for t in r["turns"]]} for r in recs]
    assert sql_on == sql_off and strip(rec_on) == strip(rec_off)
    assert s_off.cached_prompt_tokens == 0 and s_on.cached_prompt_tokens > 0


# ------------------------------------------------------------------ the verifier's scores


@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_verifier_scores_from_the_cache_match_the_plain_ones(tiny_path, monkeypatch, pad_is_eos):
    """Candidates of several questions over two schemas, plus a pair whose texts differ only in a last
    character (the shorter one's scored token would fall inside the shared prefix without the cap at
    the head's pooled token): scores from the cached prefix equal the plain right-padded ones within
    1e-4 (float32; the plain scores themselves move by the same order with the batch size)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import sqlcoach.models.verifier as mv
    from sqlcoach.types import ExecResult

    tok = AutoTokenizer.from_pretrained(tiny_path)
    if pad_is_eos:  # as load_verifier sets a tokenizer without a pad token: the head then skips the appended eos
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    model = spread(AutoModelForSequenceClassification.from_pretrained(tiny_path, num_labels=1, dtype=torch.float32))
    model.config.pad_token_id = tok.pad_token_id
    model.eval()
    ok = ExecResult(rows=((3,),), columns=("count(*)",))
    texts = [mv.verifier_text(q, SCHEMAS[k % 2], sql, res, result_budget=60)
             for k, q in enumerate(QUESTIONS)
             for sql, res in (("SELECT count(*) FROM singer", ok), ("SELECT nme FROM stadium", None), ("", None))]
    texts += [texts[0] + "1", texts[0] + "12"]
    used = []
    real = mv.scores_from_prefix
    monkeypatch.setattr(mv, "scores_from_prefix", lambda kv, rows: used.append(real(kv, rows)) or used[-1])
    plain = mv.score_texts(model, tok, texts, max_length=512, batch_size=4)
    alone = mv.score_texts(model, tok, texts, max_length=512, batch_size=1)
    cached = mv.score_texts(model, tok, texts, max_length=512, batch_size=4, prefix_cache=True)
    assert any(u is not None for u in used)  # the cache scored at least one batch
    assert len(set(round(x, 3) for x in plain)) > len(texts) // 2  # the scores depend on the text
    print(f"max |plain - cached| {max(abs(a - b) for a, b in zip(plain, cached)):.2e}, "
          f"max |plain batch 4 - batch 1| {max(abs(a - b) for a, b in zip(plain, alone)):.2e}")
    assert max(abs(a - b) for a, b in zip(plain, cached)) < 1e-4
    assert max(abs(a - b) for a, b in zip(plain, alone)) < 1e-4
    # a tiny max_length cuts the shared schema from the left: nothing to share, scored plainly and the same
    short = mv.score_texts(model, tok, texts, max_length=8, batch_size=4, prefix_cache=True)
    assert max(abs(a - b) for a, b in zip(short, mv.score_texts(model, tok, texts, max_length=8, batch_size=4))) < 1e-4
