"""SFT speed of random-init Qwen2 models: optimizer steps/s and trained tokens/s.

    OMP_NUM_THREADS=1 python benchmarks/sft_speed.py --sizes tiny small --steps 20 --batch 16 --seq 160
    python benchmarks/sft_speed.py --hidden 3584 --layers 28 --heads 28 --kv 4 --mlp 18944 --vocab 152064 \\
        --seq 2048 --batch 1 --dtype bfloat16     # Qwen2.5-7B shape, on a GPU

Speed does not depend on the weights, so random-init models of real shapes measure what a real
run would see (no download needed). Reports the median step time after ``--warmup`` steps and the
peak memory (RSS on CPU, allocator peak on CUDA). Plain PyTorch loop (forward, backward, AdamW
step), i.e. the floor under what Trainer adds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="*", default=[], help="named sizes from sqlcoach.models.tiny.SIZES")
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--kv", type=int)
    ap.add_argument("--mlp", type=int)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--seq", type=int, default=160)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--json", default=None, help="write results here")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from sqlcoach.runtime.memory import track_peak
    from sqlcoach.models.tiny import SIZES

    shapes = [(name, SIZES[name].hidden_size, SIZES[name].num_hidden_layers, SIZES[name].num_attention_heads,
               SIZES[name].num_key_value_heads, SIZES[name].intermediate_size, SIZES[name].vocab_size)
              for name in args.sizes]
    if args.hidden:
        shapes.append(("custom", args.hidden, args.layers, args.heads, args.kv, args.mlp, args.vocab))
    if not shapes:
        ap.error("give --sizes or a custom shape (--hidden --layers --heads --kv --mlp)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, args.dtype)
    results = []
    for name, h, layers, heads, kv, mlp, vocab in shapes:
        cfg = Qwen2Config(vocab_size=vocab, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                          num_key_value_heads=kv, intermediate_size=mlp, tie_word_embeddings=vocab < 100_000)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randint(0, vocab, (args.batch, args.seq), device=device)
        times = []
        with track_peak() as mem:
            for i in range(args.warmup + args.steps):
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                loss = model(input_ids=x, labels=x).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                if device == "cuda":
                    torch.cuda.synchronize()
                if i >= args.warmup:
                    times.append(time.perf_counter() - t0)
        step = statistics.median(times)
        row = {"name": name, "parameters": sum(p.numel() for p in model.parameters()), "device": device,
               "dtype": args.dtype, "batch": args.batch, "seq": args.seq, "step_s": round(step, 4),
               "steps_per_s": round(1 / step, 2), "tokens_per_s": round(args.batch * args.seq / step, 1),
               **mem.as_dict()}
        results.append(row)
        print(json.dumps(row), flush=True)
        del model, opt
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
