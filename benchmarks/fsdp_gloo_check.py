"""Does FSDP run on CPU gloo ranks for the tiny model? Two answers, printed:

    torchrun --standalone --nproc_per_node 2 benchmarks/fsdp_gloo_check.py [MODEL_DIR]

1. torch's own FSDP2 (``torch.distributed.fsdp.fully_shard`` on every decoder layer, then the model)
   on the ``gloo`` backend: two AdamW steps, the loss of each and the parameter type (DTensor: sharded).
2. Whether accelerate would turn FSDP on for these ranks: ``accelerate.PartialState`` with
   ``ACCELERATE_USE_FSDP=true`` on CPU reports its distributed type (accelerate 1.15 enables FSDP
   only for GPU-family devices, so the HF Trainer / TRL recipes run plain DDP on CPU ranks).

MODEL_DIR defaults to a tiny from-scratch Qwen2 built here (``sqlcoach.models.tiny``).
"""

from __future__ import annotations

import os
import sys
import tempfile

import torch
import torch.distributed as dist


def main() -> int:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model_dir = sys.argv[1] if len(sys.argv) > 1 else None
    if model_dir is None:
        model_dir = os.path.join(tempfile.gettempdir(), "fsdp_gloo_check_model")
        if rank == 0 and not os.path.isfile(os.path.join(model_dir, "config.json")):
            from sqlcoach.models.tiny import TinySize, init_tiny_model

            init_tiny_model(model_dir, TinySize(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256),
                            ["SELECT name FROM item WHERE price > 3"] * 50, seed=0)
        dist.barrier()
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    for layer in m.model.layers:
        fully_shard(layer)
    fully_shard(m)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    ids = torch.randint(0, m.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    for step in range(2):
        loss = m(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if rank == 0:
            print(f"torch fully_shard on gloo: step {step} loss {loss.item():.4f} params {type(next(m.parameters())).__name__}")
    os.environ["ACCELERATE_USE_FSDP"] = "true"
    from accelerate import PartialState

    state = PartialState(cpu=True)
    if rank == 0:
        print(f"accelerate with ACCELERATE_USE_FSDP=true on CPU: distributed_type {state.distributed_type}")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
