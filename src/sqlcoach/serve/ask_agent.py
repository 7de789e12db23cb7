"""``sqlcoach ask --agent``: the model runs queries on your database and reads their results
before it answers (``sqlcoach.generate.agent``); every turn is printed.

The trajectories of all questions are generated together (``run_agent``); their queries and the
final answers run in the ``SqlRunner``'s sandboxed pool (read-only, deadline, row cap).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from sqlcoach.execution.runner import jsonable_value
from sqlcoach.serve.text2sql import SqlAnswer


@dataclass
class AgentAnswer:
    """A question's trajectory (turns, how it ended) and its final answer run on the database;
    with several trajectories, the chosen one's, and every trajectory's answer, end and turns."""

    answer: SqlAnswer
    turns: list[Any]
    finish: str
    trajectories: list[dict[str, Any]] | None = None

    def as_json(self) -> dict[str, Any]:
        out = {**self.answer.as_json(), "finish": self.finish, "turns": [t.as_json() for t in self.turns]}
        if self.trajectories is not None:
            out["trajectories"] = self.trajectories
        return out


def ask_local_agent(args: Any, db_path: str, questions: list[str], runner: Any, selector: Any = None) -> list[AgentAnswer]:
    """Load ``args.model`` and answer each question with a trajectory of at most
    ``args.max_turns`` turns; the final answer is run in ``runner``. With ``args.n > 1``: ``n``
    sampled trajectories per question and the final answer ``selector`` chose among theirs."""
    from sqlcoach.execution.render import token_length
    from sqlcoach.generate.agent import AgentConfig, make_protocol, run_agent
    from sqlcoach.generate.agent_predict import agent_prompts, env_for
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.recipe import resolve_prompt
    from sqlcoach.serve.text2sql import example_for, select_answer

    config = AgentConfig(max_turns=args.max_turns, timeout=args.timeout, max_rows=args.max_rows,
                         untagged=args.untagged, protocol=args.protocol, keep=args.keep)
    recipe = resolve_prompt(args.model, template=args.template, schema_style=args.schema_style,
                            schema_sample_values=args.schema_samples, log=lambda m: print(m, file=sys.stderr))
    builder = recipe.builder()
    model, tok = load_model(args.model, dtype=args.dtype, device=args.device)
    protocol = make_protocol(config, tok)  # tools: refused here when the chat template cannot carry them
    exs = [example_for(q, db_path) for q in questions]
    builder.schema_text(db_path)  # an unreadable database is an error here, not an empty schema
    n = args.n
    rep = [ex for ex in exs for _ in range(n)]  # n trajectories per question, side by side
    envs = [env_for(ex, config, recipe.template, runner.pool, token_length(tok), protocol) for ex in rep]
    rolls = run_agent(model, tok, agent_prompts(rep, tok, builder, config.max_turns, protocol=protocol), envs,
                      max_new_tokens=args.max_new_tokens or 256, batch_size=args.batch_size, executor=runner.pool,
                      temperature=args.temperature, seed=args.seed)
    if n > 1:
        chosen = []
        for q, ex in enumerate(exs):
            schema = builder.lenient_schema_text(ex) if getattr(selector, "reads_schema", False) else ""
            mine = list(zip(envs[q * n:(q + 1) * n], rolls[q * n:(q + 1) * n]))
            raws = [tok.decode(r.completion_ids, skip_special_tokens=True) for _, r in mine]
            ans = select_answer(ex, [e.answer or "" for e, _ in mine], raws, runner, selector, database=ex.db_id,
                                schema_text=schema, generation_seconds=max(r.gen_seconds for _, r in mine))
            env = mine[ans.chosen if ans.chosen is not None and ans.chosen >= 0 else 0][0]
            chosen.append(AgentAnswer(ans, list(env.turns), str(env.finish), [
                {"sql": e.answer or "", "finish": str(e.finish), "turns": [t.as_json() for t in e.turns]}
                for e, _ in mine]))
        return chosen
    out = []
    for ex, env, roll in zip(exs, envs, rolls):
        ans = SqlAnswer(database=ex.db_id, question=ex.question, sql=env.answer or "",
                        raw=tok.decode(roll.completion_ids, skip_special_tokens=True),
                        generation_seconds=round(roll.gen_seconds, 4))
        t0 = time.monotonic()
        if not ans.sql:
            ans.error = f"no_sql: the trajectory ended ({env.finish}) without an answer"
        else:
            res = runner.run(str(ex.db_path), ans.sql)
            if res.ok:
                ans.columns = list(res.columns)
                ans.rows = [[jsonable_value(v) for v in r] for r in res.rows or ()]
            else:
                ans.error = f"{res.error}: {res.message}" if res.message else str(res.error)
        ans.execution_seconds = round(roll.exec_seconds + time.monotonic() - t0, 4)
        ans.seconds = round(ans.generation_seconds + ans.execution_seconds, 4)
        out.append(AgentAnswer(ans, list(env.turns), str(env.finish)))
    return out


def print_turns(a: AgentAnswer) -> None:
    """Each turn of ``a``: what the model wrote and what it read back."""
    for k, t in enumerate(a.turns, 1):
        print(f"turn {k} ({t.kind}{', ' + t.error if t.error else ''}, {t.tokens} tokens): {t.text.strip()}")
        if t.observation:
            print("  " + t.observation.strip().replace("\n", "\n  "))
    print(f"ended: {a.finish}")
