"""Reward functions computed by executing SQL, with TRL's reward contract.

Each reward is a callable ``f(prompts, completions, completion_ids=None, **dataset_columns) ->
list[float | None]`` with ``__name__`` set; ``None`` marks an example whose gold cannot be scored.
The execution rewards reuse the project's executor and comparer: the reward IS the EX metric.
See docs/rewards.md for every formula and table.
"""

from sqlcoach.rewards.registry import PRESETS, REWARDS, build_rewards, close_rewards

__all__ = ["PRESETS", "REWARDS", "build_rewards", "close_rewards"]
