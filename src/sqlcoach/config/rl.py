"""``RLFields``: the fields every reinforcement-learning recipe (GRPO, PPO, and the next ones)
shares, with one name per idea: the rewards and their options, the SQL workers and their timeout,
the prompt curation, the sampling temperature and length, and the sample log.

A field that one recipe used to spell differently is renamed here once; the old key is refused
with a ``ConfigError`` that names the new one (``RENAMED``), so a stale YAML file fails loudly
instead of silently falling back to a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sqlcoach.config.base import opt
from sqlcoach.errors import ConfigError

#: old key -> the key that replaced it (GRPO and PPO had two names for these ideas)
RENAMED: dict[str, str] = {
    "max_new_tokens": "max_completion_length",  # PPO's old name
    "sample_log_every": "sample_every",  # GRPO's old name
    "num_examine": "num_samples",  # GRPO's old name
}


def yaml_value(value: Any, key: str, *, list_text: bool = False) -> Any:
    """A ``key=value`` override that holds YAML (a list or a mapping) parsed; other values as given.

    With ``list_text`` a bare comma-separated string (``execution,format``) is read as a list."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if list_text and not text.startswith("[") and "," in text:
        text = f"[{text}]"
    if not text.startswith(("[", "{")):
        return value
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: not valid YAML: {exc}") from exc


@dataclass
class RLFields:
    """Rewards, SQL execution, prompt curation, sampling and the sample log of an RL recipe."""

    renamed: ClassVar[dict[str, str]] = RENAMED

    max_examples: int | None = opt(None, "use N examples, drawn after shuffling them with seed (null: all)")
    task: str = opt("sql_exec", "what is trained and how a completion is judged: a key of sqlcoach.tasks.TASKS")
    # rewards (sqlcoach.rewards.build_rewards; summed per completion)
    rewards: Any = opt("execution", "a preset name (seed-multi, arctic), one reward name, or a list of names / {name, weight, ...} ([] with reward_model: that alone)")
    reward_options: Any = opt({}, "build_rewards(**reward_options); on the command line a YAML mapping")
    reward_model: str | None = opt(None, "a `sqlcoach train rm` folder whose score is added to the rewards")
    reward_model_weight: float = opt(1.0, "weight of the reward model's score")
    reward_workers: int = opt(1, "SQL executor processes shared by all reward calls (0: in this process)")
    reward_timeout: float = opt(5.0, "seconds per query in the executor's sandbox (rewards, curation, pass-rate filter)")
    # prompt curation (sqlcoach.train.rl_data)
    curate_gold: bool | None = opt(None, "drop prompts whose gold SQL fails or returns nothing (null: when a reward reads gold; true with gold-free rewards needs gold on every prompt)")
    pass_rate_k: int = opt(0, "> 0: sample k completions per prompt with the start policy first (scored against gold: every prompt needs it)")
    drop_always: bool = opt(True, "... and drop the prompts it solves k/k")
    drop_never: bool = opt(True, "... and those it solves 0/k")
    pass_rate_max_prompts: int | None = opt(None, "filter only the first N prompts (null: all)")
    # sampling
    temperature: float = opt(1.0, "sampling temperature of the rollouts")
    max_completion_length: int = opt(256, "tokens per completion")
    # the sample log (sqlcoach.train.samples)
    sample_every: int = opt(10, "every N steps (and at step 1): print and save sampled (question, SQL, result, reward) rows (0: never)")
    num_samples: int = opt(4, "rows shown each time (0: none)")

    def _check(self) -> None:
        from sqlcoach.tasks import TASKS

        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {sorted(TASKS)}, got {self.task!r}")
        self.rewards = yaml_value(self.rewards, "rewards", list_text=True)
        if isinstance(self.rewards, str) and not self.rewards.strip():
            self.rewards = []  # `rewards=` on the command line: none (a reward_model alone)
        if not isinstance(self.rewards, (str, list, tuple)):
            raise ConfigError(
                "rewards must be a preset name (seed-multi, arctic), a reward name, or a list of "
                f"names / {{name: ..., weight: ...}} entries; got {self.rewards!r}"
            )
        if not self.rewards and not self.reward_model:
            raise ConfigError("no reward: give rewards (e.g. [execution]) and/or reward_model (a `sqlcoach train rm` folder)")
        self.reward_options = yaml_value(self.reward_options, "reward_options")
        if isinstance(self.reward_options, str) and not self.reward_options.strip():
            self.reward_options = {}
        if not isinstance(self.reward_options, dict):
            raise ConfigError(f"reward_options must be a mapping of build_rewards options, got {self.reward_options!r}")
        if self.reward_workers < 0:
            raise ConfigError("reward_workers must be >= 0 (0 runs SQL in the training process, without a hard kill)")
        if self.reward_timeout <= 0:
            raise ConfigError("reward_timeout must be > 0 seconds: model-written SQL can run forever")
        if self.pass_rate_k < 0 or self.pass_rate_k == 1:
            raise ConfigError(
                f"pass_rate_k must be 0 (off) or >= 2, got {self.pass_rate_k}: with one sample every prompt is "
                "'always' or 'never' solved and the filter would drop them all"
            )
        if self.pass_rate_max_prompts is not None and self.pass_rate_max_prompts < 1:
            raise ConfigError("pass_rate_max_prompts must be >= 1 or null")
        if not self.temperature > 0:
            raise ConfigError(
                f"temperature must be > 0 (got {self.temperature}): RL samples several answers, and its log-probs "
                "divide the logits by it"
            )
        if self.max_completion_length < 1:
            raise ConfigError("max_completion_length must be >= 1 token")
        if self.sample_every < 0 or self.num_samples < 0:
            raise ConfigError("sample_every and num_samples must be >= 0 (0: no sample rows)")
