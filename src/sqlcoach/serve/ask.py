"""``sqlcoach ask``'s two ways to get SQL: a model loaded here, or an OpenAI-compatible server.

Both build the prompt from the database's schema and the model's recipe (``text2sql``) and run the
SQL in the local sandbox (``text2sql.SqlRunner``); they differ only in who turns the prompt into
text. ``--url`` talks to ``/v1/models`` and ``/v1/chat/completions`` with the standard library
(no ``openai`` package needed).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from sqlcoach.errors import ConfigError, ModelError


def ask_local(args: Any, db_path: str, questions: list[str], runner: Any, selector: Any = None) -> list[Any]:
    """Load ``args.model``, prompt with its recipe, generate in batches, run each SQL: greedily, or
    with ``args.n > 1`` ``n`` samples per question (``args.temperature``) and the answer ``selector``
    chose among them (``text2sql.select_answer``: every candidate's votes and score kept)."""
    from sqlcoach.generate.hf import generate_texts
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.recipe import resolve_prompt
    from sqlcoach.serve.text2sql import answer_from_text, example_for, prompt_for

    recipe = resolve_prompt(args.model, template=args.template, schema_style=args.schema_style,
                            schema_sample_values=args.schema_samples, log=lambda m: print(m, file=sys.stderr))
    builder = recipe.builder()
    model, tok = load_model(args.model, dtype=args.dtype, device=args.device)
    exs = [example_for(q, db_path) for q in questions]
    prompts = [prompt_for(builder, tok, ex) for ex in exs]
    t0 = time.monotonic()
    gen = generate_texts(model, tok, prompts, n=args.n, temperature=args.temperature, max_new_tokens=args.max_new_tokens or 256,
                         batch_size=args.batch_size, seed=args.seed)
    per_question = (time.monotonic() - t0) / max(1, len(prompts))  # batched: the share of each question
    if args.n == 1:
        return [answer_from_text(texts[0], ex, recipe.template, runner, database=ex.db_id,
                                 generation_seconds=per_question) for ex, texts in zip(exs, gen.texts)]
    return [choose(ex, texts, recipe.template, runner, selector, builder, per_question) for ex, texts in zip(exs, gen.texts)]


def choose(ex: Any, raws: list[str], template: str, runner: Any, selector: Any, builder: Any,
           generation_seconds: float) -> Any:
    """The answer ``selector`` chose among the completions ``raws`` of ``ex`` (their SQL extracted
    and mapped back from an anonymizing template's placeholders; a learned selector reads the
    schema text ``builder`` shows the policy)."""
    from sqlcoach.serve.text2sql import select_answer, sql_of

    sqls = [sql_of(t, ex, template) for t in raws]
    schema = builder.lenient_schema_text(ex) if getattr(selector, "reads_schema", False) else ""
    return select_answer(ex, sqls, raws, runner, selector, database=ex.db_id, schema_text=schema,
                         generation_seconds=generation_seconds)


def base_url(url: str) -> str:
    """``http://host:port`` or ``.../v1`` -> the ``.../v1`` prefix."""
    u = url.rstrip("/")
    if not u.startswith(("http://", "https://")):
        raise ConfigError(f"--url must start with http:// or https://, got {url!r}")
    return u if u.endswith("/v1") else u + "/v1"


def _call(url: str, api_key: str | None, body: dict | None = None, timeout: float = 300.0) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    req.add_header("Content-Type", "application/json")
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")[:500]
        try:
            detail = json.loads(detail)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        raise ModelError(f"{url} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ModelError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


def ask_url(args: Any, db_path: str, questions: list[str], runner: Any, selector: Any = None) -> list[Any]:
    """Prompt through ``args.url``'s chat endpoint (the recipe it reports, else the flags' or
    sqlcoach's defaults), one request per question (greedy), or with ``args.n > 1`` ``n`` sampled
    requests and the answer ``selector`` chose here; run each SQL here."""
    from sqlcoach.prompts.recipe import DEFAULTS, PromptRecipe
    from sqlcoach.serve.text2sql import answer_from_text, example_for, messages_for

    v1 = base_url(args.url)
    listed = _call(f"{v1}/models", args.api_key).get("data") or []
    if not listed:
        raise ModelError(f"{v1}/models lists no model")
    card = next((m for m in listed if m.get("id") == args.served_model), None) if args.served_model else listed[0]
    if card is None:
        raise ConfigError(f"{args.url} does not serve {args.served_model!r} (it serves: "
                          f"{', '.join(str(m.get('id')) for m in listed)})")
    rec = card.get("sqlcoach_recipe") or {}
    asked = {"template": args.template, "schema_style": args.schema_style, "schema_sample_values": args.schema_samples}
    settings = {k: asked[k] if asked.get(k) is not None else rec.get(k, DEFAULTS[k]) for k in DEFAULTS}
    recipe = PromptRecipe(**settings)
    builder = recipe.builder()
    answers = []
    for q in questions:
        ex = example_for(q, db_path)
        builder.schema_text(db_path)  # an unreadable database is an error here, not an empty schema
        body: dict[str, Any] = {"model": card["id"], "messages": messages_for(builder, ex), "temperature": args.temperature}
        if args.max_new_tokens is not None:
            body["max_tokens"] = args.max_new_tokens
        t0 = time.monotonic()
        raws = []
        for k in range(args.n):  # one choice per request: sqlcoach serve's chat route returns one
            if args.n > 1:
                body["seed"] = args.seed + k
            reply = _call(f"{v1}/chat/completions", args.api_key, body)
            try:
                raws.append(reply["choices"][0]["message"]["content"] or "")
            except (KeyError, IndexError, TypeError):
                raise ModelError(f"{v1}/chat/completions answered without choices[0].message.content") from None
        secs = time.monotonic() - t0
        if args.n == 1:
            answers.append(answer_from_text(raws[0], ex, recipe.template, runner, database=ex.db_id,
                                            generation_seconds=secs))
        else:
            answers.append(choose(ex, raws, recipe.template, runner, selector, builder, secs))
    return answers
