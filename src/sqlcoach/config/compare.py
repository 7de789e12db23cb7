"""Typed configuration of a comparison (``sqlcoach compare --config configs/compare/X.yaml``).

``CompareConfig`` holds what every method shares (start, budget, evaluation); each entry of
``methods`` is a ``MethodSpec`` naming a recipe (a key of ``sqlcoach.train.recipes.RECIPES``),
its YAML and overrides. ``sqlcoach.pipelines.compare`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlcoach.config.loading import build_config, load_config
from sqlcoach.errors import ConfigError

#: the recipes a comparison can train (``sqlcoach.train.recipes.RECIPES`` has the same keys; a test checks it).
#: ``verifier`` trains a verifier from the start and scores the START with selection among samples
#: (``n``, ``temperature``, ``select`` below): the row is inference-time selection, not a new policy.
METHOD_KINDS = ("sft", "dpo", "grpo", "ppo", "verifier")
#: the selection kinds: trained by a recipe, evaluated by sampling the start and selecting
SELECTION_KINDS = ("verifier",)
#: methods trained by ``sqlcoach adapt`` (label-free GRPO, ``pipelines.adapt``) on half A of the
#: evaluation questions, not by a recipe: a comparison that holds one scores every row on half B
ADAPT_KINDS = ("adapt",)
#: the evaluation question sets: every question of ``eval_split``, or half B (``eval_half``)
EVAL_HALVES = ("all", "b")
#: methods that are not trained: a model behind an OpenAI-compatible endpoint, evaluated as is
API_KINDS = ("api",)
#: what ``overrides`` may set for an ``api`` method (its prompt; decoding stays the comparison's)
API_OVERRIDES = ("template", "schema_style", "schema_sample_values", "max_rps")
BUDGETS = ("steps", "seconds", "samples")


@dataclass
class MethodSpec:
    """One entry of ``methods:``. ``name`` labels it in the report (unique); ``method`` picks the
    recipe; ``config`` is that recipe's YAML (its own keys; ``""``: the recipe's defaults);
    ``overrides`` are recipe keys set on top; ``prepare`` lists ``sqlcoach`` command lines run
    before training, with ``{start}``, ``{world}``, ``{dir}`` (this method's folder), ``{seed}``
    replaced.

    ``method: api`` is a model behind an OpenAI-compatible endpoint (``base_url``, ``model``, the
    key in the environment variable ``api_key_env``): not trained, predicted through
    ``sqlcoach.generate.api_backend`` on the same questions and scored exactly as the trained
    methods; ``overrides`` may set only ``API_OVERRIDES``."""

    name: str = ""
    method: str = "sft"
    config: str = ""
    overrides: Any = None
    prepare: list[str] = field(default_factory=list)
    base_url: str = ""  # method api: e.g. http://127.0.0.1:8000/v1
    model: str = ""  # method api: the name the endpoint serves
    api_key_env: str = ""  # method api: environment variable with the key ("" = OPENAI_API_KEY if set, else none)
    concurrency: int = 4  # method api: requests in flight
    request_timeout: float = 60.0  # method api: seconds per request attempt
    max_retries: int = 5  # method api: retries on 429/5xx/timeouts
    # method verifier: the start's evaluation samples n answers per question at this temperature;
    # every selection is scored from the same samples, ``select`` is the row's headline EX
    # (null: 8, 0.8, vote+verifier)
    n: int | None = None
    temperature: float | None = None
    select: str | None = None
    # evaluate this row's model as an agent (``predict --agent`` semantics, config.agent.AgentEval:
    # a mapping {max_turns, observation_budget, per_observation, max_total_tokens, on_limit,
    # untagged, observation_names, instruction, protocol, timeout}, or true for the defaults);
    # null: the comparison's eval_agent; false: single pass even when eval_agent is set
    agent: Any = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("every method needs a name (its label in the report)")
        if not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError(f"method name {self.name!r} may only hold letters, digits, '-', '_' and '.' (it is a folder name)")
        kinds = METHOD_KINDS + ADAPT_KINDS + API_KINDS
        if self.method not in kinds:
            raise ConfigError(f"method {self.name}: method must be one of {kinds}, got {self.method!r}")
        if self.overrides is None:
            self.overrides = {}
        if not isinstance(self.overrides, dict):
            raise ConfigError(f"method {self.name}: overrides must be a mapping of recipe key: value")
        if self.method in API_KINDS:
            self._check_api()
        elif self.base_url or self.model or self.api_key_env:
            raise ConfigError(f"method {self.name}: base_url, model and api_key_env are for method: api only")
        self._check_agent()
        if self.method in SELECTION_KINDS:
            self._check_selection()
        elif (self.n, self.temperature, self.select) != (None, None, None):
            raise ConfigError(f"method {self.name}: n, temperature and select are for method: verifier only "
                              f"(the evaluation of the other methods is greedy)")

    def _check_agent(self) -> None:
        from sqlcoach.config.agent import AgentEval

        if self.agent is None or self.agent is False or (isinstance(self.agent, str) and self.agent.strip().lower()
                                                          in ("false", "no", "off")):
            self.agent = None if self.agent is None else False
            return
        self.agent = AgentEval.of(self.agent, where=f"method {self.name}: agent")
        if self.agent is not None and self.method in API_KINDS + SELECTION_KINDS:
            raise ConfigError(f"method {self.name}: agent evaluation runs a local policy turn by turn; method "
                              f"{self.method} cannot take it ({'an endpoint answers' if self.method in API_KINDS else 'its row selects among single-pass samples of the start'})")

    def agent_eval(self, default: Any = None) -> Any:
        """The ``AgentEval`` this row is evaluated with: its own ``agent``, else ``default`` (the
        comparison's ``eval_agent``) unless ``agent: false``; ``None``: single pass. Never for api
        or verifier rows."""
        if self.agent is False or self.method in API_KINDS + SELECTION_KINDS:
            return None
        return self.agent if self.agent is not None else default

    def _check_selection(self) -> None:
        from sqlcoach.execution.select import LEARNED_SELECTORS

        if self.n is not None and (isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 2):
            raise ConfigError(f"method {self.name}: n must be an integer >= 2 (samples per question to select among), got {self.n!r}")
        if self.temperature is not None and not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ConfigError(f"method {self.name}: temperature must be > 0: greedy samples are all the same, got {self.temperature!r}")
        if self.select is not None and self.select not in LEARNED_SELECTORS:
            raise ConfigError(f"method {self.name}: select must be one of {LEARNED_SELECTORS} (the verifier's "
                              f"selections; the rules vote, vote-nonempty, first are scored beside it), got {self.select!r}")

    def selection(self) -> dict[str, Any]:
        """A ``verifier`` method's evaluation: ``{"n", "temperature", "select"}`` with the defaults."""
        return {"n": self.n or 8, "temperature": float(self.temperature or 0.8), "select": self.select or "vote+verifier"}

    def _check_api(self) -> None:
        if not self.base_url or not self.model:
            raise ConfigError(f"method {self.name}: method api needs base_url (e.g. http://127.0.0.1:8000/v1) and model")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"method {self.name}: base_url must be an http(s) URL, got {self.base_url!r}")
        if self.config or self.prepare:
            raise ConfigError(f"method {self.name}: method api is not trained: config and prepare must be empty")
        bad = sorted(set(self.overrides) - set(API_OVERRIDES))
        if bad:
            raise ConfigError(f"method {self.name}: method api overrides may set only {API_OVERRIDES}, not {bad}")
        if self.concurrency < 1 or self.request_timeout <= 0 or self.max_retries < 0:
            raise ConfigError(f"method {self.name}: concurrency >= 1, request_timeout > 0, max_retries >= 0")


def api_training_usd(price: Any) -> float:
    """What fine-tuning an API model cost, from a price entry (an ``ApiPrice`` or its dict, as
    report.json holds it): ``trained_tokens`` x ``train_per_m`` / 1e6 when tokens are given, else
    ``train_usd`` (0 for a model used as is). ``ApiPrice`` refuses both at once."""
    get = price.get if isinstance(price, dict) else (lambda k, d=None: getattr(price, k, d))
    tokens = int(get("trained_tokens") or 0)
    if tokens:
        return tokens * float(get("train_per_m") or 0.0) / 1e6
    return float(get("train_usd") or 0.0)


@dataclass
class ApiPrice:
    """What one API model costs: dollars per million input (prompt) and output (completion)
    tokens, and what fine-tuning it cost, if it was: either ``trained_tokens`` (what the provider's
    fine-tuning job reports it trained on: the file's tokens x epochs; ``data build --format openai``
    prints one epoch's count) at ``train_per_m`` dollars per million trained tokens, or a fixed
    ``train_usd`` (an invoice total); 0 for a model used as is (``api_training_usd``)."""

    input_per_m: float = 0.0
    output_per_m: float = 0.0
    train_usd: float = 0.0
    train_per_m: float = 0.0
    trained_tokens: int = 0

    def __post_init__(self) -> None:
        if min(self.input_per_m, self.output_per_m, self.train_usd, self.train_per_m, self.trained_tokens) < 0:
            raise ConfigError("API prices and trained_tokens must be >= 0")
        if self.trained_tokens and self.train_usd:
            raise ConfigError("give the fine-tuning cost once: trained_tokens x train_per_m, or train_usd, not both")
        if self.trained_tokens and not self.train_per_m:
            raise ConfigError("trained_tokens needs train_per_m (the provider's $ per 1M trained tokens)")


@dataclass
class PriceTable:
    """The prices of a comparison's report columns ($ to train, $ per 1,000 predictions).

    ``train_per_hour`` / ``predict_per_hour``: dollars per hour of the machine that trains and
    that predicts with local models (a GPU-hour or a CPU-hour: ``hardware`` says which; seed 004's
    example is an NVIDIA A40 at $0.475/h). ``api``: method name (or served model name) -> its
    ``ApiPrice``. An unset price leaves its cells empty: nothing is invented."""

    hardware: str = ""
    train_per_hour: float | None = None
    predict_per_hour: float | None = None
    api: Any = None

    def __post_init__(self) -> None:
        for k in ("train_per_hour", "predict_per_hour"):
            v = getattr(self, k)
            if v is not None and v < 0:
                raise ConfigError(f"prices.{k} must be >= 0 or null")
        raw = self.api or {}
        if not isinstance(raw, dict):
            raise ConfigError("prices.api must map a method (or model) name to {input_per_m, output_per_m, "
                              "train_usd | train_per_m + trained_tokens}")
        for k, v in raw.items():
            if not isinstance(v, (dict, ApiPrice)):
                raise ConfigError(f"prices.api.{k} must be a mapping {{input_per_m, output_per_m, train_usd | "
                                  f"train_per_m + trained_tokens}}")
        self.api = {str(k): v if isinstance(v, ApiPrice) else build_config(ApiPrice, v, source=f"prices.api.{k}")
                    for k, v in raw.items()}

    def for_api(self, name: str, model: str) -> ApiPrice | None:
        """The price of an API method: by its method name, else by its served model name."""
        return self.api.get(name) or self.api.get(model)


@dataclass
class CompareConfig:
    """A comparison (``configs/compare/*.yaml``). Paths are relative to the current directory."""

    # the shared start ("" = build one in OUT/start, like `sqlcoach demo`)
    start: str = ""
    world: str = ""  # Spider-layout folder; "" with start "" = OUT/start/world
    data_kind: str = "spider"
    start_size: str = "small"  # model size when building the start (sqlcoach.models.tiny.SIZES)
    start_sft_steps: int = 250
    # the built start's learning-rate schedule: constant (deliberately short of converged, the
    # demo comparison) or cosine (the demo's warmup-then-anneal, by steps: a converged start that
    # is the same on every machine, unlike the demo's clock-driven run)
    start_schedule: Literal["constant", "cosine"] = "constant"
    start_world_train: int | None = None  # questions in a built world (None: the world's default)
    start_world_dev: int | None = None
    # the budget every method gets
    budget: Literal["steps", "seconds", "samples"] = "steps"
    budget_value: float = 50
    seed: int = 0
    # run every method once per seed, all from the same start (built with `seed`); the report shows
    # mean +- 95% CI over questions and seeds and each method's paired difference to `control`
    # (null: one run, with `seed`)
    seeds: list[int] | None = None
    control: str | None = None  # the method the others are compared with (null: the one named "sft", if any)
    # evaluation (the same for every method)
    eval_split: str = "dev"
    eval_limit: int | None = None  # N questions of eval_split stratified over its databases (None: all)
    # which questions of eval_split are scored: all, or half B (data.questions.question_bucket >= 50,
    # the fixed split rule of `sqlcoach adapt`'s benchmark); null: b when a method is `adapt` (it
    # adapts on half A, without labels, and no row may be scored on questions it adapted on), else all
    eval_half: str | None = None
    eval_batch_size: int = 32
    max_new_tokens: int = 96
    # the prompt every method trains and is scored with (null: the start model's sqlcoach_recipe.json;
    # a start built here records the demo's recipe)
    template: str | None = None
    schema_style: str | None = None
    schema_sample_values: int | None = None
    eval_start: bool = True  # also evaluate the start checkpoint itself (row "start")
    # also score N questions of a split whose databases were seen in training, evenly spread over
    # it (in-distribution EX: moves earlier than EX on unseen databases; 0 = off)
    seen_eval_split: str = "train"
    seen_eval_limit: int = 0
    # the headroom table for every local row (issue 24): each evaluated model also samples N answers
    # per question at headroom_temperature, and greedy / first / vote / vote-nonempty among them /
    # pass@k are reported with intervals; the row's EX stays greedy (0 = off: N x the evaluation's
    # generation cost). A verifier row always samples (its own n).
    headroom_n: int = 0
    headroom_temperature: float = 0.8
    # evaluate every local policy row (the start included) as an agent (config.agent.AgentEval; a
    # method's own agent: replaces it, agent: false opts out): the row's EX is the trajectories'
    # final answers, beside mean turns, queries run and recoveries (null: single pass)
    eval_agent: Any = None
    # machine
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = 1  # OMP_NUM_THREADS of each child process (None: inherit)
    # what to compare
    methods: Any = None
    # $ per machine-hour and per million API tokens (PriceTable; null: no cost columns)
    prices: Any = None

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise ConfigError(f"budget must be one of {BUDGETS}, got {self.budget!r}")
        if self.budget_value <= 0:
            raise ConfigError(f"budget_value must be > 0 (got {self.budget_value}): each method needs something to spend")
        if self.budget in ("steps", "samples") and self.budget_value != int(self.budget_value):
            raise ConfigError(f"budget_value must be a whole number for budget={self.budget} (got {self.budget_value})")
        if self.start_schedule not in ("constant", "cosine"):
            raise ConfigError(f"start_schedule must be constant or cosine, got {self.start_schedule!r}")
        if self.start_sft_steps < 1:
            raise ConfigError("start_sft_steps must be >= 1")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ConfigError("eval_limit must be >= 1 or null (all questions)")
        if self.seen_eval_limit < 0:
            raise ConfigError("seen_eval_limit must be >= 0 (0: no evaluation on seen databases)")
        if self.headroom_n == 1 or self.headroom_n < 0:
            raise ConfigError(f"headroom_n must be 0 (off) or >= 2 samples per question, got {self.headroom_n}")
        if self.headroom_temperature <= 0:
            raise ConfigError("headroom_temperature must be > 0: greedy samples are all the same")
        if self.eval_batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError("eval_batch_size and max_new_tokens must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads must be >= 1 or null (inherit OMP_NUM_THREADS)")
        from sqlcoach.config.base import _choices_error
        from sqlcoach.data.registry import LOADERS
        from sqlcoach.prompts.templates import TEMPLATES
        from sqlcoach.schema.serialize import STYLES

        for key, choices in (("data_kind", LOADERS), ("template", TEMPLATES), ("schema_style", STYLES)):
            if getattr(self, key) is not None and getattr(self, key) not in choices:
                raise _choices_error(key, getattr(self, key), choices)
        if self.start and not self.world:
            raise ConfigError("world is required when start is given: the data the methods train and evaluate on")
        raw = self.methods
        if not raw:
            raise ConfigError("methods must list at least one method (name, method, config, overrides)")
        if not isinstance(raw, list):
            raise ConfigError("methods must be a list of mappings")
        specs: list[MethodSpec] = []
        for i, item in enumerate(raw):
            if isinstance(item, MethodSpec):
                specs.append(item)
                continue
            if not isinstance(item, dict):
                raise ConfigError(f"methods[{i}] must be a mapping with name, method, config, overrides")
            specs.append(build_config(MethodSpec, item, source=f"methods[{i}]"))
        names = [s.name for s in specs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup or "start" in names:
            raise ConfigError(f"method names must be unique and not 'start' (reserved for the start row): {dup or ['start']}")
        self.methods = specs
        adapting = [s.name for s in specs if s.method in ADAPT_KINDS]
        if self.eval_half is None:
            self.eval_half = "b" if adapting else "all"
        if self.eval_half not in EVAL_HALVES:
            raise ConfigError(f"eval_half must be one of {EVAL_HALVES} or null, got {self.eval_half!r}")
        if adapting and self.eval_half != "b":
            raise ConfigError(f"eval_half={self.eval_half!r} with the adapt method(s) {adapting}: adapt trains on half A of "
                              f"the {self.eval_split} questions, so every row is scored on half B (eval_half: b or null)")
        if self.prices is not None and not isinstance(self.prices, PriceTable):
            if not isinstance(self.prices, dict):
                raise ConfigError("prices must be a mapping (hardware, train_per_hour, predict_per_hour, api)")
            self.prices = build_config(PriceTable, self.prices, source="prices")
        if self.seeds is not None:
            if not isinstance(self.seeds, list) or not self.seeds or not all(isinstance(x, int) for x in self.seeds):
                raise ConfigError(f"seeds must be a non-empty list of integers or null, got {self.seeds!r}")
            if len(set(self.seeds)) != len(self.seeds):
                raise ConfigError(f"seeds must be distinct, got {self.seeds}")
        from sqlcoach.config.agent import AgentEval

        self.eval_agent = AgentEval.of(self.eval_agent, where="eval_agent")
        agents = [s.name for s in specs if s.agent_eval(self.eval_agent) is not None]
        if self.eval_start and self.eval_agent is not None:
            agents.insert(0, "start")
        if agents and self.headroom_n:
            raise ConfigError(f"headroom_n samples single-pass answers; the rows {agents} are evaluated as agents "
                              "(eval_agent / agent:): set headroom_n: 0, or agent: false on those rows")
        if self.control is not None and self.control not in names:
            raise ConfigError(f"control={self.control!r} is not one of the methods {names}")

    def seed_list(self) -> list[int]:
        """The seeds every method runs with: ``seeds``, else ``[seed]``."""
        return list(self.seeds) if self.seeds else [self.seed]

    def control_name(self) -> str | None:
        """The method each other one is compared with: ``control``, else the one named ``sft``."""
        if self.control:
            return self.control
        return "sft" if any(m.name == "sft" for m in self.methods) else None


def load_compare_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> CompareConfig:
    """Read and validate a compare YAML (unknown keys are errors, also inside ``methods``)."""
    return load_config(CompareConfig, path, overrides)
