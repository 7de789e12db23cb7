"""``format``: does the completion have the shape the prompt template asked for?

A completion earns ``weight`` (default 1.0) when the whole text (leading/trailing whitespace
ignored) matches the template's pattern AND every captured part is non-empty after stripping;
otherwise 0. Binary on purpose: partial credit for half a tag invites tag spam.

Templates (``FORMAT_TEMPLATES``; choose one with ``template=`` or, per example, with a dataset
column named by ``template_column``, default ``format_template``; or give your own ``pattern=``):

* ``reasoning``: ``<reasoning>...</reasoning>`` then ``<sql>...</sql>`` (SQL-R1 / seed style)
* ``think``: ``<think>...</think>`` then ``<answer>...</answer>`` (DeepSeek-R1 / Arctic style)
* ``markdown``: free reasoning, then one final fenced ```` ```sql ... ``` ```` block (OmniSQL style)
* ``sql``: SQL alone, starting with SELECT or WITH, no markup (completion-only prompts)
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from sqlcoach.errors import ConfigError
from sqlcoach.rewards.common import column, completion_text

FORMAT_TEMPLATES: dict[str, str] = {
    "reasoning": r"<reasoning>(.*?)</reasoning>\s*<sql>(.*?)</sql>",
    "think": r"<think>(.*?)</think>\s*<answer>(.*?)</answer>",
    "markdown": r"(?:(?!```).)*?```sql[ \t]*\n?((?:(?!```).)*?)```",
    "sql": r"((?:select|with)\b(?:(?!```|</?\w+>).)*)",
}


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(r"\s*" + pattern + r"\s*", re.DOTALL | re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"format reward: pattern {pattern!r} is not a valid regular expression: {exc}") from exc


_COMPILED = {name: _compile(p) for name, p in FORMAT_TEMPLATES.items()}


def format_ok(text: str, pattern: re.Pattern[str]) -> bool:
    """True when ``pattern`` matches the whole ``text`` and every group it captures is non-blank."""
    match = pattern.fullmatch(text)
    if match is None:
        return False
    return all(g is not None and g.strip() for g in match.groups())


class FormatReward:
    """``format`` reward: ``weight`` when the completion has the template's shape, else 0."""

    def __init__(
        self,
        weight: float = 1.0,
        *,
        template: str = "reasoning",
        pattern: str | None = None,
        template_column: str = "format_template",
        name: str = "format",
    ):
        if weight < 0:
            raise ConfigError(f"reward weight must be >= 0, got {weight}")
        if pattern is None and template not in FORMAT_TEMPLATES:
            raise ConfigError(f"format reward: unknown template {template!r}; known: {sorted(FORMAT_TEMPLATES)}")
        self.weight = float(weight)
        self.template = template
        self.pattern = _compile(pattern) if pattern is not None else _COMPILED[template]
        self.template_column = template_column
        self.__name__ = name

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        """``weight`` or 0.0 per completion; a per-example template column overrides the default."""
        n = len(completions)
        templates = column(columns, self.template_column, n, reward=self.__name__, required=False)
        out: list[float | None] = []
        for completion, tmpl in zip(completions, templates):
            pattern = self.pattern
            if tmpl:
                if tmpl not in _COMPILED:
                    raise ConfigError(
                        f"format reward: column {self.template_column!r} names unknown template {tmpl!r}; "
                        f"known: {sorted(FORMAT_TEMPLATES)}"
                    )
                pattern = _COMPILED[tmpl]
            out.append(self.weight if format_ok(completion_text(completion), pattern) else 0.0)
        return out
