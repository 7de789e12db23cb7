"""Prompt templates, chat formatting, and the one prompt builder (``PromptBuilder``)."""

from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.prompts.chat import to_text
from sqlcoach.prompts.templates import TEMPLATES, expected_format, render_completion, render_prompt

__all__ = ["TEMPLATES", "PromptBuilder", "expected_format", "render_completion", "render_prompt", "to_text"]
