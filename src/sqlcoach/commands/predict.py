"""`sqlcoach predict --model M --data D --split dev --out OUT`: write SQL predictions.

    sqlcoach predict --model runs/sft/final --data world/ --split dev --out runs/pred/dev.sql \\
        [--kind spider] [--n 1] [--temperature 0] [--batch-size 8] [--max-new-tokens 256] \\
        [--template T] [--schema-style S] [--schema-samples N] [--value-retrieval K] [--token-budget N] \\
        [--history questions|predicted|gold] [--backend hf|vllm] [--limit N] [--resume] [--prefix-cache auto|on|off] \\
        [--n 8 --select vote|first|vote-nonempty]
    sqlcoach predict --agent [--max-turns 5] [--observation-budget 3000] [--untagged error|solution] ...
    sqlcoach predict --single-pass ...   (a model trained by multi-turn GRPO, answered in one pass)
    sqlcoach predict --backend openai --base-url http://127.0.0.1:8000/v1 --model NAME --data D --out OUT \\
        [--api-key-env OPENAI_API_KEY] [--concurrency 4] [--request-timeout 60] [--max-retries 5] [--max-rps R]

Writes OUT (Spider format: one SQL per line) and OUT with suffix .jsonl (raw outputs, samples,
votes). The prompt settings default to what the model recorded (``sqlcoach_recipe.json``; an
explicit setting that differs is used and printed). A new run replaces an older OUT; with
``--resume`` a run interrupted by a crash continues where it stopped: the examples already in the
JSONL are kept when their example identity and the run key (a hash of the model's files, the
decoding and the prompt settings, recorded in OUT.meta.json) match; otherwise the run starts
afresh, says which settings differ and keeps the old JSONL as OUT.jsonl.stale. Multi-turn data
(SParC, CoSQL, CHASE) is written in the official multi-turn layout (a blank line between
interactions), which ``sqlcoach evaluate`` scores with question and interaction match; ``--history
gold`` (earlier turns' gold SQL in the prompt) is an oracle setting and is labelled as one. ``--n 8``
samples 8 answers per question and votes by execution result (self-consistency); ``--select`` picks
another rule among the samples (``first``: the first sample that runs; ``vote-nonempty``: the vote
among the samples that return rows; ``verifier`` / ``vote+verifier`` with ``--verifier DIR``: a
trained verifier reads each sample's result, ``sqlcoach.generate.verifier_select``; see
``sqlcoach.execution.select``), and the JSONL records the chosen sample, every sample's vote count
and the rule (and, with a verifier, every sample's ``scores`` and the chosen one's ``score``).

``--backend openai`` sends each question's chat messages to any OpenAI-compatible endpoint
(``sqlcoach serve``, vLLM, a hosted API; ``--model`` is the name it serves) through
``sqlcoach.generate.api_backend``: bounded concurrency, retries with backoff on 429/5xx, a request
timeout, an error class per failed example (never a crash), token usage per example in the JSONL,
and ``--resume`` keyed by content (example + endpoint, model, decoding and prompt settings).

``--agent`` answers each question with a multi-turn trajectory (docs/agent.md): the model runs
``<sql>...</sql>`` queries in the sandbox, reads each result, and ends with ``<solution>...</solution>``
(``--protocol tools``: ``run_sql`` tool calls through the model's chat template, the final answer a
message without a call); OUT holds the final answers, the JSONL every turn, and the summary mean turns, queries run,
recoveries (when the data has gold SQL) and the time split into generation and execution. A model
trained by multi-turn GRPO records its agent settings in ``sqlcoach_recipe.json``: ``predict`` runs
it as an agent by default with those settings (a flag given on the command line wins), says so on
one line, and ``--single-pass`` answers in one pass instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from sqlcoach.config.agent import AgentEval
from sqlcoach.errors import ConfigError
from sqlcoach.execution.select import DEFAULT_SELECTOR, LEARNED_SELECTORS, SELECTORS

#: ``--prefix-cache`` -> the ``prefix_cache`` argument of ``predict`` / ``predict_agent`` (None: auto)
PREFIX_CACHE = {"auto": None, "on": True, "off": False}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="generate SQL for a dataset (greedy or self-consistency)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder, hub id, or LoRA adapter folder")
    p.add_argument("--data", required=True, help="dataset folder or file")
    p.add_argument("--kind", default="spider", help="dataset kind (spider, bird, jsonl, ...)")
    p.add_argument("--split", default="dev")
    p.add_argument("--out", required=True, help="prediction file to write (Spider format)")
    p.add_argument("--n", type=int, default=1, help="samples per question; > 1 votes by execution result")
    p.add_argument("--select", default=None, choices=sorted([*SELECTORS, *LEARNED_SELECTORS]),
                   help=f"with --n > 1: how the answer is chosen among the samples (default {DEFAULT_SELECTOR}: the "
                   "largest group of samples with the same result; first: the first sample that runs; vote-nonempty: "
                   "the vote among the samples that return rows, the plain vote when none does; verifier: the sample "
                   "a trained verifier (--verifier) scores highest, reading its result; vote+verifier: the vote "
                   "weighted by the verifier's probabilities). A sample whose SQL fails never wins over one that runs")
    p.add_argument("--verifier", default=None,
                   help="with --select verifier or vote+verifier: the folder `sqlcoach train verifier` wrote (its final/)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default 0 = greedy for n=1, 0.8 for n>1)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generate() call")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--template", default=None, help="prompt template (default: the model's sqlcoach_recipe.json, else sql_terminal)")
    p.add_argument("--schema-style", default=None, help="compact, ddl or nl (default: the model's recipe, else compact)")
    p.add_argument("--schema-samples", type=int, default=None,
                   help="example values per column in the schema text (default: the model's recipe, else 3)")
    p.add_argument("--value-retrieval", type=int, default=None,
                   help="database values the question mentions, shown under the schema (0 = none; default: the model's recipe, else 5)")
    p.add_argument("--token-budget", type=int, default=None,
                   help="shrink the schema text to N approximate tokens (0 = no budget; default: the model's recipe, else 0)")
    p.add_argument("--history", dest="turn_history", default=None, choices=["questions", "predicted", "gold"],
                   help="multi-turn data: earlier questions only (default), the model's own earlier predictions, "
                        "or the earlier gold SQL (an oracle setting, labelled as such)")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm", "openai"],
                   help="hf: batched HF generate; vllm (GPU): every prompt in one LLM.generate call, a LoRA adapter "
                   "folder served with enable_lora + LoRARequest (not merged); openai: any OpenAI-compatible endpoint (--base-url)")
    p.add_argument("--base-url", default=None, help="openai backend: the endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key-env", default=None,
                   help="openai backend: environment variable holding the API key (default: OPENAI_API_KEY if set, "
                   "else no key, as local servers need)")
    p.add_argument("--concurrency", type=int, default=4, help="openai backend: requests in flight")
    p.add_argument("--request-timeout", type=float, default=60.0, help="openai backend: seconds per request attempt")
    p.add_argument("--max-retries", type=int, default=5, help="openai backend: retries on 429/5xx/timeouts/connection errors")
    p.add_argument("--max-rps", type=float, default=None, help="openai backend: at most this many requests per second")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto")
    p.add_argument("--quantization", default=None, choices=["4bit", "8bit"])
    p.add_argument("--limit", type=int, default=None, help="predict only the first N examples")
    p.add_argument("--workers", type=int, default=None, help="SQL executor processes for voting")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per sampled query when voting")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", default=None, help="also write the throughput summary here")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run: keep the predictions already in OUT's .jsonl and predict "
                   "only the missing examples (default: start afresh, replacing OUT and its .jsonl)")
    p.add_argument("--agent", action="store_true",
                   help="multi-turn: the model may run <sql>...</sql> queries and read their results before its "
                   "<solution>...</solution> (hf backend, one trajectory per question)")
    p.add_argument("--single-pass", action="store_true",
                   help="answer in one pass even when the model's recipe records agent settings (a model trained by "
                   "multi-turn GRPO runs as an agent by default)")
    p.add_argument("--max-turns", type=int, default=None,
                   help=f"--agent: model turns per trajectory (default: the model's recorded setting, else {AGENT_DEFAULTS['max_turns']})")
    p.add_argument("--observation-budget", type=int, default=None,
                   help="--agent: tokens of observations per trajectory (each at most --observation-tokens)")
    p.add_argument("--observation-tokens", type=int, default=None, help="--agent: tokens per observation at most")
    p.add_argument("--max-total-tokens", type=int, default=None,
                   help="--agent: tokens per trajectory, observations included (--max-new-tokens bounds one turn)")
    p.add_argument("--on-limit", default=None, choices=["last_query", "none"],
                   help="--agent: the answer of a trajectory that never wrote <solution>: its last query, or none")
    p.add_argument("--keep-action", dest="keep", action="store_true", default=None,
                   help="--agent: an empty <solution></solution> answers with the last query that ran without an error "
                   "(for a model trained with it: agent rows --keep-action; default: the model's recorded setting, else off)")
    p.add_argument("--untagged", default=None, choices=["error", "solution"],
                   help="--agent: a turn without tags is an error observation (default), or the final answer")
    p.add_argument("--observation-names", default=None, choices=["template", "real"],
                   help="--agent: names in observations as the template writes them (placeholders for the anonymized "
                   "template) or the database's real names")
    p.add_argument("--protocol", default=None, choices=["tags", "tools", "review"],
                   help="--agent: how turns are written: SkyRL-style <sql>/<solution> tags (default; any chat template) "
                   "or native tool calls, run_sql(query), through the model's chat template (refused when the template "
                   "does not render tool calls), or review (the first turn a plain answer as in one pass, its result shown "
                   "as a user message, then <solution></solution> keeps it or <solution>QUERY</solution> revises; docs/agent.md)")
    p.add_argument("--no-agent-instruction", dest="agent_instruction", action="store_false", default=None,
                   help="--agent: leave the protocol instruction out of the prompt (a model trained on agent rows "
                   "without it; a tiny demo model that cannot read it)")
    p.add_argument("--prefix-cache", default="auto", choices=["auto", "on", "off"],
                   help="hf backend: encode each batch's shared prompt prefix (system prompt + schema) once and "
                   "reuse it for every question and sample (and every --agent turn); auto (default) = on for greedy "
                   "decoding, whose output it leaves unchanged, off for sampling (same distribution, different draws); "
                   "on also scores --verifier candidates from the cached prefix (scores equal within float tolerance, "
                   "not bit for bit, hence not under auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.generate.verifier_select import check_selection_options

    check_selection_options(args.n, args.select, args.verifier)
    if args.batch_size < 1 or args.max_new_tokens < 1:
        raise ConfigError("--batch-size and --max-new-tokens must be >= 1")
    from sqlcoach.data import load_examples

    examples = load_examples(args.kind, args.data, args.split)
    if args.limit is not None:
        examples = examples[: args.limit]
    temperature = args.temperature if args.temperature is not None else (0.8 if args.n > 1 else 0.0)
    recorded = _recorded_agent(args)
    if args.agent:
        return _run_agent(args, examples, temperature, recorded)
    if args.backend == "openai":
        if args.verifier is not None:
            raise ConfigError("--verifier selection runs with the local backends (hf, vllm), not --backend openai")
        return _run_openai(args, examples, temperature)

    from sqlcoach.generate.predict import predict
    from sqlcoach.generate.verifier_select import build_selector
    from sqlcoach.models.load import load_model, load_tokenizer
    from sqlcoach.prompts.recipe import resolve_prompt

    # a verifier folder that is not one fails here, before the policy loads
    selector = build_selector(args.select or DEFAULT_SELECTOR, args.verifier, device=args.device,
                              prefix_cache=args.prefix_cache == "on")
    recipe = resolve_prompt(args.model, template=args.template, schema_style=args.schema_style,
                            schema_sample_values=args.schema_samples, value_retrieval=args.value_retrieval,
                            token_budget=args.token_budget, turn_history=args.turn_history)

    generate_fn = None
    if args.backend == "vllm":
        from sqlcoach.generate.vllm_backend import vllm_generate_fn

        generate_fn = vllm_generate_fn(args.model, dtype=args.dtype)  # every prompt in one call; adapters via LoRARequest
        model, tokenizer = None, load_tokenizer(args.model)
    else:
        model, tokenizer = load_model(args.model, dtype=args.dtype, device=args.device, quantization=args.quantization)
    summary = predict(
        model, tokenizer, examples, args.out,
        n=args.n, temperature=temperature, top_p=args.top_p, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, prompt=recipe.prompt, model_id=args.model,
        workers=args.workers, timeout=args.timeout, seed=args.seed, generate_fn=generate_fn, resume=args.resume,
        select=selector if args.verifier is not None else args.select or DEFAULT_SELECTOR,
        prefix_cache=PREFIX_CACHE[args.prefix_cache],
    )
    return _report(summary, args.json_out)


def _report(summary, json_out: str | None) -> int:
    """Print a prediction summary (local or API backend) and write it as JSON to ``json_out``."""
    from dataclasses import asdict

    print(summary.line())
    print(f"wrote {summary.sql_path} and {summary.jsonl_path}")
    if json_out:
        with open(json_out, "w") as fh:
            json.dump(asdict(summary), fh, indent=2)
    return 0


def api_key_from_env(var: str | None) -> str | None:
    """The API key: ``$var`` (a ``ConfigError`` when that variable is unset), else ``$OPENAI_API_KEY``
    when set, else ``None`` (local servers need no key). The key itself is never printed."""
    import os

    if var:
        if not os.environ.get(var):
            raise ConfigError(f"--api-key-env {var}: that environment variable is not set")
        return os.environ[var]
    return os.environ.get("OPENAI_API_KEY") or None


def _run_openai(args: argparse.Namespace, examples: list, temperature: float) -> int:
    from sqlcoach.generate.api_backend import predict_api
    from sqlcoach.generate.openai_client import ChatClient
    from sqlcoach.prompts.settings import PromptSettings

    if not args.base_url:
        raise ConfigError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    if args.n != 1:
        raise ConfigError("--backend openai predicts one answer per question (--n 1); voting needs a local backend")
    if args.concurrency < 1:
        raise ConfigError("--concurrency must be >= 1")
    # no model folder to read a recipe from: the explicit settings, else the defaults (all six)
    prompt = PromptSettings.of(template=args.template, schema_style=args.schema_style,
                               schema_sample_values=args.schema_samples, value_retrieval=args.value_retrieval,
                               token_budget=args.token_budget, turn_history=args.turn_history)
    client = ChatClient(args.base_url, args.model, api_key=api_key_from_env(args.api_key_env),
                        timeout=args.request_timeout, max_retries=args.max_retries, max_rps=args.max_rps)
    summary = predict_api(client, examples, args.out, temperature=temperature, top_p=args.top_p,
                          max_tokens=args.max_new_tokens, seed=args.seed, prompt=prompt,
                          concurrency=args.concurrency, resume=args.resume)
    return _report(summary, args.json_out)


def _recorded_agent(args: argparse.Namespace) -> dict | None:
    """The agent settings the model's recipe records (multi-turn GRPO), deciding the mode: such a
    model runs as an agent unless ``--single-pass``, and a line says so. Sets ``args.agent``."""
    if args.agent and args.single_pass:
        raise ConfigError("--agent and --single-pass contradict each other: choose one")
    if args.backend == "openai":
        return None  # --model names a served model, not a folder
    from sqlcoach.prompts.recipe import recipe_of

    recipe = recipe_of(args.model)
    agent = recipe.agent if recipe is not None and isinstance(recipe.agent, dict) else None
    if agent is None or args.agent:
        return agent
    if args.single_pass:
        print(f"note: {args.model} was trained as an agent (multi-turn GRPO); answering in one pass as asked (--single-pass)")
        return None
    if args.backend != "hf":
        print(f"note: {args.model} was trained as an agent, but the agent runs with --backend hf; answering in one pass "
              f"with --backend {args.backend}")
        return None
    print(f"note: {args.model} was trained as an agent (multi-turn GRPO, at most {agent.get('max_turns')} turns): "
          "predicting as an agent with its recorded settings (--single-pass answers in one pass)")
    args.agent = True
    return agent


#: ``predict --agent``'s settings when neither the command line nor the model's recipe gives one
AGENT_DEFAULTS = {k: v for k, v in dataclasses.asdict(AgentEval()).items() if k != "timeout"}  # --timeout has its own


def agent_settings(args: argparse.Namespace, recorded: dict | None) -> dict:
    """Each agent setting: the command line's when given, else the model's recorded one, else ``AGENT_DEFAULTS``."""
    given = {"max_turns": args.max_turns, "observation_budget": args.observation_budget,
             "per_observation": args.observation_tokens, "max_total_tokens": args.max_total_tokens,
             "on_limit": args.on_limit, "untagged": args.untagged, "observation_names": args.observation_names,
             "instruction": args.agent_instruction, "protocol": args.protocol, "keep": args.keep}
    rec = recorded or {}
    return {k: given[k] if given[k] is not None else rec.get(k, d) if rec.get(k) is not None else d
            for k, d in AGENT_DEFAULTS.items()}


def _run_agent(args: argparse.Namespace, examples: list, temperature: float, recorded: dict | None = None) -> int:
    """``predict --agent`` (or a model whose recipe records agent settings): one trajectory per
    example (``sqlcoach.generate.agent_predict``)."""
    if args.backend != "hf":
        raise ConfigError("--agent runs with --backend hf")
    if args.resume or args.turn_history not in (None, "questions"):
        raise ConfigError("--agent predicts afresh from the question alone: no --resume or --history")
    from sqlcoach.generate.agent import AgentConfig

    st = agent_settings(args, recorded)
    config = AgentConfig(max_turns=st["max_turns"], observation_budget=st["observation_budget"],
                         per_observation=st["per_observation"], on_limit=st["on_limit"], untagged=st["untagged"],
                         timeout=args.timeout, observation_names=st["observation_names"], protocol=st["protocol"],
                         keep=st["keep"])
    if st["max_total_tokens"] < 1:
        raise ConfigError("--max-total-tokens must be >= 1")
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.generate.agent_predict import predict_agent, recoveries
    from sqlcoach.generate.predict import read_done
    from sqlcoach.generate.verifier_select import build_selector
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.recipe import resolve_prompt

    # a verifier folder that is not one fails here, before the policy loads
    selector = build_selector(args.select or DEFAULT_SELECTOR, args.verifier, device=args.device,
                              prefix_cache=args.prefix_cache == "on")

    recipe = resolve_prompt(args.model, template=args.template, schema_style=args.schema_style,
                            schema_sample_values=args.schema_samples, value_retrieval=args.value_retrieval,
                            token_budget=args.token_budget)
    model, tokenizer = load_model(args.model, dtype=args.dtype, device=args.device, quantization=args.quantization)
    workers = 1 if args.workers is None else args.workers
    summary = predict_agent(
        model, tokenizer, examples, args.out, config=config, temperature=temperature, top_p=args.top_p,
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, max_total_tokens=st["max_total_tokens"],
        prompt=recipe.prompt, workers=workers, seed=args.seed,
        instruction=st["instruction"], n=args.n,
        select=selector if args.verifier is not None else args.select or DEFAULT_SELECTOR,
        prefix_cache=PREFIX_CACHE[args.prefix_cache],
    )
    if any(ex.gold_sql for ex in examples):
        from pathlib import Path

        done, _ = read_done(Path(summary.jsonl_path))
        with ExecutorPool(workers, config.limits()) as pool:
            summary.recoveries, summary.first_query_failed = recoveries(
                [done[i] for i in sorted(done)], examples, pool)
    return _report(summary, args.json_out)
