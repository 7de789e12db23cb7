"""``agent_format``: the format term of multi-turn GRPO (``train.grpo_agent``).

A trajectory earns ``weight`` (default 0.1) when it ended with a ``<solution>`` (not at the turn
limit, the observation budget or the token limit) and none of its turns was malformed (no tag, an
unclosed tag, an empty query); otherwise 0. It reads the columns the agent rollout adds
(``agent_finish``, ``agent_malformed``), never the text: the tags are the environment's to parse.
A run without an ``agent:`` block has no such columns, and the reward says so (``ConfigError``).
"""

from __future__ import annotations

from typing import Any

from sqlcoach.rewards.base import Reward


class AgentFormatReward(Reward):
    """``agent_format`` reward: ``weight`` for a trajectory that answered with ``<solution>`` and
    wrote no malformed turn, else 0."""

    default_name = "agent_format"
    needs_gold = False

    def __init__(self, weight: float = 0.1, *, name: str | None = None):
        super().__init__(weight, name=name)

    def score(self, completions: list[Any], columns: dict[str, Any]) -> list[float | None]:
        n = len(completions)
        if not n:
            return []
        finish = self.column(columns, "agent_finish", n)
        malformed = self.column(columns, "agent_malformed", n)
        return [self.weight if f == "solution" and not m else 0.0 for f, m in zip(finish, malformed)]
