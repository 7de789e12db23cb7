"""The figures behind docs/scale.md's plan for Arctic-style GRPO on 8 x H100 80 GB: parameter
counts from the model shapes, memory per GPU per ZeRO stage, the KV cache a colocated vLLM can
hold, and rollout / training throughput estimates from the H100's published peaks.

    python benchmarks/scale_plan.py            # Qwen2.5-Coder-7B and -32B, 8 GPUs
    python benchmarks/scale_plan.py --gpus 16  # e.g. two nodes

These are ESTIMATES from arithmetic, not measurements (no GPU was available when this was
written); every assumption is an argument with its default printed. The shapes are those of the
models' config.json files (hidden size, layers, heads, KV heads, intermediate size, vocabulary).
"""

from __future__ import annotations

import argparse

GB = 1e9
SHAPES = {  # config.json of Qwen/Qwen2.5-Coder-7B-Instruct and -32B-Instruct
    "qwen2.5-coder-7b": dict(hidden=3584, layers=28, heads=28, kv_heads=4, inter=18944, vocab=152064, tied=False),
    "qwen2.5-coder-32b": dict(hidden=5120, layers=64, heads=40, kv_heads=8, inter=27648, vocab=152064, tied=False),
}
H100 = dict(bf16_tflops=989.0, hbm_tb_s=3.35, memory_gb=80.0)  # dense bf16 peak (SXM), HBM3 bandwidth


def parameters(s: dict) -> int:
    h, hd = s["hidden"], s["hidden"] // s["heads"]
    kv = s["kv_heads"] * hd
    attn = h * h + 2 * h * kv + h * h + 2 * kv + h  # q, k, v, o (+ q/k/v biases, as Qwen2 has)
    mlp = 3 * h * s["inter"]
    per_layer = attn + mlp + 2 * h  # two RMSNorms
    emb = s["vocab"] * h * (1 if s["tied"] else 2)
    return s["layers"] * per_layer + emb + h


def lora_parameters(s: dict, r: int) -> int:
    h, hd = s["hidden"], s["hidden"] // s["heads"]
    kv = s["kv_heads"] * hd
    pairs = [(h, h), (h, kv), (h, kv), (h, h), (h, s["inter"]), (h, s["inter"]), (s["inter"], h)]
    return s["layers"] * sum(r * (a + b) for a, b in pairs)


def kv_bytes_per_token(s: dict) -> int:
    return 2 * s["layers"] * s["kv_heads"] * (s["hidden"] // s["heads"]) * 2  # K and V, bf16


def zero_memory(n: int, gpus: int) -> dict[str, float]:
    """GB per GPU for weights + gradients + optimizer, bf16 training with fp32 master weights and
    Adam moments (2 + 2 + 12 bytes per parameter), by what each stage shards."""
    return {
        "DDP (ZeRO-0)": 16 * n / GB,
        "ZeRO-1 (optimizer sharded)": (4 + 12 / gpus) * n / GB,
        "ZeRO-2 (+ gradients)": (2 + 14 / gpus) * n / GB,
        "ZeRO-3 / FSDP (+ weights)": 16 * n / gpus / GB,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=1500, help="OmniSQL prompt with DDL + values (Spider/BIRD)")
    ap.add_argument("--completion-tokens", type=int, default=500, help="mean reasoning + SQL completion")
    ap.add_argument("--max-completion", type=int, default=4096, help="the longest completion a step waits for")
    ap.add_argument("--prompts-per-step", type=int, default=64)
    ap.add_argument("--group", type=int, default=16)
    ap.add_argument("--mfu", type=float, default=0.40, help="training model-FLOPs utilisation")
    ap.add_argument("--decode-efficiency", type=float, default=0.5, help="share of HBM bandwidth vLLM decode reaches")
    ap.add_argument("--vllm-share", type=float, default=0.35, help="colocate: vllm_gpu_memory_utilization")
    ap.add_argument("--lora-r", type=int, default=64)
    ap.add_argument("--server-gpus", type=int, default=4, help="GPUs given to trl vllm-serve when colocate cannot hold the model")
    a = ap.parse_args()
    print(f"assumptions: {vars(a)}; H100: {H100}")
    for name, s in SHAPES.items():
        n = parameters(s)
        w = 2 * n / GB
        kv = kv_bytes_per_token(s)
        print(f"\n== {name}: {n / 1e9:.2f} B parameters, bf16 weights {w:.1f} GB, KV cache {kv / 1024:.0f} KiB/token")
        for stage, gb in zero_memory(n, a.gpus).items():
            print(f"  full fine-tune, {stage}, {a.gpus} GPUs: {gb:.1f} GB/GPU for weights+grads+Adam")
        lp = lora_parameters(s, a.lora_r)
        print(f"  LoRA r={a.lora_r} (all linear layers): {lp / 1e6:.1f} M trainable, their grads+Adam {16 * lp / GB:.1f} GB; "
              f"frozen base {w:.1f} GB replicated (DDP) or {w / a.gpus:.1f} GB/GPU (ZeRO-3)")
        seq = a.prompt_tokens + a.completion_tokens
        completions = a.prompts_per_step * a.group
        vllm_gb = a.vllm_share * H100["memory_gb"]
        if vllm_gb - w > 0:  # colocate: one engine per training GPU
            engines, tp, kv_room, where = a.gpus, 1, vllm_gb - w, f"colocated vLLM at {a.vllm_share:.2f} x 80 GB = {vllm_gb:.0f} GB"
        else:  # server: trl vllm-serve on GPUs of its own, tensor parallel
            tp = 1
            while tp * 0.9 * H100["memory_gb"] - w < 0.25 * tp * H100["memory_gb"]:
                tp *= 2
            engines, kv_room = a.server_gpus // tp, tp * 0.9 * H100["memory_gb"] - w
            where = (f"weights do not fit a colocated engine; server mode: {a.server_gpus} GPUs as {engines} engine(s) of "
                     f"tensor parallel {tp} at 0.9 memory")
        cap = int(kv_room * GB / kv / seq)
        print(f"  {where}: {kv_room:.1f} GB KV per engine after the weights = {kv_room * GB / kv / 1e3:.0f} k tokens "
              f"= {cap} sequences of {seq} tokens")
        # decode: each step reads the engine's weights once (split over tp GPUs) and every running sequence's KV cache
        conc = max(1, min(completions // engines, cap))
        t_step = (2 * n / tp + conc * seq * kv / 2 / tp) / (H100["hbm_tb_s"] * 1e12 * a.decode_efficiency)
        decode_tps = conc / t_step  # per engine
        gen_tokens = completions * a.completion_tokens
        prefill_s = 2 * n * completions * a.prompt_tokens / (engines * tp * H100["bf16_tflops"] * 1e12 * a.mfu)
        tail_s = a.max_completion * t_step
        print(f"  rollout: {conc} sequences per engine decode at ~{decode_tps:,.0f} tokens/s/engine ({t_step * 1e3:.1f} ms a "
              f"token); {completions} completions x {a.completion_tokens} = {gen_tokens / 1e3:.0f} k tokens: "
              f"{gen_tokens / (decode_tps * engines):.0f} s of decode + {prefill_s:.0f} s prefill; the longest "
              f"({a.max_completion} tokens) alone takes {tail_s:.0f} s")
        flops_per_token = 8 * n + 2 * n  # forward+backward with activation checkpointing (8N) + reference forward (2N)
        train_tps = H100["bf16_tflops"] * 1e12 * a.mfu / flops_per_token
        train_tokens = completions * seq
        print(f"  training: {flops_per_token / n:.0f}N FLOPs a token at {a.mfu:.0%} MFU = {train_tps:,.0f} tokens/s/GPU; "
              f"{train_tokens / 1e6:.2f} M tokens a step = {train_tokens / (train_tps * a.gpus):.0f} s on {a.gpus} GPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
