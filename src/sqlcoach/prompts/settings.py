"""The prompt settings: one frozen object every consumer of a prompt is given.

A prompt is decided by six settings (``PROMPT_KEYS``): ``template``, ``schema_style``,
``schema_sample_values``, ``value_retrieval`` (database values the question mentions shown under
the schema, 0 = none), ``token_budget`` (approximate tokens of schema text, 0 = no budget) and
``turn_history`` (``questions``, ``predicted`` or ``gold``: what a multi-turn prompt shows of the
earlier turns). :class:`PromptSettings` holds them, checked once when it is made.

It is built once per run, from the model's recorded recipe plus the caller's explicit settings
(``prompts.recipe.resolve_prompt(model, ...).prompt``), or from a config with ``PromptSettings.of``,
and then passed whole to every consumer: ``generate.predict.predict``, ``generate.api_backend.
predict_api``, ``train.pairs.mine_pairs``, ``train.rl_data.build_rl_rows``,
``pipelines.evaluate.predict_and_score`` and the comparison's jobs. A consumer builds its
``PromptBuilder`` with ``PromptBuilder.from_settings(settings)``; nobody forwards the settings
one keyword at a time, so a new setting cannot be dropped on one path (as the API path once
dropped three of six).

This module sits below ``builder.py`` and ``recipe.py`` (both import it; it imports neither).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlcoach.errors import ConfigError

#: what a folder without a recipe is prompted with (sqlcoach's historical defaults)
DEFAULTS: dict[str, Any] = {
    "template": "sql_terminal", "schema_style": "compact", "schema_sample_values": 3,
    "value_retrieval": 5, "token_budget": 0, "turn_history": "questions",
}
#: the settings a caller may override, in the order they are reported
PROMPT_KEYS = tuple(DEFAULTS)
#: ``turn_history`` values; ``gold`` is the oracle setting
TURN_HISTORIES = ("questions", "predicted", "gold")


@dataclass(frozen=True)
class PromptSettings:
    """The six settings that decide a prompt (module docstring), validated on construction:
    ``ConfigError`` naming the valid choices for an unknown template, schema style or turn history,
    or a negative count."""

    template: str = DEFAULTS["template"]
    schema_style: str = DEFAULTS["schema_style"]
    schema_sample_values: int = DEFAULTS["schema_sample_values"]
    value_retrieval: int = DEFAULTS["value_retrieval"]
    token_budget: int = DEFAULTS["token_budget"]
    turn_history: str = DEFAULTS["turn_history"]

    def __post_init__(self) -> None:
        from sqlcoach.prompts.templates import TEMPLATES, get_template
        from sqlcoach.schema.serialize import STYLES

        # ints from YAML/JSON may arrive as bool/float/str-free numbers; keep the stored type an int
        object.__setattr__(self, "value_retrieval", int(self.value_retrieval))
        object.__setattr__(self, "token_budget", int(self.token_budget or 0))
        if self.value_retrieval < 0 or self.token_budget < 0:
            raise ConfigError("value_retrieval and token_budget must be >= 0 (0 turns them off)")
        if self.turn_history not in TURN_HISTORIES:
            raise ConfigError(f"unknown turn_history {self.turn_history!r} (known: {', '.join(TURN_HISTORIES)})")
        try:
            get_template(self.template)
        except ValueError:
            raise ConfigError(f"unknown template {self.template!r} (known: {', '.join(TEMPLATES)})") from None
        if self.schema_style not in STYLES:
            raise ConfigError(f"unknown schema style {self.schema_style!r} (known: {', '.join(STYLES)})")

    @classmethod
    def of(cls, source: Any = None, **given: Any) -> PromptSettings:
        """The settings of ``given`` (a ``None`` value counts as not given), else ``source``'s
        attribute or key of that name (a config, a recipe, a job mapping), else ``DEFAULTS``."""
        values: dict[str, Any] = {}
        for k in PROMPT_KEYS:
            v = given.get(k)
            if v is None and source is not None:
                v = source.get(k) if isinstance(source, dict) else getattr(source, k, None)
            values[k] = DEFAULTS[k] if v is None else v
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The settings under their ``PROMPT_KEYS`` names (what run keys hash and jobs carry)."""
        return asdict(self)


assert tuple(f.name for f in fields(PromptSettings)) == PROMPT_KEYS  # one list of names, in one order
