"""A tokenizer whose chat template renders tool calls, for the agent's tool protocol tests: the
tiny model's byte-level BPE (offline, trained on a few lines) with a minimal Qwen2.5-style template
(``tests/fixtures/chat/qwen25_tools.jinja``). No download."""

from __future__ import annotations

from pathlib import Path

TEMPLATE = Path(__file__).parent / "fixtures" / "chat" / "qwen25_tools.jinja"


def tool_template() -> str:
    return TEMPLATE.read_text()


def with_tool_template(tokenizer):
    """``tokenizer`` with the Qwen2.5-style tool template (changed in place and returned)."""
    tokenizer.chat_template = tool_template()
    return tokenizer


def tool_tokenizer(corpus=("SELECT name FROM singer WHERE age > 30", "<tool_call> run_sql query")):
    from sqlcoach.models.tiny import train_tokenizer

    return with_tool_template(train_tokenizer(list(corpus) * 5, 300))
