"""Which earlier predictions a prediction run may keep: example identity plus a run key.

A prediction file's records are reused (``predict(..., resume=True)``) only when both hold:

* the *run key* matches: a hash of the model's identity, the decoding settings and the prompt
  settings (``RunIdentity.key``), recorded in ``<out>.meta.json`` beside the predictions and in
  every JSONL record;
* the record's *example key* matches the example now at that index (``example_key``: id, db_id
  and a hash of the question, evidence and earlier questions), so an edited or reordered dataset
  is predicted again where it changed.

A run key that differs (another model, other weights in the same folder, another temperature,
another template, ...) means nothing is kept: the old JSONL is moved aside to
``<jsonl>.stale`` (nothing is lost), the run starts afresh, and the message says which settings
differ. Any backend uses the same rule: build a ``RunIdentity`` (``model_identity`` for a local
folder or hub id; an API backend passes its endpoint and model name as the model mapping) and
call ``resume_records``.

The API backend and the LLM judge resume by content instead, record by record: a record carries
``key = resume_key(example, settings)`` (``example_key`` plus ``settings_hash`` of the endpoint,
model, decoding and prompt settings) and is kept only when that is this run's key for some example,
whatever its position in the file (``api_backend.run_keyed``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sqlcoach.runtime.files import atomic_write

META_SUFFIX = ".meta.json"
#: weight and config files whose (name, size, mtime) identify a local model folder's contents
_MODEL_FILES = (".safetensors", ".bin", ".gguf", ".pt", ".json", ".model", ".txt")


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def model_identity(model: str | Path) -> dict[str, Any]:
    """What identifies a model: its path and, for a local file or folder, a fingerprint of its
    files (name, size, modification time of the weights, configs and tokenizer files, also one
    level down for adapters), so that retraining into the same folder changes the identity.
    A hub id (no such path here) is identified by its name."""
    p = Path(model)
    if not p.exists():
        return {"name": str(model)}
    files = [p] if p.is_file() else sorted(
        f for f in [*p.iterdir(), *(g for d in p.iterdir() if d.is_dir() for g in d.iterdir())]
        if f.is_file() and f.name.endswith(_MODEL_FILES)
    )
    stamp = [(str(f.relative_to(p)) if f != p else f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return {"name": str(p.resolve()), "files": _digest(stamp)[:16]}


@dataclass(frozen=True)
class RunIdentity:
    """The three things a prediction depends on; ``key`` is their hash."""

    model: Mapping[str, Any]
    decoding: Mapping[str, Any]
    prompt: Mapping[str, Any]

    @property
    def key(self) -> str:
        return _digest({"model": dict(self.model), "decoding": dict(self.decoding), "prompt": dict(self.prompt)})[:16]

    def as_dict(self) -> dict[str, Any]:
        return {"run_key": self.key, "model": dict(self.model), "decoding": dict(self.decoding), "prompt": dict(self.prompt)}

    def differences(self, recorded: Mapping[str, Any]) -> list[str]:
        """``section.setting: recorded -> now`` for every setting that differs from ``recorded``
        (a ``<out>.meta.json`` dict)."""
        out = []
        for section in ("model", "decoding", "prompt"):
            old, new = dict(recorded.get(section) or {}), dict(getattr(self, section))
            for k in sorted(set(old) | set(new)):
                if old.get(k) != new.get(k):
                    out.append(f"{section}.{k}: {old.get(k)!r} -> {new.get(k)!r}")
        return out


def example_key(ex: Any) -> str:
    """An example's identity: id, db_id and a hash of what the model is asked (question,
    evidence, earlier questions)."""
    asked = [ex.question, ex.evidence or "", *(t.question for t in getattr(ex, "turns", ()))]
    return f"{ex.id}|{ex.db_id}|{_digest(asked)[:12]}"


def meta_path(out_path: str | Path) -> Path:
    """``<out>.meta.json``: the run identity of a prediction file."""
    out = Path(out_path)
    return out.with_name(out.name + META_SUFFIX)


def read_meta(out_path: str | Path) -> dict[str, Any] | None:
    p = meta_path(out_path)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_meta(out_path: str | Path, identity: RunIdentity, **extra: Any) -> Path:
    """Write ``<out>.meta.json`` atomically (run key, its inputs, and ``extra`` such as the layout)."""
    return atomic_write(meta_path(out_path), json.dumps({**identity.as_dict(), **extra}, indent=2, ensure_ascii=False) + "\n")


@dataclass
class ResumeDecision:
    """What ``resume_records`` kept and why the rest was not kept."""

    kept: dict[int, dict[str, Any]] = field(default_factory=dict)
    fresh_reason: str | None = None  # set when nothing was kept because the run key differs
    dropped: int = 0  # records whose example no longer matches (predicted again)


def resume_records(
    done: dict[int, dict[str, Any]],
    examples: Sequence[Any],
    identity: RunIdentity,
    recorded: Mapping[str, Any] | None,
) -> ResumeDecision:
    """The records of ``done`` (index -> JSONL record) that this run may keep (module docstring).

    ``recorded`` is the earlier run's ``<out>.meta.json`` (``None`` when absent). With records
    but no matching run key, nothing is kept and ``fresh_reason`` says why."""
    decision = ResumeDecision()
    if not done:
        return decision
    if recorded is None or recorded.get("run_key") is None:
        decision.fresh_reason = "its predictions carry no run key (written by an older sqlcoach, or the meta file is missing)"
        return decision
    if recorded.get("run_key") != identity.key:
        diffs = identity.differences(recorded)
        decision.fresh_reason = "it was written by another run: " + ("; ".join(diffs) or "the run key differs")
        return decision
    for i, rec in done.items():
        if not 0 <= i < len(examples):
            continue
        if rec.get("run_key") == identity.key and rec.get("example") == example_key(examples[i]):
            decision.kept[i] = rec
        else:
            decision.dropped += 1
    return decision


def set_aside(jsonl: Path, log: Callable[[str], None]) -> Path | None:
    """Move a stale JSONL to ``<jsonl>.stale`` (replacing an older one) so that nothing is lost."""
    if not jsonl.exists():
        return None
    stale = jsonl.with_name(jsonl.name + ".stale")
    os.replace(jsonl, stale)
    log(f"kept the old predictions as {stale}")
    return stale


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A stable hash of the settings that decide an output (key order does not matter)."""
    return _digest(dict(settings))[:16]


def resume_key(ex: Any, settings: Mapping[str, Any] | str) -> str:
    """``<example_key>:<settings hash>``; pass a precomputed ``settings_hash`` string to save work."""
    h = settings if isinstance(settings, str) else settings_hash(settings)
    return f"{example_key(ex)}:{h}"
