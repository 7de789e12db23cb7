"""Show the samples (DESIGN.md, style 12): every few steps, print sampled (question, SQL, result,
gold, reward) rows and append them to ``output_dir/samples.jsonl``, so that reward hacking is seen
early. One writer for every RL recipe (GRPO through ``sample_log_callback``, PPO from its loop).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

SAMPLES_FILE = "samples.jsonl"


class SampleLog:
    """Rows to the log and to ``output_dir/samples.jsonl``.

    ``every``: write at step 1 and every ``every`` steps (0: never); ``n``: rows each time (0: none).
    ``fresh=True`` (a new run) removes an older file; ``--resume`` appends to it. Under several
    processes (``runtime.dist``) only rank 0 writes (its own rows): ``due`` is False elsewhere."""

    def __init__(self, output_dir: str | Path, *, every: int, n: int, log: Callable[[str], None], fresh: bool):
        from sqlcoach.runtime.dist import is_main

        self.path = Path(output_dir) / SAMPLES_FILE
        self.every, self.n, self.log = every, n, log
        self.enabled = is_main()
        if self.enabled and fresh and self.path.is_file():
            self.path.unlink()

    def due(self, step: int) -> bool:
        return self.enabled and self.n > 0 and self.every > 0 and (step == 1 or step % self.every == 0)

    def write(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Append ``rows`` (each with question, db_id, sql, result, reward; any other keys kept)."""
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({"step": step, **r}, ensure_ascii=False, default=str) + "\n")
        self.log(f"--- step {step}: {len(rows)} sampled completions")
        for r in rows:
            self.log(f"  Q [{r.get('db_id')}] {r.get('question')}")
            self.log(f"    SQL    {r.get('sql')!s:.200}")
            self.log(f"    gold   {r.get('gold_sql')!s:.200}")
            self.log(f"    result {r.get('result')}   reward {r.get('reward')}  {r.get('rewards', '')}")

    @property
    def written(self) -> str | None:
        return str(self.path) if self.path.is_file() else None


def sample_log_callback(samples: SampleLog, rows_of: Callable[[], list[dict[str, Any]]]) -> Any:
    """A ``TrainerCallback`` writing ``rows_of()`` to ``samples`` at the steps it is due."""
    from transformers import TrainerCallback

    class _Samples(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if samples.due(state.global_step):
                samples.write(state.global_step, rows_of())
            return control

    return _Samples()
