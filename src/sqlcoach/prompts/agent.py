"""The agent protocol's text: the tags, the instruction a prompt carries, the observation wrapper.

SkyRL-SQL's protocol, which any chat template can carry (it is plain text in the assistant turn):

* the model writes ``<sql>QUERY</sql>`` to run a query and stops there;
* the environment appends ``\\n<observation>\\nRESULT\\nturns left: N\\n</observation>\\n`` (RESULT is
  ``sqlcoach.execution.render.render_result``'s text, or an error line) and the model goes on;
* the model ends with ``<solution>QUERY</solution>``, its final answer; with the keep action
  (``AgentConfig.keep``) an empty ``<solution></solution>`` (``KEEP_TURN``) answers with the last
  query that ran without an error, so a policy need not copy a query it already ran.

Native tool calls (``protocol: tools``, for chat templates that render them, e.g. Qwen2.5's): the
model calls one tool, ``run_sql(query)`` (``RUN_SQL_TOOL``, handed to the template as ``tools=``),
reads its result back as a ``tool`` message whose content is ``tool_result_text`` (the same
rendered result and turns left), and answers with a plain assistant message holding the final SQL
(no tool call). The template renders the call and the result; ``sqlcoach.generate.agent`` parses
the Hermes/Qwen ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` form.

The review protocol (``protocol: review``): the model first answers as it does in one pass (a plain
SQL message, ended by its end token); the environment runs it and shows the result as a new user
message (``review_text``); the model then keeps it (``KEEP_TURN``) or writes
``<solution>QUERY</solution>`` (or another plain query, which is run and shown in turn). Its first
turn is the single-pass answer, so a policy need not learn a new format to make its first attempt.

One place for this text, so that inference (``sqlcoach.generate.agent``), the warm-start SFT rows
and a multi-turn GRPO recipe write and read exactly the same tags.
"""

from __future__ import annotations

SQL_OPEN, SQL_CLOSE = "<sql>", "</sql>"
SOLUTION_OPEN, SOLUTION_CLOSE = "<solution>", "</solution>"
OBSERVATION_OPEN, OBSERVATION_CLOSE = "<observation>", "</observation>"
#: every tag of the tag protocol (``train sft add_agent_tokens=true`` makes each one token)
AGENT_TAGS = (SQL_OPEN, SQL_CLOSE, SOLUTION_OPEN, SOLUTION_CLOSE, OBSERVATION_OPEN, OBSERVATION_CLOSE)

#: Where a model turn ends: generation stops at the first of these.
STOP_STRINGS = (SQL_CLOSE, SOLUTION_CLOSE)

AGENT_INSTRUCTION = (
    "You may run SQL queries on the database before you answer. To run one, write it as "
    "<sql>QUERY</sql> and stop; its result comes back as <observation>...</observation> with the "
    "number of turns you have left. You have {max_turns} turns. When you are sure, write the final "
    "query as <solution>QUERY</solution>."
)

KEEP_INSTRUCTION = " To answer with the last query you ran, write <solution></solution>."
REVIEW_INSTRUCTION = (
    "Write the SQL query. It will be run and its result shown to you (with the number of turns you have "
    "left: you have {max_turns}); then write <solution></solution> to keep it, or <solution>QUERY</solution> "
    "with a corrected query."
)
#: the keep action's turn: an empty solution
KEEP_TURN = f"{SOLUTION_OPEN}{SOLUTION_CLOSE}"


#: the tool protocol's one tool, in the JSON-schema form chat templates render (``tools=[RUN_SQL_TOOL]``)
RUN_SQL = "run_sql"
RUN_SQL_TOOL = {
    "type": "function",
    "function": {
        "name": RUN_SQL,
        "description": "Run one read-only SQL query on the database and return its result (columns, row count, "
                       "the first rows, or the error) and the number of turns left.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "one SQL SELECT statement"}},
            "required": ["query"],
        },
    },
}
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
#: Where a tool-protocol model turn ends: at its first tool call (or an end token: the final answer).
TOOL_STOP_STRINGS = (TOOL_CALL_CLOSE,)

TOOL_INSTRUCTION = (
    "You may call the run_sql tool to run SQL queries on the database before you answer; each result "
    "comes back with the number of turns you have left. You have {max_turns} turns. When you are sure, "
    "reply with the final SQL query only, without a tool call."
)


def agent_instruction(max_turns: int, protocol: str = "tags", keep: bool = False) -> str:
    """The instruction appended to the prompt's last user message in agent mode (``protocol``:
    ``tags`` or ``tools``; ``keep``: the tag protocol's keep action is offered)."""
    if protocol == "tools":
        return TOOL_INSTRUCTION.format(max_turns=max_turns)
    if protocol == "review":
        return REVIEW_INSTRUCTION.format(max_turns=max_turns)
    return AGENT_INSTRUCTION.format(max_turns=max_turns) + (KEEP_INSTRUCTION if keep else "")


def with_agent_instruction(messages: list[dict], max_turns: int, protocol: str = "tags", keep: bool = False) -> list[dict]:
    """``messages`` with the agent instruction appended to the last user message (a new user
    message when there is none); the input list is not changed."""
    out = [dict(m) for m in messages]
    text = agent_instruction(max_turns, protocol, keep)
    for m in reversed(out):
        if m.get("role") == "user":
            m["content"] = f"{m.get('content', '')}\n\n{text}"
            return out
    out.append({"role": "user", "content": text})
    return out


def observation_text(body: str, turns_left: int) -> str:
    """The text inserted after a ``</sql>``: the wrapped result and the turns left."""
    return f"\n{OBSERVATION_OPEN}\n{body}\nturns left: {turns_left}\n{OBSERVATION_CLOSE}\n"


def tool_result_text(body: str, turns_left: int) -> str:
    """The content of the ``tool`` message that answers a ``run_sql`` call: the result and the turns left."""
    return f"{body}\nturns left: {turns_left}"


def review_text(body: str, turns_left: int) -> str:
    """The content of the user message that shows the review protocol's model its query's result."""
    return f"{OBSERVATION_OPEN}\n{body}\nturns left: {turns_left}\n{OBSERVATION_CLOSE}"


def sql_turn(sql: str) -> str:
    """A model turn that runs ``sql``."""
    return f"{SQL_OPEN}{sql}{SQL_CLOSE}"


def solution_turn(sql: str) -> str:
    """A model turn that answers with ``sql``."""
    return f"{SOLUTION_OPEN}{sql}{SOLUTION_CLOSE}"
