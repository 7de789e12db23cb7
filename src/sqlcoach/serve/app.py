"""The HTTP side of ``sqlcoach serve``: an OpenAI-compatible API, ``/v1/sql`` and the web page.

Routes (``build_app``): ``GET /v1/models`` (and ``/v1/models/{id}``), ``POST /v1/chat/completions``
(``stream`` true or false), ``POST /v1/completions``, ``GET /v1/databases``,
``GET /v1/databases/{name}/schema`` (tables, columns, keys, row counts, a few values), ``POST /v1/sql``
(``{database, question}`` -> ``{sql, columns, rows, error, seconds, ...}``; ``n`` candidates chosen by
``select``, a verifier's rules with ``--verifier``, the response carrying votes and scores;
``agent: true`` runs the agent's turns through the engine and returns them), ``POST /v1/sql/execute``
(``{database, sql}``: the user's own SQL, in the same sandbox as the model's: read-only, a deadline,
a row cap), ``GET /health`` and the page at ``/``. Errors have OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``.

What a client gets for what (each is a test in tests/unit/serve/):

* a body over ``max_body_bytes``: 413; malformed JSON, a missing or ill-typed field, ``n > 1``
  (chat and completions); on ``/v1/sql`` ``n`` over ``max_n`` or not a strict integer, an unknown
  ``select`` or one without ``n >= 2``, a verifier rule on a server without a verifier
  (``verifier_not_loaded``), ``max_turns`` over ``max_agent_turns``: 400 (``param`` names the
  field); an unknown model: 404; an unknown database: 404 (naming every database served); a prompt
  that with its ``max_tokens`` does not fit the context length: 400; a wrong or missing API key
  (with ``--api-key``): 401;
* a field this server does not implement, set to anything but its neutral value (``UNSUPPORTED``:
  ``tools``/``tool_choice``/``functions``, a ``tool`` or ``function`` message or an assistant
  message with ``tool_calls``, ``logprobs: true``/``top_logprobs``, ``response_format`` other than
  text, non-zero ``presence_penalty``/``frequency_penalty``, ``logit_bias``; for completions also
  ``echo``, ``suffix``, ``best_of > 1``): 400 naming the field (``param``), never a silent 200 that
  ignored it. ``seed`` is implemented: a sampled request with a seed is generated alone after
  seeding (``serve.engine``), so it is reproducible on the same server; greedy ignores it;
* a full queue, or a deadline that passed while the request waited: 503 with ``Retry-After``;
* a generation that reaches its deadline: the text so far, ``finish_reason: "length"``;
* anything unexpected inside the server: a JSON 500, logged with its traceback; the process
  and every other request go on.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from sqlcoach.errors import DataError
from sqlcoach.execution.select import DEFAULT_SELECTOR
from sqlcoach.runtime.web import ApiError, add_error_handlers, bearer_auth, error_body
from sqlcoach.serve.engine import Engine, GenParams, Job, JobResult, QueueFull, QueueTimeout

log = logging.getLogger("sqlcoach.serve")
RETRY_AFTER_S = 1


def busy(message: str) -> ApiError:
    return ApiError(503, message, type="server_busy", code="queue_full", headers={"Retry-After": str(RETRY_AFTER_S)})


# -- request bodies (unknown fields are ignored, as OpenAI's clients send many) -----------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChatMessage(_Body):
    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[Any] | None = None
    function_call: Any = None


class _Sampling(_Body):
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = 1
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    seed: int | None = None
    # accepted only at their neutral value (``UNSUPPORTED``): declared so that a set value is seen
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None


class ChatRequest(_Sampling):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(_Sampling):
    model: str
    prompt: str | list[str]
    logprobs: int | None = None
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None


def _neutral_response_format(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and v.get("type") == "text")


#: (field, is its value neutral?, why it is refused): a request that sets one of these to anything
#: else gets a 400 naming the field, as OpenAI-compatible servers answer what they cannot do
UNSUPPORTED: tuple[tuple[str, Any, str], ...] = (
    ("tools", lambda v: not v, "tool calling is not supported by this server"),
    ("tool_choice", lambda v: v in (None, "none"), "tool calling is not supported by this server"),
    ("functions", lambda v: not v, "function calling is not supported by this server"),
    ("function_call", lambda v: v in (None, "none"), "function calling is not supported by this server"),
    ("logprobs", lambda v: v in (None, False, 0), "logprobs are not supported by this server"),
    ("top_logprobs", lambda v: v in (None, 0), "logprobs are not supported by this server"),
    ("response_format", _neutral_response_format,
     "response_format other than {\"type\": \"text\"} (JSON mode, JSON schema) is not supported by this server"),
    ("presence_penalty", lambda v: v in (None, 0), "presence_penalty is not supported by this server (send 0 or leave it out)"),
    ("frequency_penalty", lambda v: v in (None, 0), "frequency_penalty is not supported by this server (send 0 or leave it out)"),
    ("logit_bias", lambda v: not v, "logit_bias is not supported by this server"),
    ("echo", lambda v: not v, "echo is not supported by this server"),
    ("suffix", lambda v: not v, "suffix is not supported by this server"),
    ("best_of", lambda v: v in (None, 1), "best_of must be 1: this server returns one choice per request"),
)


def _refuse_unsupported(req: _Sampling) -> None:
    """A 400 (``unsupported_parameter``) for the first ``UNSUPPORTED`` field ``req`` sets."""
    for name, neutral, why in UNSUPPORTED:
        if name in type(req).model_fields and not neutral(getattr(req, name)):
            raise ApiError(400, f"{name}: {why}", code="unsupported_parameter", param=name)


class SqlRequest(_Body):
    database: str = Field(min_length=1, max_length=256)
    question: str = Field(min_length=1, max_length=4000)
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    # strict: a string, a float or a bool where a count is expected is a 400, not coerced
    n: int = Field(1, ge=1, strict=True)
    select: str | None = Field(None, min_length=1, max_length=64)
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    agent: bool = Field(False, strict=True)
    max_turns: int | None = Field(None, ge=1, strict=True)


class ExecuteRequest(_Body):
    database: str = Field(min_length=1, max_length=256)
    sql: str = Field(min_length=1, max_length=20000)


@dataclass
class ServeSettings:
    model_name: str
    context_length: int
    api_key: str | None = None
    max_body_bytes: int = 1 << 20
    request_timeout: float = 60.0  # seconds per request, queue wait included
    default_max_tokens: int = 256
    default_temperature: float = 0.0
    sql_max_tokens: int = 256
    max_n: int = 16  # candidates one /v1/sql request may ask for (more: 400)
    sample_temperature: float = 0.8  # /v1/sql with n > 1 and no temperature (as predict --n)
    agent_turns: int = 5  # /v1/sql with agent: turns when the request names none
    max_agent_turns: int = 10  # and the most it may name (more: 400)
    agent_instruction: bool = True  # append the agent protocol's instruction to the prompt
    agent_protocol: str = "tags"  # tags, or tools: the model's chat template writes run_sql calls and their results
    agent_keep: bool = False  # tags or review: an empty <solution></solution> answers with the last query that ran


class Server:
    """What the routes share: the engine, the request-side tokenizer, the prompt recipe, the
    databases and the sandbox. ``tokenizer`` is a private copy: the engine thread decodes with its
    own, and a fast tokenizer must not be used from two threads at once."""

    def __init__(self, engine: Engine, settings: ServeSettings, *, recipe: Any, databases: Any, runner: Any,
                 model_path: str = "", verifier: Any = None):
        self.engine = engine
        self.settings = settings
        self.recipe = recipe
        self.builder = recipe.builder()
        self.databases = databases
        self.runner = runner
        self.model_path = model_path
        self.verifier = verifier  # a models.verifier.Verifier (``--verifier DIR``) or None
        self.tokenizer = copy.deepcopy(engine.tokenizer)
        from sqlcoach.generate.agent import AgentConfig, make_protocol

        # the agent's protocol, built once; tools: a template without tool calls is refused here, at start-up
        self.agent_protocol = make_protocol(AgentConfig(protocol=settings.agent_protocol, keep=settings.agent_keep),
                                            self.tokenizer)
        self._tok_lock = threading.Lock()
        self._select_lock = threading.Lock()  # a verifier's model, tokenizer and cache serve one call at a time
        self.started = int(time.time())

    def encode(self, text: str) -> list[int]:
        with self._tok_lock:
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat_text(self, messages: list[dict]) -> str:
        from sqlcoach.prompts.chat import to_text

        with self._tok_lock:
            return to_text(messages, self.tokenizer)

    def sql_prompt(self, ex: Any) -> str:
        from sqlcoach.serve.text2sql import prompt_for

        with self._tok_lock:
            return prompt_for(self.builder, self.tokenizer, ex)

    def token_count(self, text: str) -> int:
        """Tokens of ``text`` (the agent's observation budgets are counted in them)."""
        return len(self.encode(text))

    def agent_prompt(self, ex: Any, max_turns: int) -> str:
        """The agent's prompt for ``ex`` (``predict --agent``'s); a ``DataError`` when the
        database's schema cannot be read."""
        from sqlcoach.generate.agent_predict import agent_prompts

        self.builder.schema_text(ex.db_path)  # an unreadable database is an error, not an empty schema
        with self._tok_lock:
            return agent_prompts([ex], self.tokenizer, self.builder, max_turns, self.settings.agent_instruction,
                                 self.agent_protocol)[0]

    def selector(self, name: str) -> Any:
        """The selection rule ``name`` (``execution.select``), or a learned one over the verifier
        loaded at start-up; a 400 for an unknown name or a learned rule without a verifier."""
        from sqlcoach.execution.select import LEARNED_SELECTORS, SELECTORS

        if name in SELECTORS:
            return SELECTORS[name]
        if name not in LEARNED_SELECTORS:
            raise ApiError(400, f"unknown select {name!r}; choose one of {', '.join([*SELECTORS, *LEARNED_SELECTORS])}",
                           param="select")
        if self.verifier is None:
            raise ApiError(400, f"select {name!r} reads a trained verifier and this server has none "
                           "(start it with --verifier DIR)", code="verifier_not_loaded", param="select")
        from sqlcoach.generate.verifier_select import VerifierSelector

        return VerifierSelector(self.verifier, name)

    def select(self, selector: Any, candidates: Any) -> Any:
        """``selector(candidates)``, one call at a time (a verifier is not thread-safe)."""
        with self._select_lock:
            return selector(candidates)

    def close(self) -> None:
        self.engine.close()
        if self.runner is not None:
            self.runner.close()


# -- helpers shared by the routes -----------------------------------------------------------------
def _check_model(server: Server, name: str | None) -> None:
    if name is not None and name != server.settings.model_name:
        raise ApiError(404, f"The model '{name}' does not exist; this server serves '{server.settings.model_name}'",
                       code="model_not_found", param="model")


def _params(server: Server, req: _Sampling, prompt_len: int, max_tokens: int | None) -> GenParams:
    s = server.settings
    if req.n != 1:
        raise ApiError(400, "n must be 1: this server returns one choice per request", param="n")
    room = s.context_length - prompt_len
    if max_tokens is not None and prompt_len + max_tokens > s.context_length:
        raise ApiError(400, f"This model's maximum context length is {s.context_length} tokens. However, you "
                       f"requested {prompt_len + max_tokens} tokens ({prompt_len} in the prompt, {max_tokens} in "
                       "the completion). Please reduce the length of the prompt or max_tokens.",
                       code="context_length_exceeded", param="max_tokens")
    if room < 1:
        raise ApiError(400, f"This model's maximum context length is {s.context_length} tokens, and the prompt "
                       f"alone has {prompt_len}. Please reduce the length of the prompt.",
                       code="context_length_exceeded", param="messages")
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    if len(stop) > 4 or any(not x for x in stop):
        raise ApiError(400, "stop takes at most 4 non-empty strings", param="stop")
    temperature = s.default_temperature if req.temperature is None else req.temperature
    return GenParams(max_new_tokens=max_tokens if max_tokens is not None else min(s.default_max_tokens, room),
                     temperature=temperature, top_p=1.0 if req.top_p is None else req.top_p, stop=stop,
                     seed=req.seed)


def _submit(server: Server, prompt_ids: list[int], params: GenParams, *, stream: bool = False,
            deadline: float | None = None) -> tuple[Job, Any]:
    """Queue a job; returns ``(job, asyncio.Queue)`` receiving ``("text", piece)`` and ``("done", outcome)``.
    ``deadline``: the job's (monotonic seconds; default ``request_timeout`` from now)."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()

    def put(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(q.put_nowait, item)
        except RuntimeError:  # the event loop is gone (shutdown): nobody is waiting any more
            pass

    if deadline is None:
        deadline = time.monotonic() + server.settings.request_timeout
    job = Job(prompt_ids=prompt_ids, params=params, deadline=deadline,
              on_done=lambda outcome: put(("done", outcome)),
              on_text=(lambda piece: put(("text", piece))) if stream else None)
    try:
        server.engine.submit(job)
    except QueueFull as exc:
        raise busy(f"the server is busy: {exc}; retry after {RETRY_AFTER_S} s") from None
    return job, q


def _outcome(outcome: Any) -> JobResult:
    if isinstance(outcome, JobResult):
        return outcome
    if isinstance(outcome, (QueueFull, QueueTimeout)):
        raise busy(f"the server is busy: {outcome}")
    raise outcome  # an internal error: the 500 handler logs it


#: Seconds past a job's deadline after which a request stops waiting for the engine (which
#: answers every job, so this only guards against a bug): the client gets a JSON 500.
ENGINE_GRACE_S = 30.0


async def _next(job: Job, q: asyncio.Queue) -> tuple[str, Any]:
    left = max(0.0, job.deadline - time.monotonic()) + ENGINE_GRACE_S
    try:
        return await asyncio.wait_for(q.get(), timeout=left)
    except asyncio.TimeoutError:
        raise RuntimeError("the generation engine did not answer a request in time") from None


async def _wait(job: Job, q: asyncio.Queue) -> JobResult:
    try:
        while True:
            kind, value = await _next(job, q)
            if kind == "done":
                return _outcome(value)
    finally:
        job.cancel()  # no-op when finished; stops the row when the request was cancelled


async def _generate(server: Server, req: Any, ids: list[int], max_tokens: int | None, *,
                    chat: bool) -> tuple[Any, JobResult | None]:
    """Queue one chat or text completion: ``(StreamingResponse, None)`` when ``req.stream``, else
    the response head (id, object, created, model) and the finished result."""
    params = _params(server, req, len(ids), max_tokens)
    job, q = _submit(server, ids, params, stream=req.stream)
    rid, created = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}", int(time.time())
    if req.stream:
        usage = bool((req.stream_options or {}).get("include_usage"))
        return StreamingResponse(_stream(job, q, rid, created, server.settings.model_name, usage, chat=chat),
                                 media_type="text/event-stream"), None
    res = await _wait(job, q)
    return {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": created,
            "model": server.settings.model_name}, res


def _usage(res: JobResult) -> dict[str, int]:
    return {"prompt_tokens": res.prompt_tokens, "completion_tokens": res.completion_tokens,
            "total_tokens": res.prompt_tokens + res.completion_tokens}


def _message_text(m: ChatMessage) -> str:
    if m.content is None or isinstance(m.content, str):
        return m.content or ""
    parts = []
    for part in m.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(400, "only text content parts are supported", param="messages")
        parts.append(part["text"])
    return "".join(parts)


_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _chat_messages(req: ChatRequest) -> list[dict]:
    out = []
    for m in req.messages:
        if m.role in ("tool", "function") or m.tool_calls or m.function_call:
            raise ApiError(400, f"messages: tool calling is not supported by this server (a {m.role!r} message"
                           f"{' with tool calls' if m.tool_calls or m.function_call else ''})",
                           code="unsupported_parameter", param="messages")
        if m.role not in _ROLES:
            raise ApiError(400, f"unknown role {m.role!r} (known: {', '.join(_ROLES)})", param="messages")
        out.append({"role": _ROLES[m.role], "content": _message_text(m)})
    return out


def _sse(obj: Any) -> str:
    import json

    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


# -- the app --------------------------------------------------------------------------------------
def build_app(server: Server) -> FastAPI:
    """The FastAPI app serving ``server`` (see the module docstring for the routes and errors)."""
    app = FastAPI(title="sqlcoach serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    add_error_handlers(app, log)
    auth = Depends(bearer_auth(server.settings.api_key))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        e = server.engine
        return {"status": "ok", "queued": e.queued(), "running": e.running, "batches": e.batches,
                "batched_requests": e.batched_jobs}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("sqlcoach.serve").joinpath("page.html").read_text(encoding="utf-8"))

    def model_card() -> dict[str, Any]:
        return {"id": server.settings.model_name, "object": "model", "created": server.started,
                "owned_by": "sqlcoach", "max_model_len": server.settings.context_length,
                "sqlcoach_recipe": server.recipe.as_dict()}

    @app.get("/v1/models", dependencies=[auth])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}", dependencies=[auth])
    async def model(model_id: str) -> dict[str, Any]:
        _check_model(server, model_id)
        return model_card()

    @app.post("/v1/chat/completions", dependencies=[auth])
    async def chat(req: ChatRequest) -> Any:
        _check_model(server, req.model)
        _refuse_unsupported(req)
        text = await asyncio.to_thread(server.chat_text, _chat_messages(req))
        ids = await asyncio.to_thread(server.encode, text)
        head, res = await _generate(server, req, ids, req.max_completion_tokens or req.max_tokens, chat=True)
        if res is None:
            return head
        return {**head,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": res.text},
                             "finish_reason": res.finish_reason, "logprobs": None}],
                "usage": _usage(res), "sqlcoach": {"seconds": round(res.seconds, 4), "deadline_hit": res.deadline_hit}}

    @app.post("/v1/completions", dependencies=[auth])
    async def completions(req: CompletionRequest) -> Any:
        _check_model(server, req.model)
        _refuse_unsupported(req)
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if len(prompts) != 1:
            raise ApiError(400, "prompt must be one string (or a list of one)", param="prompt")
        ids = await asyncio.to_thread(server.encode, prompts[0])
        head, res = await _generate(server, req, ids, req.max_tokens if req.max_tokens is not None else 16, chat=False)
        if res is None:
            return head
        return {**head,
                "choices": [{"index": 0, "text": res.text, "finish_reason": res.finish_reason, "logprobs": None}],
                "usage": _usage(res)}

    @app.get("/v1/databases", dependencies=[auth])
    async def databases() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name} for name in server.databases.names()]}

    @app.get("/v1/databases/{name}/schema", dependencies=[auth])
    async def schema(name: str) -> dict[str, Any]:
        from sqlcoach.serve.text2sql import schema_json

        db_path = _database(server, name)
        try:
            return await asyncio.to_thread(schema_json, db_path, name)
        except DataError as exc:
            raise ApiError(422, f"cannot read the schema of database {name!r}: {exc}", param="database") from None

    @app.post("/v1/sql", dependencies=[auth])
    async def sql(req: SqlRequest) -> dict[str, Any]:
        return await _answer_sql(server, req)

    @app.post("/v1/sql/execute", dependencies=[auth])
    async def execute(req: ExecuteRequest) -> dict[str, Any]:
        from sqlcoach.serve.text2sql import run_user_sql

        db_path = _database(server, req.database)
        answer = await asyncio.to_thread(run_user_sql, req.sql, db_path, server.runner, database=req.database)
        return answer.as_json()

    return app


def _database(server: Server, name: str) -> str:
    """The file of the served database ``name`` (a dictionary lookup); a 404 naming every one."""
    try:
        return server.databases.path(name)
    except DataError as exc:
        raise ApiError(404, str(exc), code="database_not_found", param="database") from None


async def _answer_sql(server: Server, req: SqlRequest) -> dict[str, Any]:
    """``/v1/sql``: one greedy answer; ``n`` sampled candidates and a selection rule (``select``);
    ``agent``: trajectories that run queries before they answer (``_agent``). Every step that
    tokenizes, executes SQL or scores runs off the event loop; every generation shares the
    request's one deadline."""
    from sqlcoach.serve.text2sql import answer_from_text, example_for, sql_of

    _check_model(server, req.model)
    s = server.settings
    if req.n > s.max_n:
        raise ApiError(400, f"n must be at most {s.max_n} on this server (--max-n), got {req.n}", param="n")
    if req.select is not None and req.n < 2:
        raise ApiError(400, "select chooses among candidates: it needs n >= 2", param="select")
    selector = server.selector(req.select or DEFAULT_SELECTOR) if req.n > 1 else None
    if req.n > 1 and req.temperature == 0:
        raise ApiError(400, "n > 1 samples its candidates: temperature must be > 0 (or left out)", param="temperature")
    if req.max_turns is not None and not req.agent:
        raise ApiError(400, "max_turns is for agent requests (\"agent\": true)", param="max_turns")
    if req.max_turns is not None and req.max_turns > s.max_agent_turns:
        raise ApiError(400, f"max_turns must be at most {s.max_agent_turns} on this server, got {req.max_turns}",
                       param="max_turns")
    deadline = time.monotonic() + s.request_timeout
    db_path = _database(server, req.database)
    ex = example_for(req.question, db_path, req.database)
    temperature = req.temperature if req.temperature is not None else (
        s.sample_temperature if req.n > 1 else s.default_temperature)
    if req.agent:
        return await _agent(server, req, ex, selector, temperature, deadline)
    try:
        prompt = await asyncio.to_thread(server.sql_prompt, ex)
    except DataError as exc:
        raise ApiError(422, f"cannot prompt for database {req.database!r}: {exc}", param="database") from None
    ids = await asyncio.to_thread(server.encode, prompt)
    max_tokens = req.max_tokens or min(s.sql_max_tokens, max(1, s.context_length - len(ids)))
    params = _params(server, _Sampling(temperature=temperature), len(ids), max_tokens)
    results = await _generate_all(server, [ids] * req.n, params, deadline)
    gen_s = max(r.seconds for r in results)  # the candidates are generated side by side
    if selector is None:
        answer = await asyncio.to_thread(answer_from_text, results[0].text, ex, server.recipe.template, server.runner,
                                         database=req.database, generation_seconds=gen_s)
        return answer.as_json()
    raws = [r.text for r in results]
    sqls = [sql_of(t, ex, server.recipe.template) for t in raws]
    answer = await asyncio.to_thread(_select, server, ex, raws, sqls, selector, gen_s, deadline)
    return answer.as_json()


def _select(server: Server, ex: Any, raws: list[str], sqls: list[str], selector: Any, gen_s: float,
            deadline: float) -> Any:
    """``text2sql.select_answer`` with the server's runner, one selection at a time, and the schema
    text the policy saw for a selector that reads it (a verifier). Runs in a worker thread."""
    from sqlcoach.serve.text2sql import select_answer

    schema = server.builder.lenient_schema_text(ex) if getattr(selector, "reads_schema", False) else ""
    return select_answer(ex, sqls, raws, server.runner, lambda c: server.select(selector, c), database=ex.db_id,
                         schema_text=schema, generation_seconds=gen_s, deadline=deadline)


async def _generate_all(server: Server, inputs: list[list[int]], params: GenParams, deadline: float) -> list[JobResult]:
    """One job per input, queued together (the engine batches jobs with the same settings) under
    one deadline; every job is cancelled when one cannot be queued or fails."""
    subs: list[tuple[Job, Any]] = []
    try:
        for ids in inputs:
            subs.append(_submit(server, ids, params, deadline=deadline))
    except ApiError:
        for job, _ in subs:
            job.cancel()
        raise
    got = await asyncio.gather(*(_wait(job, q) for job, q in subs), return_exceptions=True)
    for job, _ in subs:
        job.cancel()  # no-op for the finished
    for g in got:
        if isinstance(g, BaseException):
            raise g
    return list(got)  # type: ignore[arg-type]


async def _agent(server: Server, req: SqlRequest, ex: Any, selector: Any, temperature: float,
                 deadline: float) -> dict[str, Any]:
    """``/v1/sql`` with ``agent``: ``n`` trajectories (``generate.agent``'s environment, its tags and
    observations) run side by side through the engine, each turn a job under the request's
    deadline; one answer (n = 1) or the answer ``selector`` chose among their final answers, with
    every turn (query, observation) of the chosen trajectory, and with n > 1 every trajectory."""
    from sqlcoach.generate.agent import AgentConfig
    from sqlcoach.serve.text2sql import SqlAnswer, fill_result, run_candidates

    s = server.settings
    limits = server.runner.limits
    try:
        config = AgentConfig(max_turns=req.max_turns or s.agent_turns, timeout=limits.timeout,
                             max_rows=limits.max_rows, max_bytes=limits.max_bytes, protocol=s.agent_protocol,
                             keep=s.agent_keep)
        prompt = await asyncio.to_thread(server.agent_prompt, ex, config.max_turns)
    except DataError as exc:
        raise ApiError(422, f"cannot prompt for database {req.database!r}: {exc}", param="database") from None
    ids = await asyncio.to_thread(server.encode, prompt)
    if len(ids) >= s.context_length:
        raise ApiError(400, f"the agent prompt alone has {len(ids)} tokens, the model's context {s.context_length}",
                       code="context_length_exceeded", param="question")
    max_tokens = req.max_tokens or s.sql_max_tokens
    tasks = [asyncio.ensure_future(_trajectory(server, ex, config, ids, max_tokens, temperature, deadline))
             for _ in range(req.n)]
    try:
        trajs = await asyncio.gather(*tasks)
    finally:  # one trajectory failed (a full queue: 503) or the client left: stop the others' turns
        for t in tasks:
            t.cancel()
    gen_s = max(t["generation_seconds"] for t in trajs)
    if selector is None:
        t = trajs[0]
        answer = SqlAnswer(database=ex.db_id, question=ex.question, sql=t["sql"], raw=t["raw"], generation_seconds=gen_s)
        t0 = time.monotonic()
        if t["sql"]:
            res = (await asyncio.to_thread(run_candidates, [t["sql"]], str(ex.db_path), server.runner, deadline=deadline))[0]
            fill_result(answer, res)
        else:
            answer.error = f"no_sql: the trajectory ended ({t['finish']}) without an answer"
        answer.execution_seconds = round(t["execution_seconds"] + time.monotonic() - t0, 4)
        answer.generation_seconds = round(gen_s, 4)
        answer.seconds = round(answer.generation_seconds + answer.execution_seconds, 4)
        return {**answer.as_json(), "agent": True, "finish": t["finish"], "turns": t["turns"]}
    answer = await asyncio.to_thread(_select, server, ex, [t["raw"] for t in trajs], [t["sql"] for t in trajs],
                                     selector, gen_s, deadline)
    k = answer.chosen if answer.chosen is not None and answer.chosen >= 0 else 0
    return {**answer.as_json(), "agent": True, "finish": trajs[k]["finish"], "turns": trajs[k]["turns"],
            "trajectories": [{"sql": t["sql"], "finish": t["finish"], "turns": t["turns"]} for t in trajs]}


async def _trajectory(server: Server, ex: Any, config: Any, prompt_ids: list[int], max_tokens: int,
                      temperature: float, deadline: float) -> dict[str, Any]:
    """One trajectory to its end: generate a turn (a job stopping after the protocol's stop string,
    ``</sql>`` / ``</solution>`` or ``</tool_call>``, kept), let the environment parse it, run its query in the sandbox,
    append the observation, until an answer, the turn limit, the observation budget, the context
    (``finish="length"``) or the request's deadline (``finish="deadline"``). The completion is
    carried as text and re-encoded each turn (the engine returns text)."""
    from sqlcoach.generate.agent_predict import env_for
    from sqlcoach.serve.text2sql import run_candidates

    s = server.settings
    env = env_for(ex, config, server.recipe.template, None, server.token_count, server.agent_protocol)
    completion = ""
    comp_ids: list[int] = []
    gen_s = exec_s = 0.0
    while not env.done:
        room = s.context_length - len(prompt_ids) - len(comp_ids)
        if room < 1:
            env.end_at_limit("length")
            break
        if time.monotonic() > deadline:
            env.end_at_limit("deadline")
            break
        params = GenParams(max_new_tokens=min(max_tokens, room), temperature=temperature,
                           stop=tuple(env.protocol.stop_strings), include_stop=True)
        res = (await _generate_all(server, [prompt_ids + comp_ids], params, deadline))[0]
        gen_s += res.seconds
        sql = await asyncio.to_thread(env.act, res.text, res.completion_tokens)
        t0 = time.monotonic()
        result = None
        if sql is not None:
            result = (await asyncio.to_thread(run_candidates, [sql], str(ex.db_path), server.runner,
                                              deadline=deadline))[0]
        secs = time.monotonic() - t0 if sql is not None else 0.0
        exec_s += secs
        obs = await asyncio.to_thread(env.observe, result, secs)
        completion += res.text + obs
        comp_ids = await asyncio.to_thread(server.encode, completion)
        if res.deadline_hit and not env.done:
            env.end_at_limit("deadline")
    return {"sql": env.answer or "", "raw": completion, "finish": str(env.finish),
            "turns": [t.as_json() for t in env.turns], "generation_seconds": round(gen_s, 4),
            "execution_seconds": round(exec_s, 4)}


async def _stream(job: Job, q: asyncio.Queue, rid: str, created: int, model: str, usage: bool, *, chat: bool) -> Any:
    """Server-sent events in OpenAI's chunk format, then ``data: [DONE]``. A failure after the
    headers went out is sent as one ``{"error": ...}`` event (the status line is already 200)."""
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(piece: str | None, finish: str | None, first: bool = False) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {} if piece is None else {"content": piece}
            if first:
                delta["role"] = "assistant"
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": piece or "", "finish_reason": finish, "logprobs": None}
        return {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice]}

    try:
        if chat:
            yield _sse(chunk("", None, first=True))
        while True:
            try:
                kind, value = await _next(job, q)
            except RuntimeError as exc:
                log.error("%s", exc)
                yield _sse(error_body("internal error while generating", "server_error"))
                break
            if kind == "text":
                yield _sse(chunk(value, None))
                continue
            try:
                res = _outcome(value)
            except ApiError as exc:
                yield _sse(error_body(exc.message, exc.type, exc.code))
                break
            except Exception as exc:  # noqa: BLE001
                log.error("generation failed for a streaming request: %r", exc)
                yield _sse(error_body("internal error while generating", "server_error"))
                break
            yield _sse(chunk(None, res.finish_reason))
            if usage:
                yield _sse({"id": rid, "object": obj, "created": created, "model": model, "choices": [],
                            "usage": _usage(res)})
            break
        yield "data: [DONE]\n\n"
    finally:
        job.cancel()  # the client went away (or we are done): stop generating for it


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the app sees it
    (by its Content-Length, or by counting a chunked body); the body is read once and replayed."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            too_big = length is not None and int(length) > self.limit
        except ValueError:
            return await _send_json(send, 400, error_body("bad Content-Length header"))
        if too_big:
            return await _send_json(send, 413, error_body(f"request body over {self.limit} bytes"))
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            body = msg.get("body", b"")
            size += len(body)
            if size > self.limit:
                return await _send_json(send, 413, error_body(f"request body over {self.limit} bytes"))
            chunks.append(body)
            more = msg.get("more_body", False)
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def again() -> dict:
            return replay.pop() if replay else await receive()

        return await self.app(scope, again, send)


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    import json

    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})


def asgi_app(server: Server) -> Any:
    """``build_app(server)`` behind the body-size limit: what uvicorn runs."""
    return BodyLimit(build_app(server), server.settings.max_body_bytes)
