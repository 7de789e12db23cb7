"""A model remembers how to prompt it: ``sqlcoach_recipe.json`` in every model folder sqlcoach writes.

The recipe records what the prompt builder needs to show this model what it was trained on:
template, schema style, sample values per column, and, for people and other tools, the system
prompt the template sends, whether names are anonymized, and the lengths the model was trained
with. SFT, DPO, RM, GRPO, PPO, ``model init`` and ``model import`` write it; prediction, pair
mining, the RL recipes and the comparison read it (``resolve_prompt``).

Rules (``resolve_prompt``):

* a setting the caller leaves unset (``None``) takes the recorded value;
* an explicit setting that contradicts the recorded one is used, and a line says so;
* a folder without the file uses sqlcoach's defaults (``DEFAULTS``) with a one-line notice.

Settings (``PROMPT_KEYS``): ``template``, ``schema_style``, ``schema_sample_values``,
``value_retrieval`` (how many database values the question mentions are shown under the schema,
``sqlcoach.schema.values``; 0 = none), ``token_budget`` (the schema text is shrunk to this many
approximate tokens, ``sqlcoach.schema.serialize``; 0 = no budget) and ``turn_history`` (multi-turn
data: ``questions`` shows the earlier questions only, ``predicted`` the model's own earlier SQL
too, ``gold`` the earlier turns' gold SQL: an oracle setting, labelled wherever it is used).

Old folders keep their old prompt: a recipe written before value retrieval entered the prompt
builder records ``value_retrieval: null`` (or no key); ``LEGACY`` reads such a missing/null key as
what those prompts were (no values, no budget). ``turn_history`` is the exception: the old prompts
showed the earlier turns' *gold* SQL at prediction time, an oracle no score should rest on, so an
old recipe reads as ``questions`` (pass ``turn_history=gold`` explicitly to reproduce it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from sqlcoach.errors import DataError
from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.prompts.settings import DEFAULTS, PROMPT_KEYS, TURN_HISTORIES, PromptSettings

__all__ = ["DEFAULTS", "LEGACY", "PROMPT_KEYS", "RECIPE_FILE", "TURN_HISTORIES", "PromptRecipe", "PromptSettings",
           "prompt_settings", "read_recipe", "recipe_of", "resolve_prompt"]

RECIPE_FILE = "sqlcoach_recipe.json"
RECIPE_VERSION = 2  # 2: value_retrieval, token_budget, turn_history applied (1: recorded as null)
#: what a recipe file that lacks a key (or records ``null``) meant when it was written
LEGACY: dict[str, Any] = {"value_retrieval": 0, "token_budget": 0, "turn_history": "questions"}


def prompt_settings(source: Any = None, **given: Any) -> dict[str, Any]:
    """Every ``PROMPT_KEYS`` setting as a mapping: ``given`` first, then ``source``'s attribute of
    that name (a config or a recipe), ``None`` replaced by ``DEFAULTS`` (``PromptSettings.of``)."""
    return PromptSettings.of(source, **given).as_dict()


@dataclass(frozen=True)
class PromptRecipe:
    """How to prompt one model. ``source`` says which sqlcoach step wrote it."""

    template: str = DEFAULTS["template"]
    schema_style: str = DEFAULTS["schema_style"]
    schema_sample_values: int = DEFAULTS["schema_sample_values"]
    max_length: int | None = None  # tokens per training row (prompt + answer), when trained by sqlcoach
    max_new_tokens: int | None = None  # completion length used in RL rollouts, when RL-trained
    value_retrieval: int = DEFAULTS["value_retrieval"]  # values shown per prompt (0: none)
    token_budget: int = DEFAULTS["token_budget"]  # approximate tokens of schema text (0: no budget)
    turn_history: str = DEFAULTS["turn_history"]  # multi-turn history shown (questions, predicted, gold)
    source: str = ""
    history: list[str] = field(default_factory=list)  # the sqlcoach steps that produced this folder, oldest first
    adapted: dict[str, Any] | None = None  # `sqlcoach adapt`: databases, questions sha256, rewards, rounds
    #: multi-turn GRPO's ``agent:`` block (``config.agent.AgentTraining.as_recipe``): ``predict`` on
    #: this model then runs as an agent by default (``--single-pass`` to answer in one pass)
    agent: dict[str, Any] | None = None

    @property
    def system_prompt(self) -> str | None:
        from sqlcoach.prompts.templates import get_template

        return get_template(self.template).system

    @property
    def anonymize(self) -> bool:
        from sqlcoach.prompts.templates import get_template

        return get_template(self.template).anonymize

    @property
    def prompt(self) -> PromptSettings:
        """This recipe's prompt settings, checked (what every consumer is given)."""
        return PromptSettings(**self.settings())

    def builder(self) -> PromptBuilder:
        """The ``PromptBuilder`` for this recipe."""
        return PromptBuilder.from_settings(self.prompt)

    def settings(self) -> dict[str, Any]:
        """The ``PROMPT_KEYS`` settings of this recipe."""
        return {k: getattr(self, k) for k in PROMPT_KEYS}

    def as_dict(self) -> dict[str, Any]:
        return {"version": RECIPE_VERSION, **asdict(self), "system_prompt": self.system_prompt, "anonymize": self.anonymize}

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/sqlcoach_recipe.json`` (the folder must exist)."""
        path = Path(folder) / RECIPE_FILE
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        return path

    def then(self, source: str, **changes: Any) -> PromptRecipe:
        """This recipe as a later step records it: ``source`` appended to the history, ``changes`` applied."""
        hist = [*self.history, self.source] if self.source else list(self.history)
        return replace(self, source=source, history=hist, **changes)


def read_recipe(folder: str | Path) -> PromptRecipe | None:
    """The recipe in ``folder`` (a model folder, or an adapter folder), ``None`` when there is none.
    A file that cannot be read is a ``DataError`` naming it."""
    path = Path(folder) / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"not a readable recipe: {exc}", path=str(path)) from None
    if not isinstance(data, dict):
        raise DataError("a recipe must be a JSON object", path=str(path))
    known = {f.name for f in fields(PromptRecipe)}
    values = {k: v for k, v in data.items() if k in known}
    for k, legacy in LEGACY.items():  # a recipe from before the key existed keeps its old prompt
        if values.get(k) is None:
            values[k] = legacy
    return PromptRecipe(**values)


def recipe_of(model: str | Path) -> PromptRecipe | None:
    """The recipe of a model path: the folder's own, else (for a LoRA adapter) its base's."""
    rec = read_recipe(model) if Path(model).is_dir() else None
    if rec is None and (Path(model) / "adapter_config.json").is_file():
        base = json.loads((Path(model) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if base and Path(base).is_dir():
            rec = read_recipe(base)
    return rec


def resolve_prompt(
    model: str | Path,
    *,
    template: str | None = None,
    schema_style: str | None = None,
    schema_sample_values: int | None = None,
    value_retrieval: int | None = None,
    token_budget: int | None = None,
    turn_history: str | None = None,
    log: Callable[[str], None] | None = print,
) -> PromptRecipe:
    """The recipe to prompt ``model`` with: its recorded recipe with the explicit settings on top
    (each contradiction printed), or ``DEFAULTS`` with a one-line notice when it has none."""
    recorded = recipe_of(model)
    asked = {"template": template, "schema_style": schema_style, "schema_sample_values": schema_sample_values,
             "value_retrieval": value_retrieval, "token_budget": token_budget, "turn_history": turn_history}
    say = log or (lambda _m: None)
    if recorded is None:
        say(f"note: {model} has no {RECIPE_FILE}; prompting with "
            + ", ".join(f"{k}={asked[k] if asked[k] is not None else DEFAULTS[k]}" for k in PROMPT_KEYS))
        return PromptRecipe(**{k: asked[k] if asked[k] is not None else DEFAULTS[k] for k in PROMPT_KEYS})
    changes = {k: v for k, v in asked.items() if v is not None and v != getattr(recorded, k)}
    for k, v in changes.items():
        say(f"note: {model} was trained with {k}={getattr(recorded, k)!r}; this run uses {k}={v!r} as asked")
    return replace(recorded, **changes)
