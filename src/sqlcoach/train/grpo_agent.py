"""Multi-turn GRPO: the rollout TRL's ``GRPOTrainer`` runs through ``rollout_func`` when a GRPO
config has an ``agent:`` block (``config.agent.AgentTraining``; docs/agent.md).

One trajectory per rollout, run by the agent's own environment and loop
(``sqlcoach.generate.agent``: ``SqlAgentEnv``, ``run_agent``; the same code as ``predict --agent``):
the model writes ``<sql>QUERY</sql>``, the query runs in the sandbox and its rendered result comes
back as an ``<observation>``, until ``<solution>QUERY</solution>``, the turn limit, the observation
budget or ``max_completion_length`` (which bounds the whole trajectory, observations included;
an observation that would overflow it is cut, never dropped). With ``protocol: tools`` the same
loop runs native tool calls instead (``generate.agent.ToolProtocol``: ``run_sql`` calls written in
the model's chat-template form, each result appended as the template's ``tool`` message, the final
answer a message without a call); the block is refused when the tokenizer's template cannot carry
them. The rollout is the same ``rollout_func`` either way (not TRL's ``environment_factory``,
which would be a second agent loop): one environment, two protocols.

What ``AgentRollout.__call__`` (TRL's ``RolloutFunc``: ``(prompts, trainer) -> dict``) returns,
one entry per prompt (TRL passes each rollout's prompt: a group's G copies are G prompts):

* ``prompt_ids``: the chat-formatted prompt (with the protocol instruction unless
  ``instruction: false``);
* ``completion_ids``: the model's tokens and the observations' tokens in order, then the end token
  unless the trajectory ran out of tokens (TRL reads a completion without one as truncated:
  ``mask_truncated_completions`` then drops it);
* ``env_mask``: 1 on the model's tokens, 0 on observation tokens and on the appended end token
  (TRL multiplies it into the loss mask: observation tokens carry no loss;
  ``tests/unit/train/test_grpo_agent.py`` shows it);
* ``logprobs``: ``None``. The rollout samples with the policy itself (Hugging Face generate in
  the training process), so there is no sampler mismatch to correct; TRL recomputes the old
  log-probs where its loss needs them;
* ``agent_answer`` (the final answer as the model wrote it, ``""`` for none), ``agent_finish``,
  ``agent_turns``, ``agent_queries``, ``agent_malformed``: TRL hands them to the reward functions
  as columns. ``final_answers`` makes every reward score the final answer (execution equality
  through the existing rewards), not the trajectory's text; ``agent_format`` is the optional
  format term.

The pass-rate filter samples trajectories too (``AgentRollout.generate``, a ``GenerateFn`` whose
texts are the final answers), so prompts are dropped by their trajectory outcome; DAPO's dynamic
sampling reads the execution reward's outcomes, which are the final answers' outcomes.

Departures from SkyRL-SQL (Liu et al. 2025): Hugging Face generate in the training process instead
of vLLM engines (``use_vllm`` is refused with an ``agent:`` block), observations budgeted in tokens
per trajectory (SkyRL cuts each observation), the answer at the turn limit is the last query run
(``on_limit: last_query``; SkyRL scores it as no answer, ``on_limit: none``).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable

from sqlcoach.config.agent import AgentTraining
from sqlcoach.errors import DataError

Row = dict[str, Any]

#: the columns a trajectory adds to the reward functions' inputs
AGENT_COLUMNS = ("agent_answer", "agent_finish", "agent_turns", "agent_queries", "agent_malformed")


def final_answers(completions: list[Any], columns: dict[str, Any]) -> list[Any]:
    """The completions a reward scores: each trajectory's final answer (column ``agent_answer``) in
    the completion's own shape (text, or one assistant message), so the execution rewards judge the
    answer and not the queries or observations before it; ``completions`` as given without that
    column (single-turn GRPO)."""
    answers = columns.get("agent_answer")
    if not isinstance(answers, list) or len(answers) != len(completions):
        return completions
    return [a if isinstance(c, str) else [{"role": "assistant", "content": a}] for c, a in zip(completions, answers)]


class AgentRollout:
    """The multi-turn rollout of one GRPO run (see the module docstring).

    ``register(rows)`` must see every prompt row first: TRL hands ``rollout_func`` the prompts
    alone, and a trajectory needs its row's database and name mapping. The environment's queries
    run in this object's own ``ExecutorPool`` (``workers`` processes, the block's ``timeout``);
    ``close()`` stops it."""

    def __init__(self, block: AgentTraining, tokenizer: Any, *, template: str, max_completion_length: int,
                 temperature: float, top_p: float = 1.0, workers: int = 1, seed: int = 0, batch_size: int = 64):
        from sqlcoach.execution.pool import ExecutorPool
        from sqlcoach.execution.render import token_length
        from sqlcoach.generate.agent import make_protocol

        self.block = block
        self.config = block.env()
        self.tokenizer = tokenizer
        self.template = template
        # the end token is appended after the trajectory: one token of max_completion_length is kept for it
        self.max_total_tokens = max_completion_length - 1
        self.turn_tokens = min(block.max_turn_tokens or self.max_total_tokens, self.max_total_tokens)
        self.temperature, self.top_p, self.seed, self.batch_size = temperature, top_p, seed, batch_size
        self.length = token_length(tokenizer)
        # tools: checked against the tokenizer's chat template here, before any rollout (ConfigError)
        self.protocol = make_protocol(self.config, tokenizer)
        self.pool = ExecutorPool(workers=workers, limits=self.config.limits())
        self.rows: dict[str, Row] = {}
        self.totals: Counter[str] = Counter()
        self.seconds = {"generation": 0.0, "execution": 0.0}

    # ------------------------------------------------------------------ prompts -> environments

    def key(self, messages: Any) -> str:
        """The lookup key of a prompt: its chat-formatted text (what the pass-rate filter passes)."""
        from sqlcoach.prompts.chat import to_text

        return messages if isinstance(messages, str) else to_text(messages, self.tokenizer)

    def register(self, rows: list[Row]) -> None:
        """Remember ``rows`` by prompt, so that a rollout of one of their prompts finds its database."""
        for r in rows:
            self.rows[self.key(r["prompt"])] = r

    def _row(self, prompt: Any) -> Row:
        row = self.rows.get(self.key(prompt))
        if row is None:
            raise DataError("the agent rollout was given a prompt whose row it was not registered with "
                            "(AgentRollout.register(rows) before training)")
        return row

    def _env(self, row: Row) -> Any:
        from sqlcoach.generate.agent_predict import env_for
        from sqlcoach.types import Example

        ex = Example(id=str(row.get("id") or ""), db_id=str(row.get("db_id") or ""), question=str(row.get("question") or ""),
                     db_path=row.get("db_path"))
        return env_for(ex, self.config, self.template, executor=self.pool, length=self.length, protocol=self.protocol)

    def _prompt_text(self, row: Row) -> str:
        """The row's prompt as the protocol formats it (the tool protocol hands the template ``run_sql``)."""
        return self.protocol.prompt(row["prompt"], self.tokenizer, self.block.max_turns, self.block.instruction)

    # ------------------------------------------------------------------ trajectories

    def trajectories(self, model: Any, rows: list[Row], *, temperature: float, seed: int) -> tuple[list[Any], list[Any]]:
        """One trajectory per row, batched (``run_agent``): ``(rollouts, environments)``. The
        model's train/eval mode is restored afterwards (generation switches it to eval)."""
        from sqlcoach.generate.agent import run_agent

        envs = [self._env(r) for r in rows]
        texts = [self._prompt_text(r) for r in rows]
        was_training = model.training
        try:
            rolls = run_agent(model, self.tokenizer, texts, envs, max_new_tokens=self.turn_tokens,
                              max_total_tokens=self.max_total_tokens, temperature=temperature, top_p=self.top_p,
                              batch_size=self.batch_size, seed=seed, executor=self.pool)
        finally:
            model.train(was_training)
        for roll, env in zip(rolls, envs):
            self.totals["trajectories"] += 1
            self.totals["turns"] += len(env.turns)
            self.totals["queries"] += env.queries_run
            self.totals["model_tokens"] += sum(roll.env_mask)
            self.totals["observation_tokens"] += len(roll.env_mask) - sum(roll.env_mask)
            self.totals[f"finish/{env.finish}"] += 1
            self.seconds["generation"] += roll.gen_seconds
            self.seconds["execution"] += roll.exec_seconds
        return rolls, envs

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        """TRL's ``rollout_func``: one trajectory per prompt (see the module docstring)."""
        rows = [self._row(p) for p in prompts]
        model = trainer.accelerator.unwrap_model(trainer.model)
        # a new draw every step and on every process
        seed = self.seed + 100_003 * int(trainer.state.global_step) + 7919 * int(trainer.accelerator.process_index)
        rolls, envs = self.trajectories(model, rows, temperature=self.temperature, seed=seed)
        end = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else self.tokenizer.pad_token_id
        out: dict[str, Any] = {"prompt_ids": [], "completion_ids": [], "env_mask": [], "logprobs": None,
                               **{c: [] for c in AGENT_COLUMNS}}
        for roll, env in zip(rolls, envs):
            ids, mask = list(roll.completion_ids), list(roll.env_mask)
            if env.finish != "length":  # ended by the protocol, not cut: close it as a finished completion
                ids, mask = ids + [end], mask + [0]
            out["prompt_ids"].append(list(roll.prompt_ids))
            out["completion_ids"].append(ids)
            out["env_mask"].append(mask)
            out["agent_answer"].append(env.answer_as_written())
            out["agent_finish"].append(env.finish)
            out["agent_turns"].append(len(env.turns))
            out["agent_queries"].append(env.queries_run)
            out["agent_malformed"].append(sum(1 for t in env.turns if t.kind == "malformed"))
        metrics = getattr(trainer, "_metrics", None)  # TRL's per-step log (mean over the step's batches)
        if isinstance(metrics, dict) and envs:
            mode = "train" if trainer.model.training else "eval"
            n = len(envs)
            metrics[mode]["agent/turns"].append(sum(out["agent_turns"]) / n)
            metrics[mode]["agent/queries"].append(sum(out["agent_queries"]) / n)
            metrics[mode]["agent/answered"].append(sum(1 for e in envs if e.finish == "solution") / n)
        return out

    def generate(self, model: Any, tokenizer: Any, prompts: list[str], *, n: int = 1, temperature: float = 0.0,
                 top_p: float = 1.0, max_new_tokens: int = 256, batch_size: int = 8, seed: int = 0,
                 on_batch: Callable[[int], None] | None = None) -> Any:
        """A ``GenerateFn`` for the pass-rate filter: ``n`` trajectories per prompt (a registered
        row's chat-formatted prompt); each text is the trajectory's final answer as written (``""``
        for none), so the filter scores trajectory outcomes. ``max_new_tokens`` and ``batch_size``
        are this rollout's own (the trajectory bound and the batch)."""
        from sqlcoach.generate.hf import Generations

        t0 = time.monotonic()
        rows = [self._row(p) for p in prompts]
        rolls, envs = self.trajectories(model, [r for r in rows for _ in range(n)], temperature=temperature, seed=seed)
        answers = [e.answer_as_written() for e in envs]
        if on_batch is not None:
            on_batch(len(prompts))
        return Generations(texts=[answers[i * n:(i + 1) * n] for i in range(len(prompts))],
                           prompt_tokens=sum(len(r.prompt_ids) for r in rolls),
                           generated_tokens=sum(sum(r.env_mask) for r in rolls), seconds=time.monotonic() - t0)

    def summary(self) -> dict[str, Any]:
        """What the run's trajectories did (this process's, the pass-rate filter's included): counts,
        mean turns and queries, model and observation tokens, how they ended, time."""
        n = self.totals["trajectories"]
        return {
            "settings": self.block.as_recipe(self.max_total_tokens + 1), "trajectories": n,
            "mean_turns": round(self.totals["turns"] / n, 3) if n else None,
            "mean_queries": round(self.totals["queries"] / n, 3) if n else None,
            # summary.json's tokens_generated counts whole trajectories (observations included): these split them
            "model_tokens": self.totals["model_tokens"], "observation_tokens": self.totals["observation_tokens"],
            "finish": {k.split("/", 1)[1]: v for k, v in sorted(self.totals.items()) if k.startswith("finish/")},
            "generation_seconds": round(self.seconds["generation"], 2),
            "execution_seconds": round(self.seconds["execution"], 2),
        }

    def close(self) -> None:
        self.pool.close()
