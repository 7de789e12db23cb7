"""The vLLM paths against a fake ``vllm`` module put in ``sys.modules`` (vLLM needs CUDA and is not
installed on the test machines): which calls are made, not what a real engine returns.

Checked: ``predict`` hands the engine every prompt in ONE ``LLM.generate`` call; a LoRA adapter
folder builds the engine on its base with ``enable_lora`` (``max_lora_rank`` holding the adapter's
``r``) and passes a ``LoRARequest`` for the adapter on every call; sampling settings are neutral;
``release_after`` frees the engine; the server path decodes TRL ``VLLMClient``'s prompt-major
token ids; GRPO's vLLM fields are all fields of TRL's ``GRPOConfig``, and its pass-rate filter
samples with vLLM when ``use_vllm`` is on. Not run on a real vLLM (``benchmarks/gpu_check.sh``)."""

from __future__ import annotations

import importlib.machinery
import json
import sqlite3
import sys
import types
from dataclasses import dataclass, field

import pytest

import sqlcoach.generate.predict as P
import sqlcoach.generate.vllm_backend as V
from sqlcoach.errors import ConfigError
from sqlcoach.types import Example


@dataclass
class _Completion:
    text: str
    token_ids: list[int]


@dataclass
class _Output:
    prompt: str
    prompt_token_ids: list[int]
    outputs: list[_Completion] = field(default_factory=list)


class FakeLLM:
    instances: list["FakeLLM"] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls: list[dict] = []
        FakeLLM.instances.append(self)

    def generate(self, prompts, params, use_tqdm=True, lora_request=None):
        self.calls.append({"prompts": list(prompts), "params": params, "lora_request": lora_request})
        return [_Output(p, [1, 2, 3], [_Completion(f"SELECT {i}", [7, 8]) for _ in range(params.kwargs["n"])])
                for i, p in enumerate(prompts)]


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


@dataclass
class FakeLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


@pytest.fixture()
def fake_vllm(monkeypatch):
    FakeLLM.instances = []
    root = types.ModuleType("vllm")
    root.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    root.LLM, root.SamplingParams = FakeLLM, FakeSamplingParams
    lora = types.ModuleType("vllm.lora")
    req = types.ModuleType("vllm.lora.request")
    req.LoRARequest = FakeLoRARequest
    for name, mod in (("vllm", root), ("vllm.lora", lora), ("vllm.lora.request", req)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(V, "vllm_available", lambda: (True, ""))
    return FakeLLM


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
    con.commit()
    con.close()
    return str(path)


def test_predict_sends_every_prompt_in_one_call(fake_vllm, tmp_path, db, monkeypatch):
    monkeypatch.setattr(P, "build_prompts", lambda exs, tok, **kw: [e.question for e in exs])
    gen = V.vllm_generate_fn(str(tmp_path / "no-such-model"))
    examples = [Example(id=f"e{i}", db_id="shop", question=f"q{i}", gold_sql="SELECT 1", db_path=db) for i in range(70)]
    s = P.predict(None, None, examples, tmp_path / "pred.sql", generate_fn=gen, batch_size=8, progress=False)
    (llm,) = fake_vllm.instances
    assert len(llm.calls) == 1 and llm.calls[0]["prompts"] == [f"q{i}" for i in range(70)]  # not 32 at a time
    assert llm.calls[0]["lora_request"] is None and "enable_lora" not in llm.kwargs
    params = llm.calls[0]["params"].kwargs
    assert params["temperature"] == 0.0 and params["top_k"] == -1 and params["repetition_penalty"] == 1.0
    assert s.predicted_now == 70 and s.generated_tokens == 140
    assert len((tmp_path / "pred.sql").read_text().splitlines()) == 70


def test_adapter_is_served_with_a_lora_request(fake_vllm, tmp_path):
    adapter = tmp_path / "sft" / "final"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/models/base", "r": 12}))
    gen = V.vllm_generate_fn(str(adapter), dtype="bfloat16")
    g = gen(None, None, ["a", "b"], n=3, temperature=0.8, max_new_tokens=9)
    (llm,) = fake_vllm.instances
    assert llm.kwargs["model"] == "/models/base" and llm.kwargs["enable_lora"] is True
    assert llm.kwargs["max_lora_rank"] == 16 and llm.kwargs["dtype"] == "bfloat16"
    req = llm.calls[0]["lora_request"]
    assert isinstance(req, FakeLoRARequest) and req.lora_path == str(adapter) and req.lora_int_id == 1
    assert llm.calls[0]["params"].kwargs["n"] == 3 and llm.calls[0]["params"].kwargs["max_tokens"] == 9
    assert [len(t) for t in g.texts] == [3, 3]


def test_release_after_frees_the_engine(fake_vllm, tmp_path):
    gen = V.vllm_generate_fn(str(tmp_path), release_after=1)
    gen(None, None, ["a"], n=2, temperature=1.0)
    with pytest.raises(ConfigError, match="released"):
        gen(None, None, ["a"], n=2, temperature=1.0)


def test_without_vllm_the_error_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(V, "vllm_available", lambda: (False, "vLLM needs a CUDA GPU and torch sees none"))
    with pytest.raises(ConfigError, match="CUDA GPU"):
        V.vllm_generate_fn(str(tmp_path))


def test_server_generate_decodes_prompt_major_ids(monkeypatch):
    seen = {}

    class FakeClient:
        def __init__(self, **kw):
            seen["init"] = kw

        def generate(self, prompts, **kw):
            seen["generate"] = (list(prompts), kw)
            n = kw["n"]
            return {"prompt_ids": [[1, 2]] * len(prompts),
                    "completion_ids": [[10 * i + j] for i in range(len(prompts)) for j in range(n)]}

    mod = types.ModuleType("trl.generation.vllm_client")
    mod.VLLMClient = FakeClient
    monkeypatch.setitem(sys.modules, "trl.generation.vllm_client", mod)

    class Tok:
        def decode(self, ids, skip_special_tokens=True):
            return f"t{ids[0]}"

    gen = V.vllm_server_generate_fn(Tok(), host="10.0.0.5", port=8001)
    g = gen(None, None, ["p0", "p1", "p2"], n=2, temperature=0.7, max_new_tokens=5)
    assert seen["init"]["host"] == "10.0.0.5" and seen["init"]["server_port"] == 8001
    assert seen["generate"][0] == ["p0", "p1", "p2"] and seen["generate"][1]["max_tokens"] == 5
    assert g.texts == [["t0", "t1"], ["t10", "t11"], ["t20", "t21"]] and g.generated_tokens == 6


def test_grpo_vllm_fields_reach_trl_and_the_pass_rate_filter(fake_vllm, tmp_path, monkeypatch):
    pytest.importorskip("trl")
    import dataclasses

    from trl import GRPOConfig

    from sqlcoach.config import GRPORunConfig, build_config
    from sqlcoach.train.grpo import rollout_generate_fn, vllm_args

    cfg = build_config(GRPORunConfig, {"model": str(tmp_path), "data_path": "x", "use_vllm": True, "use_cpu": False,
                                       "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.4})
    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert set(vllm_args(cfg)) <= names  # every key is a field of the installed TRL's GRPOConfig
    assert vllm_args(cfg)["vllm_mode"] == "colocate" and vllm_args(cfg)["vllm_gpu_memory_utilization"] == 0.4
    gen = rollout_generate_fn(cfg, tokenizer=None)
    assert fake_vllm.instances[0].kwargs["gpu_memory_utilization"] == 0.4 and gen.wants_all_prompts
    server = dataclasses.replace(cfg, vllm_mode="server", vllm_server_base_url="http://10.0.0.5:8000")
    assert vllm_args(server)["vllm_server_base_url"] == "http://10.0.0.5:8000"
    assert rollout_generate_fn(dataclasses.replace(cfg, use_vllm=False), tokenizer=None) is None
