"""GPU figures for sqlcoach on one NVIDIA card, one part per process (``benchmarks/gpu_check.sh`` runs them).

    python benchmarks/gpu_check.py --part sft --results /tmp/gpu_check/results.jsonl
    python benchmarks/gpu_check.py --part sft --plan        # what the part would run, no GPU, no model
    python benchmarks/gpu_check.py --dry-run                # lists, shapes, configs, budget: safe on a CPU machine
    python benchmarks/gpu_check.py --collect /tmp/gpu_check/results.jsonl --json OUT/gpu_check.json

Models: speed and memory do not depend on the weights, so the training, generation and serving
parts use RANDOM-INIT models of real published shapes (``benchmarks/model_shapes/*.json``:
SmolLM2-135M, Qwen2.5-0.5B, Qwen2.5-1.5B, with their exact vocabularies), with a byte-level BPE
tokenizer trained on the Spider slice (``sqlcoach.models.tiny.train_tokenizer``; its ids are a
subset of the real vocabulary's range). A random model never emits its end token, so every
generation runs to its token limit: generation figures count exactly ``max_new_tokens`` per answer.

Parts (each prints ``part.name value unit`` lines, or ``SKIP <part>: <why>``, and appends the same
as JSON lines to ``--results``):

* ``env``: Python, torch, CUDA, GPU, versions of the packages the parts import.
* ``deps``: every requirement of every carried wheel (``benchmarks/gpu/wheels.txt``) checked against
  what is installed here; unmet ones are listed (the parts still run).
* ``sft``: bf16 LoRA and full SFT through ``sqlcoach.train.sft.run_sft`` at Qwen2.5-0.5B and 1.5B:
  median step time, trained tokens/s, MFU, peak CUDA memory.
* ``grpo``, ``ppo``, ``dpo``: one recipe each at Qwen2.5-0.5B, full fine-tuning, micro-batches of
  8 sequences (GRPO: 1 prompt x G=8 per step, HF generation; PPO: a rollout of 8 prompts, one pass;
  DPO: 4 pairs = 8 sequences): median step time, peak memory.
* ``predict``: ``sqlcoach.generate.predict`` greedy on Spider dev_eval questions, Qwen2.5-0.5B bf16.
* ``serve``: a real ``sqlcoach serve`` process on the GPU, concurrent clients: requests/s, tokens/s.
* ``fsdp``: ``accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 1 -m
  sqlcoach.cli train sft`` at SmolLM2-135M: the FSDP config path runs (not a speed claim).
* ``qlora``: 4-bit NF4 QLoRA at Qwen2.5-1.5B (needs the bitsandbytes wheel).
* ``correct``: the trained demo model (``.gpu_data/demo_model``, when carried) gives the same
  greedy SQL on the GPU as on the CPU (float32 both).

Spider comes from ``--spider``, ``$SPIDER``, ``.gpu_data/spider`` (the slice gpu_bundle.sh makes),
``shared/data/spider`` or ``../shared/data/spider``. Nothing here is a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHAPES = REPO / "benchmarks" / "model_shapes"
PARTS = ("env", "deps", "sft", "grpo", "ppo", "dpo", "predict", "serve", "fsdp", "qlora", "correct")
#: seconds each part may take at most (gpu_check.sh also stops at its overall budget)
CAPS = {"env": 20, "deps": 15, "sft": 130, "grpo": 50, "ppo": 45, "dpo": 40, "predict": 35, "serve": 60,
        "fsdp": 75, "qlora": 45, "correct": 40}
#: parameters of each shape as published (the shape files are checked against these)
PUBLISHED_PARAMETERS = {"smollm2-135m": 134_515_008, "qwen2.5-0.5b": 494_032_768, "qwen2.5-1.5b": 1_543_714_304}
#: dense bf16 peak of the cards this workplace lends (H100 SXM and H200: 989.4 TFLOP/s without sparsity)
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12}
PROMPT = dict(template="sql_terminal", schema_style="compact", schema_sample_values=0)
TRAIN = ("sqlcoach", "torch", "transformers", "trl", "peft", "datasets", "accelerate")
#: what each part imports, beyond torch with CUDA
NEEDS: dict[str, tuple[str, ...]] = {
    "env": (), "deps": ("packaging",), "sft": TRAIN, "grpo": TRAIN, "ppo": TRAIN, "dpo": TRAIN,
    "predict": ("sqlcoach", "torch", "transformers"), "serve": ("sqlcoach", "torch", "transformers", "fastapi", "uvicorn"),
    "fsdp": TRAIN, "qlora": ("sqlcoach", "torch", "transformers", "peft", "bitsandbytes"),
    "correct": ("sqlcoach", "torch", "transformers"),
}
WORDS_PER_TOKENIZER = 4096  # BPE vocabulary of the tokenizer trained on the slice


class Skip(Exception):
    """A part cannot run here; the message says why."""


class Recorder:
    """Prints one line per figure and appends it to the results file (JSON lines)."""

    def __init__(self, part: str, results: Path | None):
        self.part = part
        self.results = results

    def _write(self, rec: dict[str, Any]) -> None:
        if self.results is not None:
            self.results.parent.mkdir(parents=True, exist_ok=True)
            with self.results.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")

    def figure(self, name: str, value: Any, unit: str = "") -> None:
        if isinstance(value, float):
            value = round(value, 4)
        print(f"{self.part}.{name} {value} {unit}".rstrip(), flush=True)
        self._write({"part": self.part, "name": name, "value": value, "unit": unit})

    def skip(self, why: str) -> None:
        why = " ".join(str(why).split())
        print(f"SKIP {self.part}: {why}", flush=True)
        self._write({"part": self.part, "skip": why})


# ---------------------------------------------------------------- checks


def missing(names: tuple[str, ...]) -> list[str]:
    """The modules of ``names`` that cannot be found (find_spec only: nothing heavy is imported)."""
    out = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


def require(part: str) -> None:
    gone = missing(NEEDS[part])
    if gone:
        raise Skip(f"not installed: {', '.join(gone)} (not in .whl/: see benchmarks/gpu_bundle.sh)")
    if "bitsandbytes" in NEEDS[part]:
        try:
            importlib.import_module("bitsandbytes")
        except Exception as exc:  # noqa: BLE001 - installed but broken against this torch/CUDA
            raise Skip(f"bitsandbytes is installed but does not import: {type(exc).__name__}: {exc}") from exc


def need_cuda(args: argparse.Namespace) -> Any:
    import torch

    if not torch.cuda.is_available() and not args.cpu_smoke:
        raise Skip("torch sees no CUDA GPU")
    return torch


# ---------------------------------------------------------------- shapes and data


def shape(name: str, args: argparse.Namespace | None = None) -> dict[str, Any]:
    """The published config.json of ``name``; with ``--cpu-smoke`` a tiny one of the same family."""
    cfg = json.loads((SHAPES / f"{name}.json").read_text())
    if args is not None and args.cpu_smoke:
        cfg.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=16, vocab_size=WORDS_PER_TOKENIZER, max_position_embeddings=1024)
    return cfg


def shape_parameters(cfg: dict[str, Any]) -> int:
    """Parameters of a Llama/Qwen2 decoder with this config.json, by arithmetic (no torch):
    embeddings (tied or not), q/k/v/o (Qwen2 has q/k/v biases), gated MLP, two norms a layer + one."""
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or h // heads
    qkv_bias = cfg["model_type"] == "qwen2" or bool(cfg.get("attention_bias"))
    q, kvd = heads * head_dim, kv * head_dim
    attn = h * q + 2 * h * kvd + q * h + ((q + 2 * kvd) if qkv_bias else 0)
    per_layer = attn + 3 * h * inter + 2 * h
    emb = cfg["vocab_size"] * h * (1 if cfg.get("tie_word_embeddings") else 2)
    return emb + layers * per_layer + h


def flops_per_token(cfg: dict[str, Any], seq: int, *, lora: bool) -> float:
    """Training FLOPs per token (PaLM's count): 6N + 12*L*H*T for full fine-tuning; LoRA skips the
    frozen weights' gradients, 4N + 12*L*H*T (the adapters' own FLOPs are negligible). N counts the
    (tied) embedding once, as the output projection's matrix product."""
    n = shape_parameters(cfg)
    attn = 12 * cfg["num_hidden_layers"] * cfg["hidden_size"] * seq
    return (4 if lora else 6) * n + attn


def spider_path(arg: str | None) -> Path | None:
    for cand in (arg, os.environ.get("SPIDER"), REPO / ".gpu_data" / "spider", REPO / "shared" / "data" / "spider",
                 REPO.parent / "shared" / "data" / "spider"):
        if cand and (Path(cand) / "dev.json").is_file() and (Path(cand) / "database").is_dir():
            return Path(cand)
    return None


def examples(args: argparse.Namespace, split: str, n: int) -> list[Any]:
    spider = spider_path(args.spider)
    if spider is None:
        raise Skip("no Spider folder (run benchmarks/gpu_bundle.sh, or give --spider / $SPIDER)")
    from sqlcoach.data import load_examples

    pool = load_examples("spider", str(spider), split)
    if not pool:
        raise Skip(f"{spider} has no {split} questions")
    step = max(1, len(pool) // n)
    out = pool[::step][:n]
    while len(out) < n:  # a small slice: repeat questions
        out += out[: n - len(out)]
    return out


def model_folder(args: argparse.Namespace, name: str, rec: Recorder) -> Path:
    """A random-init bf16 model of shape ``name`` with a tokenizer trained on the slice, in ``--work``
    (made once; later parts reuse it)."""
    out = Path(args.work) / "models" / name
    weights = (out / "model.safetensors").is_file() or (out / "model.safetensors.index.json").is_file()
    if (out / "config.json").is_file() and weights:
        return out
    torch = need_cuda(args)
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from sqlcoach.models.tiny import IM_END, ENDOFTEXT, TEMPLATE_WORDS, train_tokenizer

    t0 = time.perf_counter()
    corpus = [TEMPLATE_WORDS] + [f"{e.question} {e.gold_sql}" for e in examples(args, "dev_train", 400)]
    spider = spider_path(args.spider)
    if spider is not None:
        corpus.append((spider / "tables.json").read_text()[:200_000])
    tok = train_tokenizer(corpus, WORDS_PER_TOKENIZER)
    cfg = shape(name, args)
    cfg.update(eos_token_id=tok.convert_tokens_to_ids(IM_END), pad_token_id=tok.convert_tokens_to_ids(ENDOFTEXT),
               bos_token_id=None)
    model_type = cfg.pop("model_type")
    for key in ("architectures", "torch_dtype", "transformers_version"):
        cfg.pop(key, None)
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(0)
    with torch.device(device(args)):  # random init on the GPU: seconds instead of a minute on the CPU
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if args.cpu_smoke else torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
                                               do_sample=False)
    n = sum(p.numel() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    model.save_pretrained(out)
    del model
    if not args.cpu_smoke:
        torch.cuda.empty_cache()
    rec.figure(f"{name}.parameters", n)
    rec.figure(f"{name}.parameters_match_published", n == PUBLISHED_PARAMETERS[name] and not args.cpu_smoke)
    rec.figure(f"{name}.init_and_save_s", time.perf_counter() - t0, "s")
    return out


def device(args: argparse.Namespace) -> str:
    return "cpu" if args.cpu_smoke else "cuda"


def common_train(args: argparse.Namespace, out: Path, method: str) -> dict[str, Any]:
    smoke = dict(use_cpu=True, dtype="float32") if args.cpu_smoke else dict(dtype="bfloat16")
    return dict(output_dir=str(out), **smoke, report_to="none", disable_tqdm=True, logging_steps=1,
                save_steps=1_000_000, warmup_ratio=0.0, seed=0, method=method, lora_r=args.lora_r,
                lora_alpha=2 * args.lora_r, lora_dropout=0.0,
                lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def cap(args: argparse.Namespace) -> float:
    """Seconds this part may take (gpu_check.sh passes what is left of its budget, at most the cap)."""
    return float(args.cap if args.cap is not None else CAPS[args.part])


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


def peak_flops(args: argparse.Namespace) -> float | None:
    import torch

    if args.cpu_smoke:
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


# ---------------------------------------------------------------- plans (cheap: no torch, no GPU)
# Each plan builds the sqlcoach configs its part will run, so that --dry-run checks them on CPU.


def plan_sft(args: argparse.Namespace) -> list[tuple[str, str, Any]]:
    from sqlcoach.config import SFTRunConfig, build_config

    out = []
    for name in ("qwen2.5-0.5b", "qwen2.5-1.5b"):
        for method in ("lora", "full"):
            cfg = build_config(SFTRunConfig, dict(
                model=str(Path(args.work) / "models" / name), data_path="(examples given)", split="dev_train", **PROMPT,
                **common_train(args, Path(args.work) / f"sft-{name}-{method}", method), max_steps=args.sft_steps,
                per_device_train_batch_size=args.batch, max_length=args.seq, learning_rate=1e-5,
                lr_scheduler_type="constant"))
            out.append((name, method, cfg))
    return out


def plan_grpo(args: argparse.Namespace) -> Any:
    from sqlcoach.config import GRPORunConfig, build_config

    return build_config(GRPORunConfig, dict(
        model=str(Path(args.work) / "models" / "qwen2.5-0.5b"), data_path="(examples given)", split="dev_train",
        **PROMPT, **common_train(args, Path(args.work) / "grpo", "full"), rewards="execution", reward_workers=4,
        num_generations=args.micro_batch, per_device_train_batch_size=args.micro_batch, max_steps=args.rl_steps,
        max_examples=4 * args.rl_steps, max_completion_length=args.completion, learning_rate=1e-6, beta=0.0,
        temperature=1.0, sample_every=1_000_000, num_samples=0, curate_gold=False, pass_rate_k=0))


def plan_ppo(args: argparse.Namespace) -> Any:
    from sqlcoach.config import PPORunConfig, build_config

    return build_config(PPORunConfig, dict(
        model=str(Path(args.work) / "models" / "qwen2.5-0.5b"), data_path="(rows given)", output_dir=str(Path(args.work) / "ppo"),
        method="full", **{k: v for k, v in common_train(args, Path(), "full").items() if k in ("dtype", "use_cpu")},
        rollout_batch_size=args.micro_batch, per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=1, ppo_epochs=1, max_completion_length=args.completion, temperature=1.0, learning_rate=1e-6,
        max_steps=args.rl_steps, kl_coef=0.0, reward_workers=4, save_steps=1_000_000, sample_every=0, seed=0))


def plan_dpo(args: argparse.Namespace) -> Any:
    from sqlcoach.config import DPORunConfig, build_config

    values = common_train(args, Path(args.work) / "dpo", "full")
    for key in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"):
        values.pop(key)
    return build_config(DPORunConfig, dict(
        model=str(Path(args.work) / "models" / "qwen2.5-0.5b"), pairs_path="(rows given)", **values,
        per_device_train_batch_size=args.micro_batch // 2, max_steps=args.rl_steps + 2, max_length=1024,
        learning_rate=1e-6, beta=0.1))


def plan_fsdp(args: argparse.Namespace) -> tuple[Path, list[str]]:
    """The SFT config file and the ``accelerate launch`` command of the fsdp part (the file is written)."""
    import yaml

    from sqlcoach.config import SFTRunConfig, build_config

    work = Path(args.work)
    spider = spider_path(args.spider)
    values = dict(model=str(work / "models" / "smollm2-135m"), data_path=str(spider or "(no spider)"), data_kind="spider",
                  split="dev_train", **PROMPT, **common_train(args, work / "fsdp", "full"), max_steps=3,
                  per_device_train_batch_size=args.batch, max_length=args.seq, learning_rate=1e-5, max_examples=64)
    build_config(SFTRunConfig, values)  # the recipe's own checks, before anything is launched
    cfg_path = work / "fsdp.yaml"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(yaml.safe_dump(values))
    acc = REPO / "configs" / "accelerate" / "fsdp.yaml"
    acc_cfg = yaml.safe_load(acc.read_text())
    if acc_cfg.get("distributed_type") != "FSDP":
        raise Skip(f"{acc} is not an FSDP config (distributed_type {acc_cfg.get('distributed_type')!r})")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(acc), "--num_processes", "1",
           *(["--cpu"] if args.cpu_smoke else []), "-m", "sqlcoach.cli", "train", "sft", "--config", str(cfg_path)]
    return cfg_path, cmd


PLANS = {"sft": plan_sft, "grpo": plan_grpo, "ppo": plan_ppo, "dpo": plan_dpo, "fsdp": plan_fsdp}


# ---------------------------------------------------------------- parts


def part_env(args: argparse.Namespace, rec: Recorder) -> None:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    rec.figure("python", platform.python_version())
    for dist in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "sqlglot",
                 "fastapi", "huggingface-hub", "tokenizers"):
        try:
            rec.figure(dist, version(dist))
        except PackageNotFoundError:
            rec.figure(dist, "missing")
    if missing(("torch",)):
        return
    import torch

    rec.figure("cuda", str(torch.version.cuda))
    if torch.cuda.is_available():
        rec.figure("gpu", torch.cuda.get_device_name(0).replace(" ", "_"))
        rec.figure("gpu_memory_mb", mib(torch.cuda.get_device_properties(0).total_memory), "MiB")


def part_deps(args: argparse.Namespace, rec: Recorder) -> None:
    """Each carried wheel's requirements against the installed distributions."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.version import Version

    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_bundle import wheel_list

    unmet, checked = [], 0
    env = {**default_environment(), "extra": ""}
    for name, want, optional in wheel_list():
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            if not optional:
                unmet.append(f"{name}=={want} not installed")
            continue
        if dist.version != want:
            unmet.append(f"{name}: installed {dist.version}, wheels.txt {want}")
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            checked += 1
            try:
                have = distribution(req.name).version
            except PackageNotFoundError:
                unmet.append(f"{name} needs {spec}: not installed")
                continue
            if not req.specifier.contains(Version(have), prereleases=True):
                unmet.append(f"{name} needs {spec}: installed {have}")
    rec.figure("requirements_checked", checked)
    rec.figure("unmet", len(unmet))
    for line in unmet:
        print(f"deps: unmet: {line}", flush=True)


def _train_figures(args: argparse.Namespace, rec: Recorder, key: str, summary: dict[str, Any], out: Path,
                   cfg_shape: dict[str, Any] | None, lora: bool) -> None:
    rec.figure(f"{key}.steps", summary["global_step"])
    step = summary.get("median_step_seconds")
    rec.figure(f"{key}.median_step_s", step, "s")
    rec.figure(f"{key}.peak_memory_mb", summary.get("peak_cuda_mb"), "MiB")
    hist_path = out / "log_history.json"
    hist = json.loads(hist_path.read_text()) if hist_path.is_file() else []
    tokens = [h["num_tokens"] for h in hist if "num_tokens" in h]
    if tokens and summary["global_step"] and step:
        per_step = tokens[-1] / summary["global_step"]
        rec.figure(f"{key}.tokens_per_step", per_step, "tokens")
        rec.figure(f"{key}.tokens_per_s", per_step / step, "tokens/s")
        peak = peak_flops(args)
        if peak and cfg_shape is not None:
            rec.figure(f"{key}.mfu", per_step / step * flops_per_token(cfg_shape, args.seq, lora=lora) / peak)


def part_sft(args: argparse.Namespace, rec: Recorder) -> None:
    torch = need_cuda(args)
    from sqlcoach.train.sft import run_sft

    exs = examples(args, "dev_train", args.sft_steps * args.batch)
    for name, method, cfg in plan_sft(args):
        model_folder(args, name, rec)
        summary = run_sft(cfg, examples=exs, log=lambda m: None)
        _train_figures(args, rec, f"{name}.{method}", summary, Path(cfg.output_dir), shape(name, args), method == "lora")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _rl_rows(args: argparse.Namespace, n: int) -> list[dict[str, Any]]:
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.train.rl_data import build_rl_rows

    return build_rl_rows(examples(args, "dev_train", n), prompt=PromptSettings(**PROMPT))


def part_grpo(args: argparse.Namespace, rec: Recorder) -> None:
    need_cuda(args)
    from sqlcoach.train.grpo import run_grpo

    cfg = plan_grpo(args)
    model_folder(args, "qwen2.5-0.5b", rec)
    summary = run_grpo(cfg, examples=examples(args, "dev_train", 4 * args.rl_steps), log=lambda m: None)
    _train_figures(args, rec, "qwen2.5-0.5b.full", summary, Path(cfg.output_dir), None, False)
    rec.figure("completions_per_step", args.micro_batch)
    if summary.get("train_seconds"):
        rec.figure("generated_tokens_per_s", summary["tokens_generated"] / summary["train_seconds"], "tokens/s")


def part_ppo(args: argparse.Namespace, rec: Recorder) -> None:
    need_cuda(args)
    from sqlcoach.train.ppo import run_ppo

    cfg = plan_ppo(args)
    model_folder(args, "qwen2.5-0.5b", rec)
    summary = run_ppo(cfg, rows=_rl_rows(args, args.micro_batch * args.rl_steps), log=lambda m: None)
    _train_figures(args, rec, "qwen2.5-0.5b.full", summary, Path(cfg.output_dir), None, False)
    rec.figure("completions_per_step", args.micro_batch)


def part_dpo(args: argparse.Namespace, rec: Recorder) -> None:
    need_cuda(args)
    from sqlcoach.train.dpo import run_dpo

    cfg = plan_dpo(args)
    model_folder(args, "qwen2.5-0.5b", rec)
    rows = _rl_rows(args, 8 * cfg.per_device_train_batch_size * cfg.max_steps)
    pairs = [{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["gold_sql"]}],
              "rejected": [{"role": "assistant", "content": rows[(i + 1) % len(rows)]["gold_sql"]}]}
             for i, r in enumerate(rows)]
    summary = run_dpo(cfg, rows=pairs, log=lambda m: None)
    _train_figures(args, rec, "qwen2.5-0.5b.full", summary, Path(cfg.output_dir), None, False)
    rec.figure("sequences_per_micro_batch", 2 * cfg.per_device_train_batch_size)


def part_predict(args: argparse.Namespace, rec: Recorder) -> None:
    need_cuda(args)
    from sqlcoach.generate.predict import predict
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.settings import PromptSettings

    folder = model_folder(args, "qwen2.5-0.5b", rec)
    exs = examples(args, "dev_eval", args.predict_questions)
    model, tok = load_model(str(folder), dtype="float32" if args.cpu_smoke else "bfloat16", device=device(args))
    s = predict(model, tok, exs, Path(args.work) / "predict" / "pred.sql", batch_size=args.predict_batch,
                max_new_tokens=args.completion, progress=False, workers=4, prompt=PromptSettings(**PROMPT))
    rec.figure("questions", len(exs))
    rec.figure("batch", args.predict_batch)
    rec.figure("examples_per_s", s.examples_per_s, "ex/s")
    rec.figure("tokens_per_s", s.tokens_per_s, "tokens/s")
    rec.figure("seconds", s.seconds, "s")


def part_serve(args: argparse.Namespace, rec: Recorder) -> None:
    import threading

    need_cuda(args)
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.path.insert(0, str(REPO / "tests"))
    from serve_load import client_loop
    from serve_process import ServeProcess

    folder = model_folder(args, "qwen2.5-0.5b", rec)
    log = Path(args.work) / "serve.log"
    t0 = time.perf_counter()
    srv = ServeProcess(folder, "--device", device(args), "--dtype", "float32" if args.cpu_smoke else "bfloat16", "--served-model-name", "m",
                       "--max-batch", str(args.serve_clients), "--max-queue", str(4 * args.serve_clients), log=log,
                       start_timeout=cap(args) * 0.6)
    try:
        rec.figure("start_s", time.perf_counter() - t0, "s")
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "How many singers are there?"}],
                           "max_tokens": args.completion, "temperature": 0}).encode()
        lat: list[float] = []
        errors: list[str] = []
        tokens: list[int] = []
        stop_at = time.monotonic() + cap(args) / 4
        threads = [threading.Thread(target=client_loop, args=(srv.port, args.serve_requests, body, stop_at, lat, errors, tokens))
                   for _ in range(args.serve_clients)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(cap(args) / 4 + 60)
        wall = time.monotonic() - t0
    finally:
        srv.stop()
    rec.figure("clients", args.serve_clients)
    rec.figure("requests_ok", len(lat))
    rec.figure("errors", len(errors))
    if errors:
        print(f"serve: first error: {errors[0]}", flush=True)
    rec.figure("requests_per_s", len(lat) / wall, "req/s")
    rec.figure("tokens_per_s", sum(tokens) / wall, "tokens/s")
    if lat:
        rec.figure("latency_p50_s", statistics.median(lat), "s")


def part_fsdp(args: argparse.Namespace, rec: Recorder) -> None:
    need_cuda(args)
    model_folder(args, "smollm2-135m", rec)
    _, cmd = plan_fsdp(args)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=max(10.0, cap(args) - 10))
    rec.figure("launch_wall_s", time.perf_counter() - t0, "s")
    rec.figure("returncode", proc.returncode)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        print(text[-3000:], flush=True)
        raise RuntimeError(f"accelerate launch exited with {proc.returncode}")
    doc = json.loads((Path(args.work) / "fsdp" / "summary.json").read_text())
    summary = doc.get("summary", doc)
    rec.figure("steps", summary.get("global_step"))
    rec.figure("median_step_s", summary.get("median_step_seconds"), "s")
    # what accelerate actually ran: FSDP on a GPU; the CPU smoke runs plain (accelerate --cpu)
    rec.figure("distributed_type", summary.get("distributed_type"))
    if not args.cpu_smoke and summary.get("distributed_type") != "FSDP":
        raise RuntimeError(f"accelerate ran {summary.get('distributed_type')!r}, not FSDP")


def part_qlora(args: argparse.Namespace, rec: Recorder) -> None:
    torch = need_cuda(args)
    if args.cpu_smoke:
        raise Skip("bitsandbytes' 4-bit kernels need CUDA")
    from types import SimpleNamespace

    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from sqlcoach.models.load import quantization_config
    from sqlcoach.train.run import lora_config

    folder = model_folder(args, "qwen2.5-1.5b", rec)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.bfloat16, quantization_config=quantization_config("4bit", torch.bfloat16), device_map={"": 0})
    rec.figure("load_4bit_s", time.perf_counter() - t0, "s")
    rec.figure("footprint_4bit_mb", mib(model.get_memory_footprint()), "MiB")
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, lora_config(SimpleNamespace(**common_train(args, folder, "lora"))))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randint(0, WORDS_PER_TOKENIZER, (args.batch, args.seq), device="cuda", generator=g)
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.sft_steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    step = statistics.median(times[1:] or times)
    rec.figure("batch_x_seq", f"{args.batch}x{args.seq}")
    rec.figure("median_step_s", step, "s")
    rec.figure("tokens_per_s", args.batch * args.seq / step, "tokens/s")
    rec.figure("peak_memory_mb", mib(torch.cuda.max_memory_allocated()), "MiB")


def part_correct(args: argparse.Namespace, rec: Recorder) -> None:
    torch = need_cuda(args)
    folder = Path(args.demo_model)
    if not (folder / "config.json").is_file():
        raise Skip(f"no trained demo model at {folder} (gpu_bundle.sh --demo-model runs/demo/sft/final carries one)")
    from sqlcoach.generate.hf import generate_texts
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.builder import PromptBuilder

    import yaml

    # the prompt the demo model was trained with (configs/sft/demo.yaml)
    prompt = yaml.safe_load((REPO / "configs" / "sft" / "demo.yaml").read_text())
    exs = examples(args, "dev_eval", 16)
    outs, logits = {}, {}
    for where in ("cpu", device(args)):
        model, tok = load_model(str(folder), dtype="float32", device=where)
        texts = PromptBuilder(prompt["template"], prompt["schema_style"], prompt["schema_sample_values"]).prediction_texts(exs, tok)
        outs[where] = [t[0] for t in generate_texts(model, tok, texts, max_new_tokens=48, temperature=0.0).texts]
        enc = tok(texts[:4], return_tensors="pt", padding=True).to(where)
        with torch.no_grad():
            logits[where] = model(**enc).logits.float().cpu()
    other = device(args)
    same = sum(a == b for a, b in zip(outs["cpu"], outs[other]))
    rec.figure("greedy_same_as_cpu", same, f"of {len(exs)}")
    rec.figure("max_abs_logit_diff", float((logits["cpu"] - logits[other]).abs().max()))


RUN = {"env": part_env, "deps": part_deps, "sft": part_sft, "grpo": part_grpo, "ppo": part_ppo, "dpo": part_dpo,
       "predict": part_predict, "serve": part_serve, "fsdp": part_fsdp, "qlora": part_qlora, "correct": part_correct}


# ---------------------------------------------------------------- driver


def plan_part(args: argparse.Namespace, rec: Recorder) -> None:
    """``--plan``: build what the part would run (configs, commands), touch no GPU, load no model."""
    gone = missing(NEEDS[args.part])
    plan = PLANS.get(args.part)
    if plan is not None and "sqlcoach" not in missing(("sqlcoach",)):
        built = plan(args)
        what = len(built) if isinstance(built, list) else 1
        rec.figure("plan", f"{what}_config(s)_ok")
    else:
        rec.figure("plan", "ok")
    rec.figure("cap_s", CAPS[args.part], "s")
    rec.figure("imports", "found" if not gone else "missing:" + ",".join(gone))


def dry_run(args: argparse.Namespace) -> int:
    """The lists, the shapes, every part's configs and the time plan; nothing heavy is imported."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_bundle import check_lists

    print(f"gpu_check dry run: parts {','.join(args.parts)}; work {args.work}")
    for line in check_lists():
        print(f"bundle: {line}")
    for name, count in PUBLISHED_PARAMETERS.items():
        got = shape_parameters(shape(name))
        if got != count:
            print(f"shape {name}: {got:,} parameters, published {count:,}: WRONG")
            return 1
        print(f"shape {name}: {got:,} parameters (as published)")
    spider = spider_path(args.spider)
    print(f"spider: {spider if spider else 'not found (the parts that need it would SKIP)'}")
    for part in args.parts:
        gone = missing(NEEDS[part])
        print(f"{part}: cap {CAPS[part]} s, " + (f"would SKIP, not installed: {', '.join(gone)}" if gone else "imports found"))
    if "sqlcoach" not in missing(("sqlcoach",)):
        for part, plan in PLANS.items():
            built = plan(args)
            print(f"configs: {part}: {len(built) if isinstance(built, list) else 1} config(s) pass sqlcoach's checks")
    total = sum(CAPS[p] for p in args.parts)
    print(f"time plan: caps add up to {total} s; gpu_check.sh stops starting parts at its budget")
    return 0


def collect(results: Path, out: Path | None) -> int:
    """Fold the results file into one JSON object ``{"figures": {part.name: value}, "units", "skipped"}``."""
    figures: dict[str, Any] = {}
    units: dict[str, str] = {}
    skipped: dict[str, str] = {}
    if results.is_file():
        for line in results.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if "skip" in r:
                skipped[r["part"]] = r["skip"]
            else:
                key = f"{r['part']}.{r['name']}"
                figures[key] = r["value"]
                if r.get("unit"):
                    units[key] = r["unit"]
    doc = {"figures": figures, "units": units, "skipped": skipped}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {out} ({len(figures)} figures, {len(skipped)} parts skipped)")
    else:
        print(json.dumps(doc, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Each part runs in its own process (gpu_check.sh): figures of one do not "
                                        "carry another's memory, and a crash or timeout loses only that part.")
    ap.add_argument("--part", choices=PARTS, help="run one part")
    ap.add_argument("--cap", type=float, default=None,
                    help="seconds this part may take (default: its CAPS entry); bounds its own subprocesses")
    ap.add_argument("--plan", action="store_true", help="with --part: build its configs only (no GPU, no model)")
    ap.add_argument("--parts", default=",".join(PARTS), help="with --dry-run: the parts to check (comma-separated)")
    ap.add_argument("--dry-run", action="store_true", help="lists, shapes, configs and time plan only")
    ap.add_argument("--collect", metavar="RESULTS", help="fold a results file into --json")
    ap.add_argument("--json", metavar="FILE", help="with --collect: where to write the JSON (default: print it)")
    ap.add_argument("--results", default=None, help="JSON-lines file each part appends its figures to")
    ap.add_argument("--work", default=os.environ.get("GPU_CHECK_WORK", "/tmp/gpu_check"),
                    help="scratch folder (random-init models, runs); models are reused across parts")
    ap.add_argument("--spider", default=None, help="Spider folder (default: $SPIDER, .gpu_data/spider, ../shared/data/spider)")
    ap.add_argument("--demo-model", default=str(REPO / ".gpu_data" / "demo_model"), help="correct: trained model folder")
    ap.add_argument("--batch", type=int, default=16, help="rows per SFT / QLoRA step (Spider slice prompts: ~190-360 tokens)")
    ap.add_argument("--seq", type=int, default=512, help="SFT/DPO max_length; QLoRA exact length")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--sft-steps", type=int, default=8)
    ap.add_argument("--micro-batch", type=int, default=8, help="sequences per GRPO/PPO/DPO micro-batch")
    ap.add_argument("--rl-steps", type=int, default=3)
    ap.add_argument("--completion", type=int, default=64, help="tokens per completion (GRPO, PPO, predict, serve)")
    ap.add_argument("--predict-questions", type=int, default=128)
    ap.add_argument("--predict-batch", type=int, default=32)
    ap.add_argument("--serve-clients", type=int, default=16)
    ap.add_argument("--serve-requests", type=int, default=4)
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run the parts on the CPU with tiny models of the same families (float32): checks this "
                         "script's plumbing end to end before a GPU run; its figures mean nothing")
    args = ap.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    bad = [p for p in args.parts if p not in PARTS]
    if bad:
        ap.error(f"unknown part(s) {bad}; choose from {PARTS}")
    for name in ("batch", "seq", "lora_r", "sft_steps", "rl_steps", "completion", "predict_questions", "predict_batch",
                 "serve_clients", "serve_requests"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.micro_batch < 2 or args.micro_batch % 2:
        ap.error("--micro-batch must be even and >= 2 (GRPO needs a group, DPO pairs)")
    results = Path(args.results) if args.results else None
    if args.collect:
        return collect(Path(args.collect), Path(args.json) if args.json else None)
    if args.dry_run:
        return dry_run(args)
    if not args.part:
        ap.error("give --part, --collect or --dry-run")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rec = Recorder(args.part, results)
    try:
        if args.plan:
            plan_part(args, rec)
            return 0
        require(args.part)
        t0 = time.perf_counter()
        RUN[args.part](args, rec)
        rec.figure("part_wall_s", time.perf_counter() - t0, "s")
    except Skip as exc:
        rec.skip(str(exc))
    except Exception as exc:  # noqa: BLE001 - one part's failure is a figure, not the end of the check
        traceback.print_exc()
        rec.skip(f"FAILED {type(exc).__name__}: {exc}"[:400])
        return 1
    return 0


if __name__ == "__main__":  # the GRPO/PPO parts start SQL executor processes
    sys.exit(main())
