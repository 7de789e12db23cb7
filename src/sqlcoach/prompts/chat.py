"""Chat messages -> one prompt string.

With a tokenizer that has a chat template, :func:`to_text` is exactly
``tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)``.

Plain fallback (no tokenizer, or one without a chat template, e.g. a base model): the messages'
contents joined by one blank line, in order, with no role markers, since sqlcoach's templates
already say what they want and end with their own cue (``###Response:`` for ``sql_terminal``).
``add_generation_prompt`` then appends a newline after a final non-assistant message so that
generation starts on a fresh line; it adds nothing else.
"""

from __future__ import annotations

from typing import Any


def has_chat_template(tokenizer: Any) -> bool:
    """True when ``tokenizer`` can format chat messages itself."""
    return bool(tokenizer is not None and getattr(tokenizer, "chat_template", None))


def to_text(messages: list[dict], tokenizer: Any = None, add_generation_prompt: bool = True) -> str:
    """The prompt string for ``messages`` (see module docstring for the two behaviours)."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    text = "\n\n".join(str(m.get("content", "")) for m in messages)
    if add_generation_prompt and messages and messages[-1].get("role") != "assistant":
        text += "\n"
    return text
