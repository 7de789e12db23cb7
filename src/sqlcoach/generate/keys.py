"""Content keys for resuming: an example's identity and a hash of the settings that decide its output.

A record written by a prediction or judging run carries ``key = resume_key(example, settings)``.
A resumed run keeps a record only when its key is the key the current run computes for some
example, so a record made by another model, another endpoint, other decoding or prompt settings,
or for another question is never taken for this run's answer, whatever its position in the file.

``example_identity`` covers what makes a question the same question (id, database, question text,
evidence); ``settings_hash`` is a stable hash of a JSON-able mapping (key order does not matter).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def _digest(obj: Any, n: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:n]


def example_identity(ex: Any) -> str:
    """Stable identity of one example: id, db_id, question and evidence (hashed)."""
    return _digest([str(getattr(ex, "id", "")), str(getattr(ex, "db_id", "")), str(getattr(ex, "question", "")),
                    getattr(ex, "evidence", None)])


def settings_hash(settings: Mapping[str, Any]) -> str:
    """Hash of the settings that decide an output (endpoint, model, decoding, prompt)."""
    return _digest(dict(settings))


def resume_key(ex: Any, settings: Mapping[str, Any] | str) -> str:
    """``<example identity>:<settings hash>``; pass a precomputed ``settings_hash`` string to save work."""
    h = settings if isinstance(settings, str) else settings_hash(settings)
    return f"{example_identity(ex)}:{h}"
