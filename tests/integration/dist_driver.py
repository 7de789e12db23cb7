"""Run recipes one after another in this process, as ``sqlcoach train`` does, for the
multi-process test: ``torchrun --nproc_per_node 2 tests/integration/dist_driver.py ROOT NPROC
sft dpo grpo ppo`` (or plain ``python`` with NPROC 1); ``--resume`` before the recipes continues
each from its last checkpoint for one more step than its YAML says.

Each recipe loads ``ROOT/<recipe>.yaml`` (``dist_assets.build``) with the batch overrides that give
it the same global batch on NPROC processes, and writes to ``ROOT/<recipe>-<NPROC>``. One
difference from the CLI, for a reason: GRPO and PPO get ``gold_overlap`` as their reward, since a
tiny random model writes no SQL that runs (every execution reward is 0: no advantage, no gradient),
and the comparison needs a reward with variance that does not depend on which process computes it.
Launching all recipes in one process per rank pays torch's import and the process-group start once.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dist_assets import batch_overrides  # noqa: E402


def gold_overlap(prompts=None, completions=(), completion_ids=None, gold_sql=None, **_columns):  # noqa: ANN001 - TRL's contract
    """Share of a completion's characters that occur in its gold SQL, plus 1/100 of the gold's
    length (so that prompts differ even when the completions are all alike); deterministic."""
    from sqlcoach.rewards.common import completion_text

    out = []
    for c, gold in zip(completions, gold_sql or [""] * len(completions)):
        text, chars = completion_text(c), set(gold or "")
        out.append((sum(ch in chars for ch in text) / len(text) if text else 0.0) + len(gold or "") / 100)
    return out


def main(argv: list[str]) -> int:
    from sqlcoach.config import CONFIGS, load_config, parse_overrides
    from sqlcoach.train.recipes import RECIPES

    root, nproc, recipes = Path(argv[0]), int(argv[1]), argv[2:]
    resume = recipes[:1] == ["--resume"]
    for name in recipes[1:] if resume else recipes:
        overrides = [f"output_dir={root / f'{name}-{nproc}'}", *batch_overrides(name, nproc)]
        cfg = load_config(CONFIGS[name], str(root / f"{name}.yaml"), parse_overrides(overrides))
        if resume:
            cfg = load_config(CONFIGS[name], str(root / f"{name}.yaml"),
                              parse_overrides([*overrides, f"max_steps={cfg.max_steps + 1}"]))
        print(f"=== {name} on {nproc} process(es)", flush=True)
        if name == "grpo":
            from sqlcoach.train.grpo import run_grpo

            run_grpo(cfg, resume=resume, extra_rewards=[gold_overlap])
        elif name == "ppo":
            from sqlcoach.train.ppo import run_ppo

            run_ppo(cfg, resume=resume, reward_fns=[gold_overlap])
        else:
            RECIPES[name].run(cfg, resume=resume)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
