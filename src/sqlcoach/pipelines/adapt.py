"""``sqlcoach adapt``: adapt a model to your own database from unlabeled questions (no gold SQL).

Reads top to bottom:

1. questions (``data.questions.load_questions``: text lines, JSONL or a Spider/BIRD file whose
   gold SQL is never read; every example has ``gold_sql=None``) are split by a fixed rule on the
   sha256 of the question text: ``held_percent`` % are held aside (never trained on) to watch
   for collapse, the rest are trained on;
2. GRPO (``train.grpo.run_grpo``, the project's one GRPO recipe, called with a config) from the
   model on the training questions with the task ``consensus`` (``tasks.consensus``: rows
   without gold) and the rewards ``reward`` names (default ``consensus``: membership in the
   largest non-empty, error-free result group holding >= ``min_share`` of the G samples;
   ``rewards.consensus``; ``verifier``: a trained verifier's score of (question, SQL, result),
   ``rewards.verifier``, its folder ``verifier``; ``reward_weights``; ``reward_entries``). With
   no consensus among the rewards a weight-0 consensus monitor still runs (the watch's
   training-batch signals and the report read its decisions). LoRA by default, a KL anchor to the start model (``beta`` > 0), a
   short budget (``max_steps``);
3. the watch (``AdaptWatch``, a ``TrainerCallback``): before training, the start model samples G
   answers per held-aside question and their consensus is the pseudo-label; every
   ``check_every`` steps the policy's greedy answer to each held-aside question is executed and
   logged: agreement with that pseudo-label, the share of empty answers, the share of
   questions whose greedy SQL is identical to another question's (collapse to one query), and
   from the training batches the mean result entropy and distinct-SQL share. Training stops
   early when agreement falls ``stop_drop`` below its best, or identical answers exceed
   ``max_identical``, or empty answers rise ``max_empty_rise`` above the start's;
4. if no training question ever reached consensus, the run writes no model (``final/`` and the
   checkpoints are removed) and raises ``DataError`` saying so; otherwise ``final/`` is the model
   and the trainer's ``checkpoint-N`` folders are removed (adapt does not resume, and after a
   rollback the last checkpoint holds the weights the watch rejected);
5. the model's prompt recipe (``sqlcoach_recipe.json``) records what it was adapted on
   (``adapted``: databases, the questions file's sha256, the rewards and their weights, the
   verifier's folder and weights sha256, rounds), so ``predict`` and
   ``serve`` use it like any sqlcoach model; ``report.md`` + ``report.json`` + ``collapse.png``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from sqlcoach.errors import DataError

DECISIONS_FILE = "consensus_decisions.jsonl"
BEST_DIR = "best-check"  # the policy of the best watch check, while training runs
REPORT_MD = "report.md"
REPORT_JSON = "report.json"
#: the name TRL logs the weight-0 consensus reward by, when consensus is not among the rewards
#: trained on (``reward_entries``): it writes the decisions file and adds nothing to any reward
MONITOR = "consensus_monitor"


@dataclass
class AdaptOptions:
    """What ``sqlcoach adapt`` takes besides the model, the questions and the output folder."""

    reward: list[Any] = field(default_factory=lambda: ["consensus"])  # names in rewards.REWARDS (or {name: ...} entries)
    reward_weights: list[float] | None = None  # one per ``reward`` entry, in order: each reward's ``weight``
    verifier: str | None = None  # a `sqlcoach train verifier` folder: the ``verifier`` reward's ``verifier_path``
    min_share: float = 0.4
    num_generations: int = 8
    max_steps: int = 30
    beta: float = 0.04
    learning_rate: float = 2e-5
    method: str = "lora"
    temperature: float = 1.0
    max_completion_length: int = 128
    questions_per_step: int = 2
    held_percent: int = 10
    check_every: int = 5
    stop_drop: float = 0.15
    max_identical: float = 0.5
    max_empty_rise: float = 0.25
    seed: int = 0
    use_cpu: bool = False
    reward_workers: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)  # more GRPORunConfig keys


def split_held(examples: list[Any], held_percent: int) -> tuple[list[Any], list[Any]]:
    """``(train, held)``: a question is held aside when its text's bucket (``question_bucket``) is
    below ``held_percent``. When that leaves no training question, nothing is held."""
    from sqlcoach.data.questions import question_bucket

    held = [e for e in examples if question_bucket(e.question) < held_percent]
    train = [e for e in examples if question_bucket(e.question) >= held_percent]
    return (train, held) if train else (list(examples), [])


def reward_entries(opts: AdaptOptions, out: Path) -> list[Any]:
    """The GRPO ``rewards`` entries of an adapt run (``{name, ...}`` dicts and ``(name, options)``
    pairs, as GRPO's ``rewards:`` key takes them): ``opts.reward`` with ``reward_weights`` as each entry's ``weight``, the
    verifier folder (``opts.verifier``) as each ``verifier`` entry's ``verifier_path`` (checked:
    ``models.verifier.read_spec`` and ``check_head``, before any model loads), and the consensus
    options (``min_share``, the decisions file). When no entry is ``consensus``, a consensus
    *monitor* (``MONITOR``, weight 0: it adds nothing to any reward) is put first, so that the
    decisions file, the report's per-database table and the watch's training-batch signals exist
    whatever the reward; first, because its results are cached in the pool and the verifier's
    execution of the same SQL then reuses them. ``ConfigError`` (one line) for weights that do not
    match the rewards, a verifier reward without a folder, a folder without a verifier reward, a
    folder that is not a verifier."""
    from sqlcoach.errors import ConfigError

    rewards = [dict(r) if isinstance(r, dict) else {"name": r} for r in opts.reward]
    names = [str(r.get("name")) for r in rewards]
    if opts.reward_weights is not None:
        if len(opts.reward_weights) != len(rewards):
            raise ConfigError(f"reward weights {list(opts.reward_weights)} do not match the rewards {names}: "
                              "give one weight per reward, in the same order (--reward-weights 1,0.5)")
        for r, w in zip(rewards, opts.reward_weights):
            if "weight" in r and float(r["weight"]) != float(w):
                raise ConfigError(f"reward {r['name']!r} has weight {r['weight']} in its entry and {w} in the reward "
                                  "weights: give it once")
            r["weight"] = float(w)
    verifiers = [r for r in rewards if r.get("name") == "verifier"]
    if opts.verifier is not None and not verifiers:
        raise ConfigError(f"a verifier folder ({opts.verifier}) was given but no reward reads it: add verifier to "
                          f"the rewards (--reward verifier, or --reward consensus,verifier); rewards now {names}")
    for r in verifiers:
        if opts.verifier is not None:
            r.setdefault("verifier_path", opts.verifier)
        if opts.use_cpu:
            r.setdefault("device", "cpu")  # the verifier runs where the policy trains
        if not r.get("verifier_path"):
            raise ConfigError("the verifier reward needs a verifier folder: --verifier DIR (`verifier:` in a compare "
                              "adapt method), the final/ folder `sqlcoach train verifier` wrote")
        from sqlcoach.models.verifier import check_head, read_spec

        read_spec(r["verifier_path"])  # a folder that is not a verifier: the loader's one-line ConfigError
        check_head(r["verifier_path"])
    consensus_options = {"min_share": opts.min_share, "decisions_path": str(out / DECISIONS_FILE)}
    for r in rewards:
        if r.get("name") == "consensus":
            for k, v in consensus_options.items():
                r.setdefault(k, v)
    if "consensus" not in names:  # a (name, options) pair: its options' `name` is the name TRL logs it by
        rewards.insert(0, ["consensus", {"name": MONITOR, "weight": 0.0, **consensus_options}])
    return rewards


def grpo_config(model: str, out: Path, opts: AdaptOptions) -> Any:
    """The ``GRPORunConfig`` of an adapt run (the GRPO recipe's own config; ``overrides`` last;
    the rewards: ``reward_entries``)."""
    from sqlcoach.config import GRPORunConfig, build_config

    rewards = reward_entries(opts, out)
    values: dict[str, Any] = dict(
        model=model, data_path="(unlabeled questions, given by sqlcoach adapt)", output_dir=str(out),
        task="consensus", rewards=rewards, curate_gold=False, method=opts.method, beta=opts.beta,
        num_generations=opts.num_generations, per_device_train_batch_size=opts.num_generations * opts.questions_per_step,
        max_steps=opts.max_steps, learning_rate=opts.learning_rate, temperature=opts.temperature,
        max_completion_length=opts.max_completion_length, seed=opts.seed, use_cpu=opts.use_cpu,
        reward_workers=opts.reward_workers, scale_rewards="none", save_steps=10 ** 6, sample_every=0,
    )
    if opts.use_cpu:
        values["dtype"] = "float32"
    values.update(opts.overrides)
    return build_config(GRPORunConfig, values, source="sqlcoach adapt")


class Watch:
    """The gold-free collapse watch over the held-aside questions (module docstring, step 3).

    ``rows``: the held-aside prompt rows; ``run_sql(rows, sqls) -> results``. ``labels`` maps a
    held question id to its pseudo-label result (start model's consensus), ``None`` without one."""

    def __init__(self, rows: list[dict[str, Any]], *, tokenizer: Any, run_sql: Callable[..., list[Any]],
                 opts: AdaptOptions, decisions: Callable[[], list[dict[str, Any]]], log: Callable[[str], None],
                 best_dir: Path | None = None):
        self.rows = rows
        self.tokenizer = tokenizer
        self.run_sql = run_sql
        self.opts = opts
        self.decisions = decisions
        self.log = log
        self.labels: dict[str, Any] = {}
        self.curve: list[dict[str, Any]] = []
        self.start_greedy: list[str] = []
        self.last_greedy: list[str] = []
        self.best = -1.0
        self.seen = 0
        self.best_dir = best_dir  # the policy of the best check is saved here (rollback on early stop)
        self.best_step: int | None = None
        self.stopped: str | None = None

    def _texts(self) -> list[str]:
        from sqlcoach.prompts.chat import to_text

        return [to_text(r["prompt"], self.tokenizer) for r in self.rows]

    def _sqls(self, texts: list[list[str]]) -> list[list[str]]:
        from sqlcoach.rewards.common import completion_sql

        return [[completion_sql(t, r.get("sql_names")) for t in ts] for r, ts in zip(self.rows, texts)]

    def label(self, model: Any) -> None:
        """The start model's pseudo-labels: its consensus over G samples of each held question."""
        from sqlcoach.generate.hf import generate_texts
        from sqlcoach.rewards.consensus import consensus

        if not self.rows:
            return
        gen = generate_texts(model, self.tokenizer, self._texts(), n=self.opts.num_generations,
                             temperature=self.opts.temperature, max_new_tokens=self.opts.max_completion_length,
                             seed=self.opts.seed)
        for row, sqls in zip(self.rows, self._sqls(gen.texts)):
            results = self.run_sql([row] * len(sqls), sqls)
            c = consensus(sqls, results, min_share=self.opts.min_share)
            rep = c.group_of.index(c.winner) if c.winner is not None else None
            self.labels[row["id"]] = results[rep] if rep is not None else None
        self.log(f"adapt watch: {sum(v is not None for v in self.labels.values())} of {len(self.rows)} held-aside "
                 "questions have a start-model consensus (the pseudo-labels agreement is measured on)")

    def check(self, model: Any, step: int) -> dict[str, Any]:
        """One point of the collapse curve (and the stop decision) at ``step``."""
        from collections import Counter

        from sqlcoach.execution.compare import same_result
        from sqlcoach.generate.hf import generate_texts
        from sqlcoach.rewards.consensus import empty_result

        point: dict[str, Any] = {"step": step}
        if self.rows:
            was_training = model.training
            model.eval()
            gen = generate_texts(model, self.tokenizer, self._texts(), n=1, temperature=0.0,
                                 max_new_tokens=self.opts.max_completion_length, seed=self.opts.seed)
            if was_training:
                model.train()
            sqls = [s[0] for s in self._sqls(gen.texts)]
            results = self.run_sql(self.rows, sqls)
            labelled = [(r, res) for r, res in zip(self.rows, results) if self.labels.get(r["id"]) is not None]
            agree = [res is not None and res.error is None and res.rows is not None
                     and same_result(res.rows, self.labels[r["id"]].rows, mode="spider", order_matters=False)
                     for r, res in labelled]
            point["agreement"] = round(sum(agree) / len(agree), 4) if agree else None
            point["greedy_empty"] = round(sum(1 for res in results if res is None or res.error is None
                                              and empty_result(res.rows)) / len(results), 4)
            counts = Counter((r["db_id"], s) for r, s in zip(self.rows, sqls) if s)
            point["greedy_identical"] = round(sum(1 for r, s in zip(self.rows, sqls) if s and counts[(r["db_id"], s)] > 1)
                                              / len(sqls), 4)
            point["greedy_errors"] = round(sum(1 for res in results if res is None or res.error is not None) / len(results), 4)
            if not self.start_greedy:
                self.start_greedy = sqls
            self.last_greedy = sqls
        every = self.decisions()
        recent, self.seen = every[self.seen:], len(every)  # the training batches since the last check
        if recent:
            point["train_entropy"] = round(sum(d["entropy"] for d in recent) / len(recent), 4)
            point["train_distinct"] = round(sum(d["distinct_sql"] / d["samples"] for d in recent) / len(recent), 4)
            point["train_empty"] = round(sum(d["empty"] / d["samples"] for d in recent) / len(recent), 4)
            point["train_skipped"] = round(sum(d["reason"] is not None for d in recent) / len(recent), 4)
        self.curve.append(point)
        self.log("adapt watch: " + ", ".join(f"{k}={v}" for k, v in point.items()))
        a = point.get("agreement")
        if a is not None and a > self.best:  # strictly better: on a tie the earlier policy is kept
            self.best_step = step
            if step > 0 and self.best_dir is not None:
                shutil.rmtree(self.best_dir, ignore_errors=True)
                model.save_pretrained(str(self.best_dir))
        self.stopped = self.stopped or self._stop(point)
        return point

    def _stop(self, point: dict[str, Any]) -> str | None:
        o = self.opts
        start = self.curve[0]
        a = point.get("agreement")
        if a is not None:
            if a < self.best - o.stop_drop:
                return f"agreement with the held-aside pseudo-labels fell to {a} (best {self.best})"
            self.best = max(self.best, a)
        if point.get("greedy_identical", 0) > o.max_identical:
            return f"identical greedy answers on {point['greedy_identical']:.0%} of held-aside questions (> {o.max_identical:.0%})"
        if point.get("greedy_empty", 0) > start.get("greedy_empty", 0) + o.max_empty_rise:
            return f"empty greedy answers rose to {point['greedy_empty']:.0%} (start {start.get('greedy_empty', 0):.0%})"
        return None


def watch_callback(watch: Watch, every: int) -> Any:
    """A ``TrainerCallback``: the watch's labels and first check before training, a check every
    ``every`` steps and at the end, and ``should_training_stop`` once the watch says stop."""
    from transformers import TrainerCallback

    class AdaptWatch(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            watch.tokenizer = kw.get("processing_class") or kw.get("tokenizer")  # the trainer's own
            watch.label(model)
            watch.check(model, 0)

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            if every and state.global_step % every == 0:
                watch.check(model, state.global_step)
                if watch.stopped:
                    watch.log(f"adapt: early stop at step {state.global_step}: {watch.stopped}")
                    control.should_training_stop = True

        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            if not watch.curve or watch.curve[-1]["step"] != state.global_step:
                watch.check(model, state.global_step)

    return AdaptWatch()


def roll_back(final: Path, best: Path) -> bool:
    """Replace the weights in ``final`` with those saved at the best check (``best``), when both
    hold the same kind of weights (an adapter, or a full model); ``False`` when they do not (a
    run saved merged: its best check is an adapter) and nothing was changed."""
    files = [f for f in best.glob("*.safetensors")]
    if not files or not all((final / f.name).is_file() for f in files):
        return False
    for f in files:
        shutil.copyfile(f, final / f.name)
    return True


def reward_names(spec: list[Any]) -> list[str]:
    """The names of the rewards of ``AdaptOptions.reward`` (names or ``{"name": ...}`` entries)."""
    return [str(r if isinstance(r, str) else r.get("name")) for r in spec]


def reward_record(entries: list[Any]) -> dict[str, Any]:
    """What the adapted model's recipe says of its rewards (``reward_entries``' output): the
    rewards trained on and their weights, the consensus monitor when one ran, and for each
    verifier its folder (resolved path) and the sha256 of its weights
    (``models.verifier.weights_sha256``)."""
    from sqlcoach.models.verifier import weights_sha256

    listed = [entries] if isinstance(entries, str) else list(entries)  # `--set rewards=...` may give names
    trained = [r if isinstance(r, dict) else {"name": r} for r in listed if isinstance(r, (str, dict))]
    rec: dict[str, Any] = {"rewards": [str(r["name"]) for r in trained],
                           "reward_weights": {str(r["name"]): float(r.get("weight", 1.0)) for r in trained}}
    if len(trained) < len(listed):
        rec["monitor"] = MONITOR
    verifiers = [{"path": str(Path(r["verifier_path"]).resolve()), "weights_sha256": weights_sha256(r["verifier_path"])}
                 for r in trained if r["name"] == "verifier"]
    if verifiers:
        rec["verifier"] = verifiers[0] if len(verifiers) == 1 else verifiers
    return rec


def read_decisions(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def per_database(decisions: list[dict[str, Any]], train: list[Any], held: list[Any]) -> dict[str, dict[str, Any]]:
    """Per database: training questions, held-aside questions, questions used (a consensus in at
    least one round) and skipped (never), rounds skipped and why, mean vote share when used."""
    out: dict[str, dict[str, Any]] = {}
    for e in train:
        out.setdefault(e.db_id, {"questions": 0, "held_aside": 0})["questions"] += 1
    for e in held:
        out.setdefault(e.db_id, {"questions": 0, "held_aside": 0})["held_aside"] += 1
    for db, d in out.items():
        mine = [x for x in decisions if x["db_id"] == db]
        used = {x["id"] for x in mine if x["reason"] is None}
        seen = {x["id"] for x in mine}
        shares = [x["share"] for x in mine if x["reason"] is None]
        reasons: dict[str, int] = {}
        for x in mine:
            if x["reason"]:
                key = x["reason"].split(":")[0] if x["reason"].startswith("tie") else (
                    "below min_share" if "min_share" in x["reason"] else x["reason"])
                reasons[key] = reasons.get(key, 0) + 1
        d.update(sampled=len(seen), used=len(used), skipped=len(seen - used), rounds=len(mine),
                 rounds_skipped=sum(1 for x in mine if x["reason"]), skip_reasons=reasons,
                 mean_vote_share=round(sum(shares) / len(shares), 4) if shares else None)
    return dict(sorted(out.items()))


def adapt(model: str, questions_path: str, out_dir: str, *, databases: str | None = None, db: str | None = None,
          opts: AdaptOptions | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``sqlcoach adapt`` (module docstring); returns the report dict (also ``report.json``).
    ``DataError`` for bad questions or databases, when no question reached consensus, and when
    training stopped early with no check better than the start (no model is then written)."""
    from sqlcoach.data.questions import load_questions
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.sandbox import Limits
    from sqlcoach.prompts.recipe import read_recipe, resolve_prompt
    from sqlcoach.tasks.consensus import ConsensusTask
    from sqlcoach.train.grpo import run_grpo

    opts = opts or AdaptOptions()
    out = Path(out_dir)
    cfg = grpo_config(model, out, opts)  # bad options (rewards, verifier folder) fail before anything is read
    qs = load_questions(questions_path, databases=databases, db=db)
    out.mkdir(parents=True, exist_ok=True)
    decisions_path = out / DECISIONS_FILE
    decisions_path.unlink(missing_ok=True)
    train, held = split_held(list(qs.examples), opts.held_percent)
    log(f"adapt: {len(qs.examples)} questions ({qs.format}, sha256 {qs.sha256[:12]}) on {len(qs.databases)} "
        f"database(s); training on {len(train)}, {len(held)} held aside for the collapse watch")
    held_rows = ConsensusTask(resolve_prompt(model, log=None).builder()).train_rows(held, log=log) if held else []
    # the watch's SQL (model-written: hostile) runs in a worker process, killed past its deadline
    pool = ExecutorPool(workers=1, limits=Limits(timeout=cfg.reward_timeout))

    def run_sql(rows: list[dict[str, Any]], sqls: list[str]) -> list[Any]:
        jobs = [(r["db_path"], s) for r, s in zip(rows, sqls)]
        res = pool.run([j for j in jobs if j[1]]) if any(s for s in sqls) else []
        it = iter(res)
        return [next(it) if s else None for s in sqls]

    best_dir = out / BEST_DIR
    shutil.rmtree(best_dir, ignore_errors=True)
    watch = Watch(held_rows, tokenizer=None, run_sql=run_sql, opts=opts,
                  decisions=lambda: read_decisions(decisions_path), log=log, best_dir=best_dir)
    # TRL warns with the whole row for every question whose rewards are all None; a skipped
    # question is expected here and is logged once per round in the decisions file instead.
    trl_log = logging.getLogger("trl.trainer.grpo_trainer")
    level = trl_log.level
    trl_log.setLevel(logging.ERROR)
    try:
        summary = run_grpo(cfg, examples=train, callbacks=[watch_callback(watch, opts.check_every)], log=log)
    finally:
        trl_log.setLevel(level)
        pool.close()
    decisions = read_decisions(decisions_path)
    final = Path(summary.get("final_dir") or out / "final")
    record = reward_record(cfg.rewards)
    names = record["rewards"]
    scored, why, rolled_back = _outcome(names, decisions, decisions_path, summary, watch, final, best_dir, log)
    shutil.rmtree(best_dir, ignore_errors=True)
    # adapt has no resume, and after a rollback the last checkpoint holds the weights it rejected:
    # final/ is the model (or there is none), a checkpoint-N beside it only misleads
    for p in out.glob("checkpoint-*"):
        shutil.rmtree(p, ignore_errors=True)
    if not scored:
        shutil.rmtree(final, ignore_errors=True)
        raise DataError(why)
    rounds = max((d["call"] for d in decisions), default=summary.get("global_step"))
    adapted = {"databases": qs.databases, "questions_file": str(Path(questions_path).resolve()),
               "questions_sha256": qs.sha256, "questions": len(train), "held_aside": len(held),
               **record,
               "min_share": opts.min_share, "rounds": rounds, "steps": summary.get("global_step"),
               "early_stop": watch.stopped, "rolled_back_to_step": rolled_back, "start_model": model}
    rec = read_recipe(final)
    if rec is not None:
        replace(rec, source="adapt", history=[*rec.history, rec.source], adapted=adapted).save(final)
    report = write_report(out, adapted=adapted, summary=summary, decisions=decisions, watch=watch,
                          train=train, held=held, held_rows=held_rows)
    return report


def _outcome(names: list[str], decisions: list[dict[str, Any]], decisions_path: Path, summary: dict[str, Any],
             watch: Any, final: Path, best_dir: Path, log: Callable[[str], None]) -> tuple[bool, str, int | None]:
    """Whether the run earned a model: ``(scored, why not, step rolled back to)``. A run earns one
    when some question reached consensus (consensus alone), or some completion was scored (with
    another gold-free reward, e.g. the verifier, which scores every question: a question without
    consensus is then trained on the other rewards), and, after an early stop, a check beat the
    start; ``final/`` is rolled back to the best check when training stopped past it."""
    reached = any(d["reason"] is None for d in decisions)
    if set(names) == {"consensus"}:
        scored = reached
        why = (f"no question reached consensus in {len(decisions)} question-rounds (every one skipped: see "
               f"{decisions_path}); no model written. Lower --min-share, raise --group, or start from a stronger model")
    else:  # another gold-free reward: TRL logs the mean of the rewards it could score
        scored = any(p.get("reward") is not None for p in summary.get("reward_curve", []))
        why = f"the rewards {names} scored no completion in {summary.get('global_step')} steps; no model written"
        if scored and "consensus" in names and not reached:
            log(f"adapt: no question reached consensus in {len(decisions)} question-rounds; the model was trained "
                f"on the other rewards ({[n for n in names if n != 'consensus']}) alone")
    rolled_back = None
    if scored and watch.stopped and watch.best_step == 0:
        scored = False
        why = (f"training stopped early ({watch.stopped}) and no check after the start beat the start model's "
               "agreement on the held-aside questions: adapting did not help, no model written")
    elif scored and watch.stopped and watch.best_step is not None and watch.best_step < (summary.get("global_step") or 0):
        if roll_back(final, best_dir):
            rolled_back = watch.best_step
            log(f"adapt: early stop; final/ holds the policy of step {watch.best_step}, the best check")
        else:
            log("adapt: early stop, but final/ was saved merged and cannot be rolled back to the best check; kept as is")
    return scored, why, rolled_back


def write_report(out: Path, *, adapted: dict[str, Any], summary: dict[str, Any], decisions: list[dict[str, Any]],
                 watch: Watch, train: list[Any], held: list[Any], held_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``report.json``, ``report.md`` and ``collapse.png`` in ``out``; returns the report dict."""
    from sqlcoach.runtime.plots import plot_rewards

    changed = [{"db_id": r["db_id"], "question": r["question"], "before": a, "after": b}
               for r, a, b in zip(held_rows, watch.start_greedy, watch.last_greedy) if a != b]
    per_db = per_database(decisions, train, held)
    png = plot_rewards(watch.curve,
                       out / "collapse.png", title="adapt: agreement and collapse signals",
                       ylabel="share (entropy: nats)")
    report = {"adapted": adapted, "per_database": per_db, "reward_curve": summary.get("reward_curve", []),
              "collapse_curve": watch.curve, "early_stop": watch.stopped, "changed_answers": changed[:20],
              "changed_count": len(changed), "held_count": len(held_rows), "final": summary.get("final_dir"),
              "plots": {"reward": summary.get("plot_png"), "collapse": str(png) if png else None}}
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [f"# sqlcoach adapt: {', '.join(adapted['databases'])}", "",
             f"Start model `{adapted['start_model']}`; questions sha256 `{adapted['questions_sha256'][:16]}`; rewards "
             f"{adapted['rewards']} (min_share {adapted['min_share']}); {adapted['rounds']} reward rounds, "
             f"{adapted['steps']} steps; early stop: {watch.stopped or 'no'}.", "",
             *([f"Weights {adapted['reward_weights']}. " + ("Verifier " + ", ".join(
                 f"`{v['path']}` (weights sha256 `{v['weights_sha256'][:16]}`)" for v in _as_list(adapted["verifier"]))
                 + ". " if adapted.get("verifier") else "") + _skip_note(adapted["rewards"]), ""]
               if set(adapted["rewards"]) != {"consensus"} else []),
             "| database | train q | held q | sampled | used | skipped | rounds skipped | mean vote share | skip reasons |",
             "|---|---|---|---|---|---|---|---|---|"]
    for db, d in per_db.items():
        lines.append(f"| {db} | {d['questions']} | {d['held_aside']} | {d['sampled']} | {d['used']} | {d['skipped']} | "
                     f"{d['rounds_skipped']}/{d['rounds']} | {d['mean_vote_share']} | {d['skip_reasons']} |")
    lines += ["", "## Reward curve", "", "| step | reward |", "|---|---|"]
    lines += [f"| {p['step']} | " + ("every question skipped" if p.get("reward") is None else f"{p['reward']:.3f}") + " |"
              for p in report["reward_curve"]]
    keys = sorted({k for p in watch.curve for k in p if k != "step"})
    lines += ["", "## Collapse watch (held-aside greedy; training batches)", "",
              "| step | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += ["| " + " | ".join(str(p.get(k)) for k in ["step", *keys]) + " |" for p in watch.curve]
    lines += ["", f"## Held-aside answers that changed ({len(changed)} of {len(held_rows)})", ""]
    for c in changed[:10]:
        lines += [f"- **{c['db_id']}**: {c['question']}", f"  - before: `{c['before']}`", f"  - after: `{c['after']}`"]
    (out / REPORT_MD).write_text("\n".join(lines) + "\n")
    return report


def _as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]


def _skip_note(rewards: list[str]) -> str:
    """What 'used' and 'skipped' mean in the per-database table when a reward beside consensus
    scores every question (docs/adapt.md, "The verifier as reward")."""
    others = [r for r in rewards if r != "consensus"]
    head = ("Consensus is a monitor here (weight 0)" if "consensus" not in rewards
            else "Consensus' skip rule applies to the consensus term only")
    return (f"{head}: every question is trained on {', '.join(others)}'s scores, so 'used' / 'skipped' below count "
            "questions with / without a qualifying consensus, not questions trained on.")
