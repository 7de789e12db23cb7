"""Which process of a multi-process launch this is, and the few collective calls recipes need.

A recipe runs unchanged under ``torchrun --nproc_per_node N`` or ``accelerate launch``: both set
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in every process's environment, and the HF Trainer
(SFT, DPO, RM, GRPO) and PPO's ``Accelerator`` read the same variables to join one process group.
This module reads them too, so that the recipe's own bookkeeping (the lines it prints, the gold
curation report, the summary, plots, sample logs and the model recipe file) happens once, on
rank 0, while every rank trains.

Guarantees: with none of the variables set (a plain ``sqlcoach train ...``) every function here
is a no-op answering "one process, rank 0"; nothing imports torch until a collective is needed.
``ensure_group`` joins the process group the Trainer/Accelerator would join (gloo on CPU, NCCL on
GPU) early, so that work before the trainer exists (the pass-rate filter, RM's merged start) can
be shared out and gathered; the Trainer then reuses that group.
"""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def world_size() -> int:
    """Processes in this launch (``WORLD_SIZE``; 1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's global rank (``RANK``; 0 when unset)."""
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; 0 when unset): its GPU index."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """True on the process that writes files and prints the recipe's bookkeeping (rank 0)."""
    return rank() == 0


def main_log(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` on rank 0, a function that drops the line on every other rank."""
    return log if is_main() else (lambda _line: None)


def ensure_group(cpu: bool) -> bool:
    """Join the launch's process group now (``accelerate.PartialState``, the state the Trainer
    and ``Accelerator`` build from the same variables); False in a single process."""
    if world_size() <= 1:
        return False
    import torch.distributed as tdist

    if not tdist.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=cpu)
    return tdist.is_initialized()


def barrier() -> None:
    """Wait for every rank (no-op in a single process or before a group exists)."""
    if world_size() <= 1:
        return
    import torch.distributed as tdist

    if tdist.is_initialized():
        tdist.barrier()


def gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in a single process)."""
    if world_size() <= 1:
        return [obj]
    import torch.distributed as tdist

    if not tdist.is_initialized():
        return [obj]
    out: list[Any] = [None] * tdist.get_world_size()
    tdist.all_gather_object(out, obj)
    return out


def shared_value(value: T) -> T:
    """Rank 0's ``value`` on every rank (``value`` itself in a single process or before a group exists)."""
    if world_size() <= 1:
        return value
    import torch.distributed as tdist

    if not tdist.is_initialized():
        return value
    box: list[Any] = [value]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def main_first(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 first, then on the other ranks once it has finished (e.g. a merge that
    writes a folder the others then read, or a cache the others reuse)."""
    if not is_main():
        barrier()
    out = fn()
    if is_main():
        barrier()
    return out


def describe() -> dict[str, int]:
    """``{"world_size", "rank", "local_rank"}`` as the launch set them."""
    return {"world_size": world_size(), "rank": rank(), "local_rank": local_rank()}
