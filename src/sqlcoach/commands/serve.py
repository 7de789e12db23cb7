"""`sqlcoach serve MODEL`: an OpenAI-compatible server for a tuned model, /v1/sql and a web page.

    sqlcoach serve runs/sft/final [--host 127.0.0.1] [--port 8000] [--api-key KEY] \\
        [--databases DIR] [--backend hf|vllm] [--max-batch 16] [--max-queue 256] [--request-timeout 60]

MODEL is any folder sqlcoach can load (its sqlcoach_recipe.json gives the prompt for /v1/sql) or
a .gguf file. Routes: /v1/models, /v1/chat/completions (streaming too), /v1/completions,
/v1/databases, /v1/sql {database, question} (the SQL runs read-only in the sandbox, on the
databases under --databases only; "n" candidates chosen by "select", with --verifier DIR a
trained verifier; "agent": true runs queries before answering) and the page at /. See docs/serve.md.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model: OpenAI-compatible API, /v1/sql and a web page",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="model folder (or LoRA adapter folder) sqlcoach can load, or a .gguf file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every /v1 request")
    p.add_argument("--served-model-name", default=None, help="the model's name in the API (default: MODEL as given)")
    p.add_argument("--databases", default=None,
                   help="folder of SQLite files (NAME.sqlite or Spider's NAME/NAME.sqlite) that /v1/sql may query")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"],
                   help="hf: sqlcoach's server (batched HF generation); vllm: exec vLLM's own OpenAI server")
    p.add_argument("--max-batch", type=int, default=16, help="requests generated together in one batch")
    p.add_argument("--max-queue", type=int, default=256, help="requests that may wait; more get 503 + Retry-After")
    p.add_argument("--request-timeout", type=float, default=60.0,
                   help="seconds a request may take, queue wait included (generation stops there)")
    p.add_argument("--max-tokens", type=int, default=256, help="completion tokens when a request names none")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="temperature when a request names none (default 0: greedy, for SQL)")
    p.add_argument("--max-model-len", type=int, default=None, help="context length (default: the model config's)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger request bodies get 413")
    p.add_argument("--sql-timeout", type=float, default=10.0, help="seconds one generated query may run")
    p.add_argument("--max-rows", type=int, default=1000, help="rows a query may return (more is an error)")
    p.add_argument("--sql-workers", type=int, default=1, help="sandbox worker processes (0: in the server process)")
    p.add_argument("--template", default=None, help="prompt template for /v1/sql (default: the model's recipe)")
    p.add_argument("--schema-style", default=None, help="schema style for /v1/sql (default: the model's recipe)")
    p.add_argument("--schema-samples", type=int, default=None, help="sample values per column (default: the recipe)")
    p.add_argument("--verifier", default=None,
                   help="a trained verifier folder (`sqlcoach train verifier`'s final/): /v1/sql may then ask for "
                   "select verifier or vote+verifier")
    p.add_argument("--max-n", type=int, default=16, help="candidates one /v1/sql request may ask for (\"n\")")
    p.add_argument("--agent-turns", type=int, default=5, help="/v1/sql with \"agent\": true: turns when the request names none")
    p.add_argument("--max-agent-turns", type=int, default=10, help="the most turns a request may ask for (\"max_turns\")")
    p.add_argument("--no-agent-instruction", dest="agent_instruction", action="store_false",
                   help="agent requests: leave the protocol instruction out of the prompt (a model trained on agent "
                   "rows without it)")
    p.add_argument("--agent-protocol", default="tags", choices=["tags", "tools", "review"],
                   help="agent requests: <sql>/<solution> tags (default; any chat template) or native run_sql tool calls "
                   "through the model's chat template (refused at start-up when the template does not render them), or "
                   "review (a plain answer, its result as a user message, then keep or revise)")
    p.add_argument("--agent-keep", action="store_true",
                   help="agent requests (tags or review): an empty <solution></solution> answers with the last query that ran "
                   "without an error (a model trained with it: agent rows --keep-action)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from sqlcoach.errors import ConfigError
    from sqlcoach.serve.setup import ServeOptions

    if args.backend == "hf" and not all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn")):
        raise ConfigError("sqlcoach serve needs FastAPI and uvicorn: pip install 'sqlcoach[serve]'")

    opts = ServeOptions(
        model=args.model, host=args.host, port=args.port, api_key=args.api_key,
        served_model_name=args.served_model_name, databases=args.databases, max_batch=args.max_batch,
        max_queue=args.max_queue, request_timeout=args.request_timeout, max_tokens=args.max_tokens,
        temperature=args.temperature, max_model_len=args.max_model_len, max_body_bytes=args.max_body_bytes,
        sql_timeout=args.sql_timeout, max_rows=args.max_rows, sql_workers=args.sql_workers, template=args.template,
        schema_style=args.schema_style, schema_samples=args.schema_samples, dtype=args.dtype, device=args.device,
        verifier=args.verifier, max_n=args.max_n, agent_turns=args.agent_turns, max_agent_turns=args.max_agent_turns,
        agent_instruction=args.agent_instruction, agent_protocol=args.agent_protocol, agent_keep=args.agent_keep,
    )
    if args.backend == "vllm":
        from sqlcoach.serve.vllm import exec_vllm

        if args.verifier is not None:
            raise ConfigError("--verifier is read by sqlcoach's own server (--backend hf), not vLLM's")

        opts.check()
        exec_vllm(opts)  # does not return
        return 0
    from sqlcoach.serve.setup import serve_forever

    return serve_forever(opts)
