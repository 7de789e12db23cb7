"""The SQL agent's environment: a model turn runs a query or answers; what it reads back is the
shared result rendering.

One trajectory = one ``SqlAgentEnv`` over one database. Each model turn (the text generated until
``</sql>``, ``</solution>`` or the end of the sequence) is parsed by ``parse_turn`` into one of:

* ``sql``: ``<sql>QUERY</sql>``; the query runs in sqlcoach's sandbox (read-only, deadline, row
  and byte caps: ``sqlcoach.execution``) and the model reads back
  ``sqlcoach.prompts.agent.observation_text(render_result(result), turns_left)``;
* ``solution``: ``<solution>QUERY</solution>``; the trajectory ends with QUERY as its answer;
* ``keep`` (only with ``AgentConfig.keep``): an empty ``<solution></solution>``; the trajectory
  ends with the last query that ran without an error as its answer (the turn is kept as a
  ``solution`` turn with ``kept`` set); with no such query it is a malformed turn;
* ``malformed``: no tag, an unclosed tag, an empty query. It costs a turn and comes back as an
  error observation (rendered by the same ``render_result``, error class ``malformed_turn``),
  never an exception. With ``untagged="solution"`` a turn with no tag at all is read as the final
  answer instead (the SQL extracted from the text), for models never taught the tags.

Guarantees (``tests/unit/generate/test_agent.py``):

* At most ``max_turns`` model turns. A trajectory that reaches the limit without answering ends
  with its last query as the answer (``on_limit="last_query"``) or no answer (``"none"``).
* The observations of one trajectory together never exceed ``observation_budget`` units of
  ``length`` (characters by default; ``token_length(tokenizer)`` for tokens), and each at most
  ``per_observation``: a result is rendered within what is left, and when not even the wrapper fits
  the trajectory ends (``finish="observation_budget"``) as at the turn limit. TRL drops a tool
  result that would overflow the completion instead of cutting it; here nothing overflows.
* A query never changes a database byte and never outlives its deadline by more than the
  executor's hard limit (``ExecutorPool``: the worker is killed); a runaway query costs one
  turn, the trajectory continues.

**Two protocols, one environment.** How a turn is parsed and how an observation is written into
the trajectory is a ``TurnProtocol`` (``make_protocol(config, tokenizer)``); everything else (the
sandbox, budgets, limits, the loop, masks) is shared:

* ``TagProtocol`` (``protocol: tags``, the default): the tags above, any chat template;
* ``ToolProtocol`` (``protocol: tools``): native tool calls through the model's own chat template
  (``ToolProtocol.for_tokenizer`` checks that the template renders ``tools=``, an assistant
  ``tool_calls`` message and a ``tool`` message, in the Hermes/Qwen2.5 form, and refuses with the
  template's name otherwise). One tool, ``run_sql(query)``; a turn holding
  ``<tool_call>{"name": "run_sql", "arguments": {"query": ...}}</tool_call>`` runs the query,
  and the observation is the template's rendering of the turn's end and a ``tool`` message
  (the same rendered result and turns left) up to the next assistant header. The final answer is
  an assistant message *without* a tool call: its SQL (``extract_sql``). Invalid JSON, another
  tool, bad arguments, or an answer without SQL are malformed turns (error observations, as a
  tool result).

``step(text)`` does a whole turn. Batched callers (``run_agent``, a GRPO ``rollout_func``) split it:
``act(text)`` returns the query to run (or ``None``), the caller runs every trajectory's query in one
``ExecutorPool.run`` call, and ``observe(result)`` returns the text to append.

``run_agent`` is the batched multi-turn generation loop for Hugging Face models: every active
trajectory's next turn is generated together (stop strings ``</sql>`` / ``</solution>``), their
queries executed together, observations appended as tokens with ``env_mask`` 0.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlcoach.errors import ConfigError
from sqlcoach.execution.render import LengthFn, render_result
from sqlcoach.prompts.agent import (
    RUN_SQL,
    RUN_SQL_TOOL,
    SOLUTION_CLOSE,
    SOLUTION_OPEN,
    SQL_CLOSE,
    SQL_OPEN,
    STOP_STRINGS,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TOOL_STOP_STRINGS,
    observation_text,
    review_text,
    tool_result_text,
    with_agent_instruction,
)
from sqlcoach.types import ExecResult

if TYPE_CHECKING:
    from sqlcoach.generate.prefix_cache import PrefixCache

ON_LIMIT = ("last_query", "none")
#: how model turns are written: SkyRL-SQL's tags (any chat template) or native tool calls (a
#: template that renders them: ``ToolProtocol.for_tokenizer`` checks)
PROTOCOLS = ("tags", "tools", "review")
UNTAGGED = ("error", "solution")
#: names in observations: as the prompt's template writes them (placeholders for an anonymizing
#: template, via the env's ``encode``), or the database's real names
OBSERVATION_NAMES = ("template", "real")


@dataclass(frozen=True)
class AgentConfig:
    """How a trajectory runs. Budgets are in units of the environment's ``length`` function."""

    max_turns: int = 5
    observation_budget: int = 3000
    per_observation: int = 600
    on_limit: str = "last_query"
    untagged: str = "error"
    timeout: float = 5.0
    max_rows: int = 10_000
    max_bytes: int = 8 * 2**20
    observation_names: str = "template"
    protocol: str = "tags"
    keep: bool = False

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"agent protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if not isinstance(self.keep, bool):
            raise ConfigError(f"agent keep must be true or false, got {self.keep!r}")
        if self.keep and self.protocol == "tools":
            raise ConfigError("agent keep (an empty <solution></solution> answers with the last query run) "
                              "is an action of the tags and review protocols; protocol tools has none")
        for name in ("max_turns", "observation_budget", "per_observation", "max_rows", "max_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"agent {name} must be an int >= 1, got {v!r}")
        if self.on_limit not in ON_LIMIT:
            raise ConfigError(f"agent on_limit must be one of {', '.join(ON_LIMIT)}, got {self.on_limit!r}")
        if self.observation_names not in OBSERVATION_NAMES:
            raise ConfigError(f"agent observation_names must be one of {', '.join(OBSERVATION_NAMES)}, "
                              f"got {self.observation_names!r}")
        if self.untagged not in UNTAGGED:
            raise ConfigError(f"agent untagged must be one of {', '.join(UNTAGGED)}, got {self.untagged!r}")
        if not (isinstance(self.timeout, (int, float)) and not isinstance(self.timeout, bool) and self.timeout > 0):
            raise ConfigError(f"agent timeout must be a positive number of seconds, got {self.timeout!r}")

    def limits(self) -> Any:
        from sqlcoach.execution.sandbox import Limits

        return Limits(timeout=float(self.timeout), max_rows=self.max_rows, max_bytes=self.max_bytes)


@dataclass(frozen=True)
class Action:
    """A parsed model turn: ``kind`` is ``sql``, ``solution``, ``keep`` or ``malformed`` (``reason`` says why)."""

    kind: str
    sql: str = ""
    reason: str = ""


def parse_turn(text: str, untagged: str = "error", extract: Callable[[str], str | None] | None = None,
               keep: bool = False) -> Action:
    """The action of one model turn (see the module docstring). Never raises.

    The first opening tag decides (text before it, e.g. reasoning, is allowed); it must be closed and
    hold a non-empty query, except that with ``keep`` an empty solution is ``Action("keep")``.
    ``untagged="solution"``: a turn without any tag is the final answer, ``extract(text)`` (default
    ``sqlcoach.sql.extract.extract_sql``)."""
    starts = [(text.find(open_), kind, open_, close) for kind, open_, close in
              (("sql", SQL_OPEN, SQL_CLOSE), ("solution", SOLUTION_OPEN, SOLUTION_CLOSE))]
    found = sorted((pos, kind, o, c) for pos, kind, o, c in starts if pos >= 0)
    if not found:
        if untagged == "solution":
            if extract is None:
                from sqlcoach.sql.extract import extract_sql as extract
            sql = (extract(text) or "").strip()
            return Action("solution", sql) if sql else Action("malformed", reason="no SQL in the turn")
        return Action("malformed", reason=f"no {SQL_OPEN}...{SQL_CLOSE} or {SOLUTION_OPEN}...{SOLUTION_CLOSE} in the turn")
    pos, kind, open_, close = found[0]
    body_start = pos + len(open_)
    end = text.find(close, body_start)
    if end < 0:
        return Action("malformed", reason=f"{open_} without {close}")
    sql = text[body_start:end].strip()
    if not sql:
        if keep and kind == "solution":
            return Action("keep")
        return Action("malformed", reason=f"empty {open_}{close}")
    return Action(kind, sql)


# ---------------------------------------------------------------------- protocols


class TurnProtocol(Protocol):
    """How model turns are written and observations read back: the one thing that differs between
    the tag protocol and native tool calls. The environment, its budgets and the loop are shared.

    * ``name``: ``tags`` or ``tools`` (``AgentConfig.protocol``);
    * ``stop_strings``: generation of a turn stops at the first of these (or an end token);
    * ``parse(text)``: the ``Action`` of one model turn; never raises;
    * ``observation(body, turns_left)``: the text appended to the trajectory after a turn, around
      the rendered result ``body`` (all of it is observation: ``env_mask`` 0, counted in budgets);
    * ``prompt(messages, tokenizer, max_turns, instruction)``: the chat-formatted prompt text;
    * ``call_text(sql)``: a model turn that runs ``sql`` in this protocol (the tool form,
      ``SqlAgentEnv.run_sql``, and synthesized rows)."""

    name: str
    stop_strings: tuple[str, ...]

    def parse(self, text: str) -> Action: ...

    def observation(self, body: str, turns_left: int) -> str: ...

    def prompt(self, messages: list[dict], tokenizer: Any, max_turns: int, instruction: bool = True) -> str: ...

    def call_text(self, sql: str) -> str: ...


@dataclass(frozen=True)
class TagProtocol:
    """SkyRL-SQL's tags (``parse_turn``, ``observation_text``): any chat template carries them."""

    untagged: str = "error"
    extract: Callable[[str], str | None] | None = None
    name: str = "tags"
    stop_strings: tuple[str, ...] = STOP_STRINGS
    keep: bool = False

    def parse(self, text: str) -> Action:
        return parse_turn(text, self.untagged, self.extract, self.keep)

    def observation(self, body: str, turns_left: int) -> str:
        return observation_text(body, turns_left)

    def prompt(self, messages: list[dict], tokenizer: Any, max_turns: int, instruction: bool = True) -> str:
        from sqlcoach.prompts.chat import to_text

        return to_text(with_agent_instruction(messages, max_turns, keep=self.keep) if instruction else messages, tokenizer)

    def call_text(self, sql: str) -> str:
        return f"{SQL_OPEN}{sql}{SQL_CLOSE}"


def _plain_sql(text: str, extract: Callable[[str], str | None] | None) -> str:
    """The SQL of a turn without tags or tool calls (``extract``, default
    ``sqlcoach.sql.extract.extract_sql``), ``""`` when it holds none; hostile text never raises."""
    if extract is None:
        from sqlcoach.sql.extract import extract_sql as extract
    try:
        return (extract(text) or "").strip()
    except Exception:  # noqa: BLE001 - hostile text is a malformed turn, never a crash
        return ""


def parse_tool_turn(text: str, extract: Callable[[str], str | None] | None = None) -> Action:
    """The action of one tool-protocol model turn (Hermes/Qwen2.5 form). Never raises.

    * a turn holding ``<tool_call>JSON</tool_call>`` (text before it allowed; the first call
      decides, later ones are ignored) runs the query when the JSON is an object
      ``{"name": "run_sql", "arguments": {"query": "..."}}`` (``arguments`` may also be a JSON
      string of that object, or be named ``parameters``, as Llama-style models write it); anything else (no closing tag, invalid JSON, another tool, missing,
      extra or non-string arguments, an empty query) is ``malformed`` with the reason;
    * a turn without a tool call is the final answer: its SQL (``extract``, default
      ``sqlcoach.sql.extract.extract_sql``: a fenced block or a bare statement); ``malformed`` when
      it holds none."""
    pos = text.find(TOOL_CALL_OPEN)
    if pos < 0:
        sql = _plain_sql(text, extract)
        return Action("solution", sql) if sql else Action(
            "malformed", reason=f"no {RUN_SQL} tool call and no SQL in the answer")
    start = pos + len(TOOL_CALL_OPEN)
    end = text.find(TOOL_CALL_CLOSE, start)
    if end < 0:
        return Action("malformed", reason=f"{TOOL_CALL_OPEN} without {TOOL_CALL_CLOSE}")
    try:
        call = json.loads(text[start:end])
    except (ValueError, RecursionError) as exc:  # RecursionError: hostile nesting ([[[[...)
        return Action("malformed", reason=f"the tool call is not valid JSON ({str(exc)[:120]})")
    if not isinstance(call, dict):
        return Action("malformed", reason='the tool call must be a JSON object {"name": ..., "arguments": {...}}')
    name = call.get("name")
    if name != RUN_SQL:
        return Action("malformed", reason=f"unknown tool {str(name)[:80]!r}: the only tool is {RUN_SQL}")
    args = call.get("arguments", call.get("parameters"))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except (ValueError, RecursionError):
            return Action("malformed", reason=f"{RUN_SQL} arguments are not a JSON object")
    if not isinstance(args, dict):
        return Action("malformed", reason=f'{RUN_SQL} takes arguments {{"query": "..."}}, got {str(args)[:80]!r}')
    extra = sorted(str(k)[:40] for k in args if k != "query")
    if extra:
        return Action("malformed", reason=f"{RUN_SQL} takes one argument, query; got also {extra[:5]}")
    query = args.get("query")
    if not isinstance(query, str):
        return Action("malformed", reason=f"{RUN_SQL} needs a string argument query")
    if not query.strip():
        return Action("malformed", reason=f"{RUN_SQL} with an empty query")
    return Action("sql", query.strip())


_PROBE_SQL = "SELECT 4711 AS sqlcoach_probe"
_PROBE_RESULT = "SQLCOACH-TOOL-RESULT-7d1f"


@dataclass(frozen=True)
class ToolProtocol:
    """Native tool calls rendered by the model's own chat template (``for_tokenizer`` checks that
    it can and derives the pieces). Turns: ``parse_tool_turn``. An observation is what the template
    writes after an assistant turn and around a ``tool`` message, up to the next assistant header:
    ``turn_end + tool_open + tool_result_text(body, turns_left) + tool_close`` (Qwen2.5:
    ``<|im_end|>\\n<|im_start|>user\\n<tool_response>\\n`` ... ``\\n</tool_response><|im_end|>\\n<|im_start|>assistant\\n``).
    A malformed turn's error comes back the same way (as a tool result), so the chat stays well
    formed. The final answer is an assistant message without a tool call: nothing is appended."""

    template_name: str
    turn_end: str
    tool_open: str
    tool_close: str
    extract: Callable[[str], str | None] | None = None
    name: str = "tools"
    stop_strings: tuple[str, ...] = TOOL_STOP_STRINGS

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, extract: Callable[[str], str | None] | None = None) -> ToolProtocol:
        """The protocol of ``tokenizer``'s chat template, or a ``ConfigError`` naming the template
        when it cannot carry it: no template, one that fails on ``tools=`` / ``tool_calls`` /
        ``tool`` messages, drops them, or writes calls in a form other than
        ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` (the form sqlcoach parses)."""
        where = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
        template = getattr(tokenizer, "chat_template", None)
        if not template:
            raise ConfigError(f"agent protocol tools needs a chat template that renders tool calls; the tokenizer of "
                              f"{where} has no chat template (use protocol tags)")
        base = [{"role": "user", "content": "probe"}]
        call = {"role": "assistant", "content": "",
                "tool_calls": [{"type": "function", "function": {"name": RUN_SQL, "arguments": {"query": _PROBE_SQL}}}]}
        tool = {"role": "tool", "name": RUN_SQL, "content": _PROBE_RESULT}

        def render(messages: list[dict], gen: bool) -> str:
            return tokenizer.apply_chat_template(messages, tools=[RUN_SQL_TOOL], tokenize=False,
                                                 add_generation_prompt=gen)

        try:
            prompt = render(base, True)
            history = render(base, False)
            called = render(base + [call], False)
            answered = render(base + [call, tool], True)
        except Exception as exc:  # noqa: BLE001 - any template failure is the same refusal
            raise ConfigError(f"agent protocol tools: the chat template of {where} fails on tool calls "
                              f"({type(exc).__name__}: {str(exc)[:200]}); use protocol tags") from None
        turn = called[len(history):] if called.startswith(history) else ""  # the assistant message alone
        close = turn.rfind(TOOL_CALL_CLOSE)
        opened = turn.rfind(TOOL_CALL_OPEN, 0, close if close >= 0 else None)
        problem = None
        if RUN_SQL not in prompt or "query" not in prompt:
            problem = "does not render the tools it is given"
        elif not turn:
            problem = "does not render an assistant message with tool_calls after the conversation"
        elif opened < 0 or close < 0:
            problem = f"does not write tool calls as {TOOL_CALL_OPEN}...{TOOL_CALL_CLOSE}"
        elif parse_tool_turn(turn[opened:close + len(TOOL_CALL_CLOSE)]) != Action("sql", _PROBE_SQL):
            problem = 'does not write a tool call as {"name": ..., "arguments": {...}} JSON'
        elif not answered.startswith(called) or answered.count(_PROBE_RESULT) != 1:
            problem = "does not render a tool message after the call"
        if problem:
            raise ConfigError(f"agent protocol tools: the chat template of {where} {problem} (sqlcoach reads "
                              f"Hermes/Qwen2.5-style tool calls); use protocol tags")
        tool_open, tool_close = answered[len(called):].split(_PROBE_RESULT)
        return cls(template_name=where, turn_end=turn[close + len(TOOL_CALL_CLOSE):], tool_open=tool_open,
                   tool_close=tool_close, extract=extract)

    def parse(self, text: str) -> Action:
        return parse_tool_turn(text, self.extract)

    def observation(self, body: str, turns_left: int) -> str:
        return f"{self.turn_end}{self.tool_open}{tool_result_text(body, turns_left)}{self.tool_close}"

    def prompt(self, messages: list[dict], tokenizer: Any, max_turns: int, instruction: bool = True) -> str:
        if instruction:
            messages = with_agent_instruction(messages, max_turns, "tools")
        return tokenizer.apply_chat_template(messages, tools=[RUN_SQL_TOOL], tokenize=False, add_generation_prompt=True)

    def call_text(self, sql: str) -> str:
        return f"{TOOL_CALL_OPEN}\n{json.dumps({'name': RUN_SQL, 'arguments': {'query': sql}})}\n{TOOL_CALL_CLOSE}"


_PROBE_DRAFT = "SELECT 4711 AS sqlcoach_draft"


def parse_review_turn(text: str, extract: Callable[[str], str | None] | None = None, keep: bool = False) -> Action:
    """The action of one review-protocol turn. Never raises. A turn with an opening tag is read as
    ``parse_turn`` reads it (``<solution>`` answers, an empty one keeps with ``keep``, ``<sql>``
    runs); a turn without one is a query to run: its SQL up to a stray closing tag (``extract``,
    default ``sqlcoach.sql.extract.extract_sql``), ``malformed`` when it holds none."""
    if SQL_OPEN in text or SOLUTION_OPEN in text:
        return parse_turn(text, "error", extract, keep)
    # a plain turn ended by a stray closing tag (generation stops at it: "SELECT ...</solution>") is
    # the query before it; the tag is not SQL
    sql = _plain_sql(text.split(SOLUTION_CLOSE, 1)[0].split(SQL_CLOSE, 1)[0], extract)
    return Action("sql", sql) if sql else Action("malformed", reason="no SQL in the turn")


@dataclass(frozen=True)
class ReviewProtocol:
    """Draft, run, review (``protocol: review``): the first turn is the model's ordinary answer, a
    plain SQL message ended by its end token, exactly what it writes in one pass; the environment
    runs it and writes the end of that message, a user message holding ``review_text(result,
    turns_left)`` and the next assistant header, all taken from the model's own chat template
    (``for_tokenizer``); the model then keeps (``<solution></solution>``, with ``keep``), answers
    ``<solution>QUERY</solution>``, or writes another plain query (run and shown in turn). So a
    policy is never asked to write its first attempt in a format it has not seen."""

    template_name: str
    turn_end: str
    user_open: str
    user_close: str
    keep: bool = False
    extract: Callable[[str], str | None] | None = None
    name: str = "review"
    stop_strings: tuple[str, ...] = STOP_STRINGS

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, keep: bool = False,
                      extract: Callable[[str], str | None] | None = None) -> ReviewProtocol:
        """The pieces of ``tokenizer``'s chat template around an assistant message and the user
        message after it, or a ``ConfigError`` naming the template when it has none or does not
        render a conversation as a plain sequence of messages."""
        where = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"agent protocol review needs a chat template (it writes the result as a user message); "
                              f"the tokenizer of {where} has none (use protocol tags)")
        base = [{"role": "user", "content": "probe"}]
        draft = {"role": "assistant", "content": _PROBE_DRAFT}
        shown = {"role": "user", "content": _PROBE_RESULT}

        def render(messages: list[dict], gen: bool) -> str:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)

        try:
            prompt, drafted, reviewed = render(base, True), render(base + [draft], False), render(base + [draft, shown], True)
        except Exception as exc:  # noqa: BLE001 - any template failure is the same refusal
            raise ConfigError(f"agent protocol review: the chat template of {where} fails on a multi-turn "
                              f"conversation ({type(exc).__name__}: {str(exc)[:200]}); use protocol tags") from None
        turn = drafted[len(prompt):] if drafted.startswith(prompt) else ""
        if not turn.startswith(_PROBE_DRAFT) or not reviewed.startswith(drafted) or reviewed.count(_PROBE_RESULT) != 1:
            raise ConfigError(f"agent protocol review: the chat template of {where} does not render an assistant "
                              "message and a user message after the prompt as they were given; use protocol tags")
        user_open, user_close = reviewed[len(drafted):].split(_PROBE_RESULT)
        return cls(template_name=where, turn_end=turn[len(_PROBE_DRAFT):], user_open=user_open,
                   user_close=user_close, keep=keep, extract=extract)

    def parse(self, text: str) -> Action:
        return parse_review_turn(text, self.extract, self.keep)

    def observation(self, body: str, turns_left: int) -> str:
        return f"{self.turn_end}{self.user_open}{review_text(body, turns_left)}{self.user_close}"

    def prompt(self, messages: list[dict], tokenizer: Any, max_turns: int, instruction: bool = True) -> str:
        from sqlcoach.prompts.chat import to_text

        return to_text(with_agent_instruction(messages, max_turns, "review") if instruction else messages, tokenizer)

    def call_text(self, sql: str) -> str:
        return sql


def make_protocol(config: AgentConfig, tokenizer: Any = None,
                  extract: Callable[[str], str | None] | None = None) -> TurnProtocol:
    """The protocol ``config.protocol`` names: ``TagProtocol(config.untagged)``, or the tokenizer's
    ``ToolProtocol`` or ``ReviewProtocol`` (a ``ConfigError`` without a tokenizer or with a template
    that cannot carry it)."""
    if config.protocol == "review":
        if tokenizer is None:
            raise ConfigError("agent protocol review needs the model's tokenizer (its chat template writes the turns)")
        return ReviewProtocol.for_tokenizer(tokenizer, config.keep, extract)
    if config.protocol == "tools":
        if tokenizer is None:
            raise ConfigError("agent protocol tools needs the model's tokenizer (its chat template renders the calls)")
        return ToolProtocol.for_tokenizer(tokenizer, extract)
    return TagProtocol(config.untagged, extract, keep=config.keep)


@dataclass
class AgentTurn:
    """One model turn of a trajectory, as the JSONL keeps it."""

    kind: str  # sql | solution | malformed
    text: str  # the model's text of this turn
    sql: str = ""  # the query as it runs (placeholders of an anonymizing template mapped back)
    observation: str = ""  # what was appended after the turn ("" when the trajectory ended)
    error: str | None = None  # the query's error class, or "malformed_turn"
    tokens: int = 0  # generated tokens of this turn
    exec_seconds: float = 0.0
    kept: bool = False  # a keep action: a solution turn whose sql is the last query that ran

    def as_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, "text": self.text, "sql": self.sql, "observation": self.observation,
               "error": self.error, "tokens": self.tokens, "exec_seconds": round(self.exec_seconds, 4)}
        if self.kept:
            out["kept"] = True
        return out


class SqlAgentEnv:
    """One trajectory's environment over ``db_path`` (see the module docstring).

    ``executor``: an object with ``run(jobs) -> list[ExecResult]`` (an ``ExecutorPool``: the hard
    kill of runaway queries); ``None`` runs ``sandbox.execute`` in this process (its deadline is
    checked in SQLite's VM, without a hard kill). ``restore(sql)`` maps the model's SQL to the SQL
    that runs (an anonymizing template's placeholders); ``encode(text)`` maps the rendered result back
to the names the model writes (the reverse, used when ``config.observation_names == "template"``);
``length`` measures observation budgets. ``protocol``: how turns are parsed and observations
written (``make_protocol``); default the tag protocol (a ``tools`` config must pass its
``ToolProtocol``, built once from the tokenizer)."""

    def __init__(self, db_path: str | None = None, config: AgentConfig = AgentConfig(), *,
                 executor: Any = None, restore: Callable[[str], str] | None = None,
                 length: LengthFn | None = None, extract: Callable[[str], str | None] | None = None,
                 encode: Callable[[str], str] | None = None, protocol: TurnProtocol | None = None):
        self.config = config
        if protocol is None:
            protocol = make_protocol(config, None, extract)
        elif protocol.name != config.protocol:
            raise ConfigError(f"the environment's protocol ({protocol.name}) is not its config's ({config.protocol})")
        self.protocol: TurnProtocol = protocol
        self.encode = encode
        self.executor = executor
        self.restore = restore or (lambda s: s)
        self.length: LengthFn = length or len
        self.extract = extract
        self.reset(db_path)

    # ------------------------------------------------------------------ state

    def reset(self, db_path: str | None = None, **_: Any) -> None:
        """Start a new trajectory (on ``db_path`` when given). Extra keyword arguments (a dataset
        row's other columns, as TRL's ``environment_factory`` passes them) are ignored."""
        if db_path is not None:
            self.db_path = str(db_path)
        elif not hasattr(self, "db_path"):
            self.db_path = None
        self.turns: list[AgentTurn] = []
        self.used = 0  # observation units spent
        self.done = False
        self.finish: str | None = None
        self.answer: str | None = None
        self._pending: AgentTurn | None = None

    @property
    def turns_left(self) -> int:
        return self.config.max_turns - len(self.turns)

    def last_query_ran(self) -> str | None:
        """The last query of this trajectory that ran without an error (what a keep action answers)."""
        return next((t.sql for t in reversed(self.turns) if t.kind == "sql" and t.sql and t.error is None), None)

    @property
    def queries_run(self) -> int:
        return sum(1 for t in self.turns if t.kind == "sql")

    # ------------------------------------------------------------------ a turn

    def act(self, text: str, tokens: int = 0) -> str | None:
        """Take the model's turn ``text``; return the SQL the caller must run (then ``observe``),
        or ``None`` when the turn needs no query (call ``observe(None)`` all the same)."""
        return self._act(text, None, tokens)

    def _act(self, text: str, a: Action | None, tokens: int = 0) -> str | None:
        if self.done:
            raise RuntimeError("the trajectory has ended; reset() first")
        if self._pending is not None:
            raise RuntimeError("act() twice without observe()")
        if a is None:
            a = self.protocol.parse(text)
        kept = None
        if a.kind == "keep":
            kept = self.last_query_ran()
            a = Action("solution") if kept else Action("malformed", reason="nothing to keep: no query ran without an error")
        turn = AgentTurn(a.kind, text, tokens=tokens)
        if kept:  # the keep action: the kept query is already restored (it ran)
            turn.sql, turn.kept = kept, True
        elif a.kind in ("sql", "solution"):
            turn.sql = self._restore(a.sql)
        else:
            turn.error = "malformed_turn"
            turn.observation = a.reason  # replaced by the rendered observation in observe()
        self.turns.append(turn)
        self._pending = turn
        if a.kind == "sql" and self.db_path and turn.sql:
            return turn.sql
        return None

    def observe(self, result: ExecResult | None, seconds: float = 0.0) -> str:
        """Finish the pending turn with its query's ``result``; the text to append to the
        trajectory (``""`` when it has ended: check ``done``)."""
        turn = self._pending
        if turn is None:
            raise RuntimeError("observe() without act()")
        self._pending = None
        turn.exec_seconds = seconds
        if turn.kind == "solution":
            self._end("solution", turn.sql)
            return ""
        if turn.kind == "sql":
            if result is None:  # no database, or nothing to run
                result = ExecResult(None, error="exec_error", message="no database to run the query on")
            turn.error = result.error
        else:
            result = ExecResult(None, error="malformed_turn", message=turn.observation)
        if self.turns_left <= 0:
            turn.observation = ""
            self.end_at_limit("turn_limit")
            return ""
        obs = self._render(result)
        if obs is None:
            turn.observation = ""
            self.end_at_limit("observation_budget")
            return ""
        turn.observation = obs
        return obs

    def step(self, text: str, tokens: int = 0, action: Action | None = None) -> str:
        """``act`` + run the query + ``observe``: one whole turn, for callers without batching
        (``action``: the turn already parsed)."""
        t0 = time.monotonic()
        sql = self._act(text, action, tokens)
        result = self.execute([(self.db_path, sql)])[0] if sql is not None else None
        return self.observe(result, time.monotonic() - t0 if sql is not None else 0.0)

    def execute(self, jobs: Sequence[tuple[str | None, str]]) -> list[ExecResult]:
        """Run ``(db_path, sql)`` jobs with this environment's executor and limits."""
        if self.executor is not None:
            return list(self.executor.run([(str(d), s) for d, s in jobs]))
        from sqlcoach.execution.sandbox import execute

        return [execute(str(d), s, self.config.limits()) for d, s in jobs]

    def run_sql(self, sql: str) -> str:
        """Run one SQL query on the database and return its result as text (the tool form of a
        turn, the method an ``environment_factory`` would expose): the observation as this
        environment's protocol writes it. A turn of the trajectory like any other."""
        text = self.step(self.protocol.call_text(sql), action=Action("sql", sql.strip()) if sql.strip()
                         else Action("malformed", reason="empty query"))
        return text or "the trajectory has ended: no turns or observation budget left"

    # ------------------------------------------------------------------ internals

    def _restore(self, sql: str) -> str:
        try:
            return self.restore(sql)
        except Exception:  # noqa: BLE001 - a restore failure must not end the trajectory; run what was written
            return sql

    def _render(self, result: ExecResult) -> str | None:
        """The observation within what is left of the budget; ``None`` when not even the wrapper fits."""
        left = self.config.observation_budget - self.used
        overhead = self.length(self.protocol.observation("", self.turns_left))
        cap = min(self.config.per_observation, left)
        room = cap - overhead
        while room >= 1:
            obs = self.protocol.observation(self._body(result, room), self.turns_left)
            spent = self.length(obs)
            if spent <= cap:
                self.used += spent
                return obs
            # a non-additive length (tokens across the wrapper's seams): render the body smaller
            room = min(room - 1, room - (spent - cap))
        return None

    def _body(self, result: ExecResult, room: int) -> str:
        """The rendered result within ``room``; names encoded when asked, rendered smaller until the
        encoded text fits (placeholders can be longer than the names they replace)."""
        budget = room
        while True:
            body = render_result(result, budget=budget, length=self.length)
            if self.encode is None or self.config.observation_names == "real":
                return body
            try:
                body = self.encode(body)
            except Exception:  # noqa: BLE001 - an unencodable text is shown as rendered, never a crash
                body = render_result(result, budget=room, length=self.length)
                return body
            over = self.length(body) - room
            if over <= 0:
                return body
            if budget <= 0:
                return ""
            budget = max(0, budget - over)

    def answer_as_written(self) -> str:
        """The final answer as the model wrote it (before an anonymizing template's placeholders were
        mapped back): what a reward that decodes with the row's ``sql_names`` must read; ``""``
        when the trajectory gave no answer."""
        if not self.answer:
            return ""
        for t in reversed(self.turns):
            if t.kind in ("solution", "sql") and t.sql == self.answer and not t.kept:
                return self.protocol.parse(t.text).sql or self.answer
        return self.answer

    def _end(self, finish: str, answer: str | None) -> None:
        self.done = True
        self.finish = finish
        self.answer = answer or None

    def end_at_limit(self, finish: str) -> None:
        """End the trajectory without a solution (``finish`` says why): the answer is the last
        query run under ``on_limit="last_query"``, none under ``"none"``."""
        last = next((t.sql for t in reversed(self.turns) if t.kind == "sql" and t.sql), None)
        self._end(finish, last if self.config.on_limit == "last_query" else None)


# ---------------------------------------------------------------------- the batched loop (HF models)


@dataclass
class Rollout:
    """One trajectory as tokens (what a GRPO ``rollout_func`` returns) and as turns.

    ``completion_ids`` holds the model's tokens and the observations' tokens in order; ``env_mask``
    is 1 on the model's tokens and 0 on observation tokens (TRL's ``env_mask``)."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    gen_seconds: float = 0.0
    exec_seconds: float = 0.0


def _cut_turn(ids: list[int], stop_ids: set[int], tokenizer: Any,
              stop_strings: Sequence[str] = STOP_STRINGS) -> tuple[list[int], str, bool]:
    """A generated row up to its first end token, as ``(ids, text cut after the first stop string,
    ended_by_eos)``; a trailing end token is dropped from the ids (the trajectory may go on)."""
    ended = False
    for j, t in enumerate(ids):
        if t in stop_ids:
            ids, ended = ids[:j], True
            break
    text = tokenizer.decode(ids, skip_special_tokens=True)
    cut = min((text.find(s) + len(s) for s in stop_strings if s in text), default=-1)
    if cut >= 0:
        text = text[:cut]
    return ids, text, ended


def generate_turns(model: Any, tokenizer: Any, inputs: list[list[int]], *, max_new_tokens: list[int],
                   temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 8,
                   seed: int = 0, stop_strings: Sequence[str] = STOP_STRINGS, prefix_cache: PrefixCache | None = None,
                   ) -> tuple[list[list[int]], list[str], list[bool]]:
    """One model turn for each of ``inputs`` (token ids): generation stops at the first of
    ``stop_strings`` (the protocol's: ``</sql>`` / ``</solution>`` for tags, ``</tool_call>`` for
    tools; transformers' stop strings) or an end token. Returns per input the new ids
    (end token dropped), the turn's text (cut after the stop string) and whether an end token
    ended it. Batches are grouped by length, as ``generate.hf.generate_texts`` does; with
    ``prefix_cache`` (``sqlcoach.generate.prefix_cache.PrefixCache``) they are instead formed from
    inputs sharing a token prefix, which is encoded once per batch (a batch whose cache cannot be
    used is generated plainly), as ``generate_texts`` does with its cache on."""
    import torch

    from sqlcoach.generate.hf import decoding_config, eos_ids, neutral_generate
    from sqlcoach.generate.prefix_cache import BATCH_OVERHEAD_PER_NEW_TOKEN
    from sqlcoach.models.prefix_kv import plan_batches

    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))
    out_ids: list[list[int]] = [[] for _ in inputs]
    out_text: list[str] = ["" for _ in inputs]
    out_end: list[bool] = [False for _ in inputs]
    stop_ids = set(eos_ids(model, tokenizer))
    if tokenizer.pad_token_id is not None:
        stop_ids.add(tokenizer.pad_token_id)  # rows finished early are padded with it
    if prefix_cache is not None:
        batches = plan_batches(inputs, batch_size,
                               batch_overhead=BATCH_OVERHEAD_PER_NEW_TOKEN * max(max_new_tokens, default=1))
    else:
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    torch.manual_seed(seed)
    model.eval()
    with torch.inference_mode():
        for idx in batches:
            cfg = decoding_config(model, tokenizer, do_sample=temperature > 0,
                                  temperature=temperature if temperature > 0 else 1.0, top_p=top_p, top_k=0,
                                  max_new_tokens=max(max_new_tokens[i] for i in idx))
            cfg.stop_strings = list(stop_strings)
            done = None
            if prefix_cache is not None:
                pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else cfg.eos_token_id[0]
                done = prefix_cache.generate(cfg, [inputs[i] for i in idx], n=1, pad_id=pad_id, tokenizer=tokenizer)
            if done is not None:
                seqs, width = done
            else:
                batch = tokenizer.pad({"input_ids": [inputs[i] for i in idx]}, return_tensors="pt")
                batch = {k: v.to(device) for k, v in batch.items()}
                seqs = neutral_generate(model, cfg, **batch, tokenizer=tokenizer)
                width = batch["input_ids"].shape[1]
            for row, ids in enumerate(seqs[:, width:].tolist()):
                i = idx[row]
                ids = ids[: max_new_tokens[i]]
                out_ids[i], out_text[i], out_end[i] = _cut_turn(ids, stop_ids, tokenizer, stop_strings)
    return out_ids, out_text, out_end


def run_agent(model: Any, tokenizer: Any, prompts: Sequence[str], envs: Sequence[SqlAgentEnv], *,
              max_new_tokens: int = 256, max_total_tokens: int = 1024, temperature: float = 0.0,
              top_p: float = 1.0, batch_size: int = 8, seed: int = 0, executor: Any = None,
              on_round: Callable[[int, int], None] | None = None,
              prefix_cache: PrefixCache | None = None) -> list[Rollout]:
    """Run one trajectory per prompt (chat-formatted text) to its end, batched across trajectories.

    Each round generates the next turn of every active trajectory (at most ``max_new_tokens`` per
    turn and ``max_total_tokens`` per trajectory, observations included, as GRPO's
    ``max_completion_length`` bounds it), runs their queries in one ``executor.run`` call (default:
    each env's own executor), and appends each observation's tokens with ``env_mask`` 0, cut to the
    room left (``len(completion_ids) <= max_total_tokens`` always). A trajectory out of tokens ends
    as at the turn limit (``finish="length"``). ``on_round(round,
    active)`` reports progress.

    ``prefix_cache`` (a ``sqlcoach.generate.prefix_cache.PrefixCache`` the caller keeps, and reads
    ``cached_tokens`` from; ``agent_prefix_cache`` makes one by the ``auto|on|off`` rule): every
    round's batches are formed from trajectories sharing a token prefix (the system prompt and
    schema of one database, or a whole shared history), encoded once per batch and reused across
    rounds while it stays shared. The text of a greedy trajectory is the same with and without it
    (the same queries over the same keys at the same positions; ``tests/unit/generate/
    test_agent_prefix_cache.py`` compares the tokens). A trajectory's own history is re-encoded at
    each round past what its batch shares (its generated keys are not carried between rounds)."""
    if len(prompts) != len(envs):
        raise ValueError("one environment per prompt")
    stops = {tuple(e.protocol.stop_strings) for e in envs}
    if len(stops) > 1:
        raise ValueError("the trajectories of one run_agent call must share a protocol")
    stop_strings = stops.pop() if stops else STOP_STRINGS
    rolls = [Rollout(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    rnd = 0
    while True:
        active = [i for i, e in enumerate(envs) if not e.done]
        for i in list(active):
            room = max_total_tokens - len(rolls[i].completion_ids)
            if room < 1:
                envs[i].end_at_limit("length")
                active.remove(i)
        if not active:
            break
        rnd += 1
        if on_round is not None:
            on_round(rnd, len(active))
        t0 = time.monotonic()
        new_ids, texts, _ = generate_turns(
            model, tokenizer, [rolls[i].prompt_ids + rolls[i].completion_ids for i in active],
            max_new_tokens=[min(max_new_tokens, max_total_tokens - len(rolls[i].completion_ids)) for i in active],
            temperature=temperature, top_p=top_p, batch_size=batch_size, seed=seed + rnd, stop_strings=stop_strings,
            prefix_cache=prefix_cache)
        gen_s = (time.monotonic() - t0) / len(active)  # batched: each trajectory's share
        jobs: list[tuple[int, str]] = []
        for k, i in enumerate(active):
            rolls[i].completion_ids += new_ids[k]
            rolls[i].env_mask += [1] * len(new_ids[k])
            rolls[i].gen_seconds += gen_s
            sql = envs[i].act(texts[k], tokens=len(new_ids[k]))
            if sql is not None:
                jobs.append((i, sql))
        t1 = time.monotonic()
        results: dict[int, ExecResult] = {}
        if jobs:
            run = executor.run if executor is not None else None
            if run is not None:
                res = run([(str(envs[i].db_path), s) for i, s in jobs])
            else:
                res = [envs[i].execute([(envs[i].db_path, s)])[0] for i, s in jobs]
            results = {i: r for (i, _), r in zip(jobs, res)}
        exec_s = (time.monotonic() - t1) / max(1, len(jobs))
        for i in active:
            secs = exec_s if i in results else 0.0
            rolls[i].exec_seconds += secs
            obs = envs[i].observe(results.get(i), secs)
            if obs:
                # cut, not dropped: an observation never takes the trajectory past max_total_tokens
                # (the trajectory then ends by length at the next round)
                ids = tokenizer(obs, add_special_tokens=False)["input_ids"]
                ids = ids[: max(0, max_total_tokens - len(rolls[i].completion_ids))]
                rolls[i].completion_ids += ids
                rolls[i].env_mask += [0] * len(ids)
    return rolls
