"""The agent protocol's text: the tags, the instruction a prompt carries, the observation wrapper.

SkyRL-SQL's protocol, which any chat template can carry (it is plain text in the assistant turn):

* the model writes ``<sql>QUERY</sql>`` to run a query and stops there;
* the environment appends ``\\n<observation>\\nRESULT\\nturns left: N\\n</observation>\\n`` (RESULT is
  ``sqlcoach.execution.render.render_result``'s text, or an error line) and the model goes on;
* the model ends with ``<solution>QUERY</solution>``, its final answer.

One place for this text, so that inference (``sqlcoach.generate.agent``), the warm-start SFT rows
and a multi-turn GRPO recipe write and read exactly the same tags.
"""

from __future__ import annotations

SQL_OPEN, SQL_CLOSE = "<sql>", "</sql>"
SOLUTION_OPEN, SOLUTION_CLOSE = "<solution>", "</solution>"
OBSERVATION_OPEN, OBSERVATION_CLOSE = "<observation>", "</observation>"

#: Where a model turn ends: generation stops at the first of these.
STOP_STRINGS = (SQL_CLOSE, SOLUTION_CLOSE)

AGENT_INSTRUCTION = (
    "You may run SQL queries on the database before you answer. To run one, write it as "
    "<sql>QUERY</sql> and stop; its result comes back as <observation>...</observation> with the "
    "number of turns you have left. You have {max_turns} turns. When you are sure, write the final "
    "query as <solution>QUERY</solution>."
)


def agent_instruction(max_turns: int) -> str:
    """The instruction appended to the prompt's last user message in agent mode."""
    return AGENT_INSTRUCTION.format(max_turns=max_turns)


def with_agent_instruction(messages: list[dict], max_turns: int) -> list[dict]:
    """``messages`` with the agent instruction appended to the last user message (a new user
    message when there is none); the input list is not changed."""
    out = [dict(m) for m in messages]
    text = agent_instruction(max_turns)
    for m in reversed(out):
        if m.get("role") == "user":
            m["content"] = f"{m.get('content', '')}\n\n{text}"
            return out
    out.append({"role": "user", "content": text})
    return out


def observation_text(body: str, turns_left: int) -> str:
    """The text inserted after a ``</sql>``: the wrapped result and the turns left."""
    return f"\n{OBSERVATION_OPEN}\n{body}\nturns left: {turns_left}\n{OBSERVATION_CLOSE}\n"


def sql_turn(sql: str) -> str:
    """A model turn that runs ``sql``."""
    return f"{SQL_OPEN}{sql}{SQL_CLOSE}"


def solution_turn(sql: str) -> str:
    """A model turn that answers with ``sql``."""
    return f"{SOLUTION_OPEN}{sql}{SOLUTION_CLOSE}"
