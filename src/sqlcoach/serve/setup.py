"""A model folder (or GGUF file) -> a running ``sqlcoach serve``: load, wire, and run uvicorn."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError
from sqlcoach.runtime.web import log_to_stderr, run_until_stopped, warn_if_open


@dataclass
class ServeOptions:
    """Everything ``sqlcoach serve`` takes (see ``commands/serve.py`` for the flags' help)."""

    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    served_model_name: str | None = None
    databases: str | None = None
    max_batch: int = 16
    max_queue: int = 256
    request_timeout: float = 60.0
    max_tokens: int = 256
    temperature: float = 0.0
    max_model_len: int | None = None
    max_body_bytes: int = 1 << 20
    sql_timeout: float = 10.0
    max_rows: int = 1000
    sql_workers: int = 1
    template: str | None = None
    schema_style: str | None = None
    schema_samples: int | None = None
    dtype: str = "auto"
    device: str = "auto"
    verifier: str | None = None  # a `sqlcoach train verifier` folder: /v1/sql's select verifier, vote+verifier
    max_n: int = 16
    agent_turns: int = 5
    max_agent_turns: int = 10
    agent_instruction: bool = True
    agent_protocol: str = "tags"  # how agent turns are written: tags, or tools (the chat template's tool calls)
    agent_keep: bool = False  # tags or review: an empty <solution></solution> answers with the last query that ran

    def check(self) -> None:
        if self.agent_protocol not in ("tags", "tools", "review"):
            raise ConfigError(f"--agent-protocol must be tags, tools or review, got {self.agent_protocol!r}")
        if self.agent_keep and self.agent_protocol == "tools":
            raise ConfigError("--agent-keep is an action of the tags and review protocols, not of tools")
        if not (0 < self.port < 65536):
            raise ConfigError(f"--port must be in 1..65535, got {self.port}")
        if self.agent_turns > self.max_agent_turns:
            raise ConfigError(f"--agent-turns ({self.agent_turns}) must be <= --max-agent-turns ({self.max_agent_turns})")
        for name in ("max_batch", "max_queue", "max_tokens", "max_body_bytes", "max_rows", "max_n", "agent_turns",
                     "max_agent_turns"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.request_timeout <= 0 or self.sql_timeout <= 0:
            raise ConfigError("--request-timeout and --sql-timeout must be > 0 seconds")
        if self.sql_workers < 0:
            raise ConfigError("--sql-workers must be >= 0 (0 runs SQL in the server process)")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("--api-key must not be empty")
        if not Path(self.model).exists():
            raise ConfigError(f"model not found: {self.model} (a model folder sqlcoach can load, or a .gguf file)")
        if self.verifier is not None and not Path(self.verifier).is_dir():
            raise ConfigError(f"--verifier {self.verifier}: not a folder (the final/ folder `sqlcoach train verifier` wrote)")


def context_length(model: Any, tokenizer: Any, override: int | None) -> int:
    """Tokens a prompt plus its completion may hold: ``override``, else the model config's
    ``max_position_embeddings``, else the tokenizer's ``model_max_length`` when it is a real figure."""
    if override is not None:
        return int(override)
    n = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(n, int) and n > 0:
        return n
    m = getattr(tokenizer, "model_max_length", None)
    if isinstance(m, int) and 0 < m < 10**7:
        return m
    raise ConfigError("cannot tell the model's context length: pass --max-model-len")


def open_server(opts: ServeOptions, *, batch_fn: Any = None, loaded: tuple[Any, Any] | None = None,
                verifier: Any = None) -> Any:
    """Load the model (or take ``loaded = (model, tokenizer)``), read its prompt recipe, list the
    databases, load the verifier of ``opts.verifier`` (or take ``verifier``: anything with the
    ``models.verifier.Verifier.score`` method) before the model, start the engine and the sandbox:
    a ``serve.app.Server``. ``batch_fn`` replaces HF generation (tests)."""
    from sqlcoach.prompts.recipe import resolve_prompt
    from sqlcoach.serve.app import ServeSettings, Server
    from sqlcoach.serve.engine import Engine
    from sqlcoach.serve.text2sql import Databases, SqlRunner

    recipe = resolve_prompt(opts.model, template=opts.template, schema_style=opts.schema_style,
                            schema_sample_values=opts.schema_samples, log=lambda m: print(m, file=sys.stderr))
    recipe.builder()  # checks template and schema style before the model loads
    databases = Databases(opts.databases)
    if verifier is None and opts.verifier is not None:
        from sqlcoach.models.verifier import load_verifier

        verifier = load_verifier(opts.verifier, device=opts.device)  # a folder that is not one fails before the model loads
    if loaded is None:
        from sqlcoach.models.load import load_model

        loaded = load_model(opts.model, dtype=opts.dtype, device=opts.device)
    model, tokenizer = loaded
    settings = ServeSettings(
        model_name=opts.served_model_name or opts.model, context_length=context_length(model, tokenizer, opts.max_model_len),
        api_key=opts.api_key, max_body_bytes=opts.max_body_bytes, request_timeout=opts.request_timeout,
        default_max_tokens=opts.max_tokens, default_temperature=opts.temperature, sql_max_tokens=opts.max_tokens,
        max_n=opts.max_n, agent_turns=opts.agent_turns, max_agent_turns=opts.max_agent_turns,
        agent_instruction=opts.agent_instruction, agent_protocol=opts.agent_protocol, agent_keep=opts.agent_keep,
    )
    engine = Engine(model, tokenizer, max_batch=opts.max_batch, max_queue=opts.max_queue, batch_fn=batch_fn)
    runner = SqlRunner(timeout=opts.sql_timeout, max_rows=opts.max_rows, workers=opts.sql_workers)
    return Server(engine, settings, recipe=recipe, databases=databases, runner=runner, model_path=opts.model,
                  verifier=verifier)


def serve_forever(opts: ServeOptions) -> int:
    """``sqlcoach serve``: open the server and run uvicorn until Ctrl-C; 0 on a clean stop."""
    from sqlcoach.serve.app import asgi_app

    opts.check()
    warn_if_open(opts.host, opts.api_key, "the model and the databases")
    log_to_stderr()
    server = open_server(opts)
    s = server.settings
    print(f"sqlcoach serve: {s.model_name} (context {s.context_length} tokens, template {server.recipe.template}) "
          f"on http://{opts.host}:{opts.port}  databases: {len(server.databases)}"
          + (f" from {server.databases.folder}" if server.databases.folder else "")
          + ("  (API key required)" if s.api_key else "")
          + (f"  verifier: {opts.verifier}" if server.verifier is not None else ""), file=sys.stderr, flush=True)
    return run_until_stopped(asgi_app(server), opts.host, opts.port, server.close)
