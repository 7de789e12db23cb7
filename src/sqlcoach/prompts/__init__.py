"""Prompt templates and chat formatting."""

from sqlcoach.prompts.chat import to_text
from sqlcoach.prompts.templates import TEMPLATES, expected_format, render_completion, render_prompt

__all__ = ["TEMPLATES", "expected_format", "render_completion", "render_prompt", "to_text"]
