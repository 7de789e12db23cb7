"""Warm-start rows for the agent: multi-turn SFT rows synthesized from what sqlcoach has.

Small policies asked to run queries without ever having seen a trajectory dump tables or never
answer (SQL-Trail, TRUST-SQL). ``warm_start_rows`` writes trajectories in the agent protocol
(``sqlcoach.prompts.agent``) for training questions, from the policy's own greedy attempt:

* the attempt **fails** (an execution error, or a result other than the gold's, under the EX that
  ``evaluate`` reports): ``<sql>ATTEMPT</sql>`` + the real observation of ATTEMPT (rendered by
  ``SqlAgentEnv``, exactly what inference would append) + ``<solution>GOLD</solution>``: a revision;
* the attempt is **right**: ``<solution>GOLD</solution>`` answered directly;
* ``verify_fraction`` of the right ones instead: ``<sql>ATTEMPT</sql>`` + its observation +
  ``<solution>ATTEMPT</solution>`` (run, read, keep; with ``config.keep`` the keep action
  ``<solution></solution>`` instead, so the policy is never taught to copy a query it ran), so that a query turn is not a sign of failure
  and a result that looks right is kept (a policy trained on revisions alone learns to change
  every answer: docs/agent.md).

Rows are TRL conversational prompt/completion rows in the ``chat`` export format
(``sqlcoach.data.export``) with ``prompt_settings``, so ``sqlcoach train sft data_kind=export
data_path=ROWS.jsonl`` trains on them and the model's recipe records the prompt. The prompt is the
agent prompt (``agent_predict.agent_prompts``' messages). SQL in completions is in the template's
own form (placeholders for an anonymizing template).

Each row also carries ``observation_spans`` (``data.export.OBSERVATION_SPANS``): the character
offsets of the observation inside the completion. ``train sft`` gives those tokens label -100 (the
environment writes them at inference; training on them would teach the model to invent results)
and tokenizes each span on its own, exactly as ``run_agent`` appends an observation's tokens, so
the loss is on the model's own turns (and the end of its message) only. ``attempt_loss`` says
which attempts are trained: ``"all"`` (default), ``"right"`` (a wrong attempt's turn gets a span of
its own before its observation's, so the row trains the revision and not the mistake), or
``"none"`` (the loss is on the decision alone; on the demo this made the first turn collapse to the
keep: docs/agent.md). ``attempt_temperature`` > 0 samples the attempts (seeded) instead of taking
the greedy one, so that a policy right on most training questions still yields revision rows.

``config.protocol`` picks the protocol the rows are written in: ``tags`` (above), or ``tools``
(the tokenizer's chat template must render tool calls: ``ToolProtocol.for_tokenizer``): the query
turn is a ``run_sql`` tool call, the observation is the template's tool-result text, the answer is
the bare SQL, and the row carries ``tools`` (``[RUN_SQL_TOOL]``) so that its prompt is rendered
with the tool, as at inference.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlcoach.generate.agent import AgentConfig
from sqlcoach.types import Example


@dataclass
class RowsSummary:
    examples: int
    revisions: int
    direct: int
    verified: int
    skipped: list[str]
    path: str

    def line(self) -> str:
        return (f"wrote {self.revisions + self.direct + self.verified} agent rows to {self.path}: {self.revisions} revisions "
                f"(the policy's failed attempt, its observation, the gold), {self.direct} gold answered directly, "
                f"{self.verified} right attempts run then kept; {len(self.skipped)} examples skipped")


def warm_start_rows(model: Any, tokenizer: Any, examples: Sequence[Example], out_path: str | Path, *,
                    builder: Any, config: AgentConfig = AgentConfig(), instruction: bool = True,
                    verify_fraction: float = 0.2, batch_size: int = 16, max_new_tokens: int = 256,
                    workers: int | None = 1, seed: int = 0, attempt_loss: str = "all",
                    attempt_temperature: float = 0.0) -> RowsSummary:
    """Write the rows (module docstring) for ``examples`` with gold SQL and a database."""
    from sqlcoach.data.export import OBSERVATION_SPANS
    from sqlcoach.errors import ConfigError, DataError
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.render import token_length
    from sqlcoach.generate.agent import make_protocol
    from sqlcoach.generate.agent_predict import env_for
    from sqlcoach.generate.hf import generate_texts
    from sqlcoach.metrics.ex import ExItem, score_execution
    from sqlcoach.prompts.agent import KEEP_TURN, RUN_SQL_TOOL, solution_turn, with_agent_instruction
    from sqlcoach.prompts.templates import placeholder_sql, restore_sql
    from sqlcoach.sql.extract import extract_sql

    if attempt_loss not in ("all", "right", "none"):
        raise ConfigError(f"attempt_loss must be all, right or none, got {attempt_loss!r}")
    if not attempt_temperature >= 0.0:
        raise ConfigError(f"attempt_temperature must be >= 0, got {attempt_temperature}")
    if not 0.0 <= verify_fraction <= 1.0:
        raise ConfigError(f"verify_fraction must be in [0, 1], got {verify_fraction}")
    protocol = make_protocol(config, tokenizer)  # tools: refuses a template that cannot render the calls
    tools = protocol.name == "tools"
    skipped = [f"{ex.id}: no gold SQL or database" for ex in examples if not (ex.gold_sql and ex.db_path)]
    usable = [ex for ex in examples if ex.gold_sql and ex.db_path]
    gen = generate_texts(model, tokenizer, builder.prediction_texts(usable, tokenizer), max_new_tokens=max_new_tokens,
                         batch_size=batch_size, seed=seed, temperature=attempt_temperature)
    written = [(extract_sql(t[0]) or "").strip() for t in gen.texts]  # as the model writes it
    rng = random.Random(seed)
    length = token_length(tokenizer)
    counts = {"revision": 0, "direct": 0, "verified": 0}
    rows: list[dict[str, Any]] = []
    with ExecutorPool(workers, config.limits()) as pool:
        runs = [restore_sql(w, ex, builder.template) for w, ex in zip(written, usable)]
        outcomes = score_execution([ExItem(r, str(ex.gold_sql), (str(ex.db_path),)) for r, ex in zip(runs, usable)],
                                   pool=pool)
        for ex, w, o in zip(usable, written, outcomes):
            if o.error == "gold_error":
                skipped.append(f"{ex.id}: the gold SQL does not run ({o.message})")
                continue
            try:
                gold = placeholder_sql(str(ex.gold_sql), ex, builder.template)
                messages = builder.prediction_messages(ex)
            except DataError as exc:
                skipped.append(f"{ex.id}: {exc}")
                continue
            answer = gold
            if o.ex:
                kind = "verified" if w and rng.random() < verify_fraction else "direct"
                first = w if kind == "verified" else None
                answer = w if kind == "verified" else gold
            elif w:
                kind, first = "revision", w
            else:  # no SQL came out: nothing to observe
                kind, first = "direct", None
            text, spans = "", []
            if first is not None:
                env = env_for(ex, config, builder.template, pool, length, protocol=protocol)
                turn = protocol.call_text(first)
                sql = env.act(turn)
                obs = env.observe(pool.run([(str(ex.db_path), sql)])[0] if sql else None)
                text = turn + obs
                if attempt_loss == "none" or (attempt_loss == "right" and kind == "revision"):  # read, not trained
                    spans.append([0, len(turn)])
                if obs:  # the environment's text: no loss on it in `train sft`
                    spans.append([len(turn), len(text)])
            if kind == "verified" and config.keep:
                text += KEEP_TURN
            else:
                text += answer if tools else solution_turn(answer)
            prompt = with_agent_instruction(messages, config.max_turns, protocol.name, config.keep) if instruction else messages
            row = {"prompt": prompt, "completion": [{"role": "assistant", "content": text}], OBSERVATION_SPANS: spans,
                   "id": ex.id, "db_id": ex.db_id, "db_path": str(ex.db_path), "gold_sql": ex.gold_sql,
                   "agent_row": kind, "prompt_settings": builder.settings()}
            if tools:
                row["tools"] = [RUN_SQL_TOOL]
            rows.append(row)
            counts[kind] += 1
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    from sqlcoach.data.export import atomic_write

    atomic_write(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return RowsSummary(len(examples), counts["revision"], counts["direct"], counts["verified"], skipped, str(out))
