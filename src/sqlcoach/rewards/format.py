"""``format``: does the completion have the shape the prompt template asked for?

A completion earns ``weight`` (default 1.0) when the template's pattern matches the WHOLE text
(``fullmatch``) and every part the pattern captures, if any, is non-blank; otherwise 0. Binary
on purpose: partial credit for half a tag invites tag spam.

The shapes are the prompt templates' own (``sqlcoach.prompts.templates.expected_format``), so
the reward checks exactly what the prompt asked for; one extra shape is defined here:

* ``sql_terminal``: the bare SQL (SELECT/WITH ..., no fences) (DB-GPT-Hub)
* ``omnisql``: optional reasoning, then one final fenced ```` ```sql ``` ```` block (OmniSQL)
* ``reasoning``: ``<think>...</think>`` then ``<answer>```sql ...```</answer>`` (R1 style,
  SQL-R1 / Arctic-Text2SQL-R1)
* ``reasoning_tags``: ``<reasoning>...</reasoning>`` then ``<sql>...</sql>``
* ``think`` (here): ``<think>...</think>`` then ``<answer>...</answer>`` with anything non-blank
  inside the answer (no fence required)

Choose one with ``template=``, per example with a dataset column named by ``template_column``
(default ``format_template``), or give your own regular expression with ``pattern=`` (matched
against the whole text, DOTALL and case-insensitive).
"""

from __future__ import annotations

import re
from typing import Any

from sqlcoach.errors import ConfigError
from sqlcoach.prompts.templates import TEMPLATES as PROMPT_TEMPLATES
from sqlcoach.rewards.base import Reward
from sqlcoach.rewards.common import completion_text

_EXTRA: dict[str, re.Pattern[str]] = {
    "think": re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL | re.IGNORECASE),
}

#: Template name -> the pattern a well-formed completion fullmatches.
FORMAT_TEMPLATES: dict[str, re.Pattern[str]] = {
    **{name: t.pattern for name, t in PROMPT_TEMPLATES.items()},
    **_EXTRA,
}


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.DOTALL | re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"format reward: pattern {pattern!r} is not a valid regular expression: {exc}") from exc


def _template(name: str, where: str) -> re.Pattern[str]:
    try:
        return FORMAT_TEMPLATES[name]
    except KeyError:
        raise ConfigError(f"format reward: {where} names unknown template {name!r}; known: {sorted(FORMAT_TEMPLATES)}") from None


def format_ok(text: str, pattern: re.Pattern[str]) -> bool:
    """True when ``pattern`` matches the whole ``text`` and every group it captures is non-blank."""
    match = pattern.fullmatch(text)
    if match is None:
        return False
    return all(g is not None and g.strip() for g in match.groups())


class FormatReward(Reward):
    """``format`` reward: ``weight`` when the completion has the template's shape, else 0."""

    default_name = "format"
    needs_gold = False

    def __init__(
        self,
        weight: float = 1.0,
        *,
        template: str = "reasoning_tags",
        pattern: str | None = None,
        template_column: str = "format_template",
        name: str = "format",
    ):
        super().__init__(weight, name=name)
        self.template = template
        self.pattern = _compile(pattern) if pattern is not None else _template(template, "template=")
        self.template_column = template_column

    def score(self, completions: list[Any], columns: dict[str, Any]) -> list[float | None]:
        """``weight`` or 0.0 per completion; a per-example template column overrides the default."""
        n = len(completions)
        templates = self.column(columns, self.template_column, n, required=False)
        out: list[float | None] = []
        for completion, tmpl in zip(completions, templates):
            pattern = self.pattern
            if tmpl:
                pattern = _template(str(tmpl), f"column {self.template_column!r}")
            out.append(self.weight if format_ok(completion_text(completion), pattern) else 0.0)
        return out
