"""The generation engine behind ``sqlcoach serve``: a bounded queue and one thread that batches.

Requests (``Job``) wait in a bounded queue; one generation thread takes every waiting job that
shares its decoding settings (greedy, or the same temperature and top-p) up to ``max_batch`` and
runs them as ONE ``model.generate`` call through ``generate.hf.decoding_config`` and
``neutral_generate`` (so nothing in the checkpoint's ``generation_config`` changes what is
decoded, as in prediction). Jobs that arrive while a batch runs form the next batch: there is no
artificial wait, so a lone request is answered at once and concurrent ones share forward passes.

Per job, inside the shared batch (``_RowControl``, a transformers ``StoppingCriteria`` that sees
each new token):

* its own ``max_new_tokens`` (the batch runs to the largest; a row that reached its own cap is
  finished and padded from then on), its ``stop`` strings (the text is cut before the stop, or
  just after it with ``GenParams.include_stop``) and the model's eos;
* its deadline (``Job.deadline``, monotonic seconds): a row past it is finished with
  ``finish_reason="length"`` and ``deadline_hit=True``; a job still queued at its deadline is
  answered with ``QueueTimeout`` and never generated;
* cancellation (``Job.cancel()``, e.g. a streaming client that went away): the row stops.

Guarantees: ``submit`` never blocks; it raises ``QueueFull`` when ``max_queue`` jobs are already
waiting. Every submitted job gets exactly one ``on_done`` call, with a ``JobResult`` or an
exception (a failure inside ``generate`` is given to every job of that batch, logged, and the
thread goes on with the next batch). Streaming jobs get their text through ``on_text`` in order,
each piece once, before ``on_done``; the concatenation of the pieces is ``JobResult.text``.

A sampled job with a ``seed`` runs in a batch of its own, after ``torch.manual_seed(seed)``: the
same seeded request to the same server (model, device, library versions) gets the same text,
whatever else is queued. Greedy jobs ignore the seed (greedy decoding has no randomness).

Not guaranteed: the deadline is checked once per decoding step, so one step's time (the prompt's
forward pass for the first) can overrun it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("sqlcoach.serve")


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs already: try again later (HTTP 503 + Retry-After)."""


class QueueTimeout(Exception):
    """The job's deadline passed while it was still waiting in the queue."""


@dataclass(frozen=True)
class GenParams:
    """What one request asks for. ``temperature == 0`` is greedy."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None  # sampling only: the job is generated alone, after torch.manual_seed(seed)
    include_stop: bool = False  # keep the stop string that ended the text (the agent's turns end with their tag)

    @property
    def seeded(self) -> bool:
        """A sampled job with a seed: it shares its ``generate`` call with no other job."""
        return self.temperature > 0 and self.seed is not None

    def batch_key(self) -> tuple[Any, ...]:
        """Jobs with the same key can share one ``generate`` call (one GenerationConfig)."""
        if self.temperature <= 0:
            return ("greedy",)
        return ("sample", float(self.temperature), float(self.top_p))


@dataclass
class JobResult:
    text: str
    finish_reason: str  # "stop" (eos or a stop string) or "length" (max tokens or deadline)
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # from submission to the end of its generation
    deadline_hit: bool = False


@dataclass
class Job:
    """One generation request. ``on_done(result_or_exception)`` is called once, from the engine
    thread; ``on_text(piece)`` (optional) receives the text as it is decoded."""

    prompt_ids: list[int]
    params: GenParams
    deadline: float
    on_done: Callable[[Any], None]
    on_text: Callable[[str], None] | None = None
    submitted: float = field(default_factory=time.monotonic)
    _cancelled: bool = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled


#: (model, tokenizer, jobs) -> one JobResult per job, in order; replaceable in tests.
BatchFn = Callable[[Any, Any, list[Job]], list[JobResult]]


class Engine:
    """Bounded queue + one batching generation thread over a loaded ``(model, tokenizer)``."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = 16, max_queue: int = 256,
                 batch_fn: BatchFn | None = None):
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.batch_fn = batch_fn or hf_generate_batch
        self._pending: deque[Job] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self.running = 0  # jobs in the batch being generated now
        self.batches = 0  # generate calls so far
        self.batched_jobs = 0  # jobs those calls held (batched_jobs / batches = mean batch size)
        self._thread = threading.Thread(target=self._loop, name="sqlcoach-generate", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job``; ``QueueFull`` when ``max_queue`` jobs are waiting (never blocks)."""
        with self._cv:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"{len(self._pending)} requests are waiting (the queue holds {self.max_queue})")
            self._pending.append(job)
            self._cv.notify()

    def queued(self) -> int:
        with self._cv:
            return len(self._pending)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            left = list(self._pending)
            self._pending.clear()
            self._cv.notify_all()
        for job in left:
            _deliver(job, QueueFull("the server is shutting down"))
        self._thread.join(timeout=30)

    def _take_batch(self) -> list[Job]:
        """The oldest waiting job and every other waiting job with its batch key (up to max_batch)."""
        with self._cv:
            while not self._pending and not self._closed:
                self._cv.wait(timeout=1.0)
            if self._closed:
                return []
            first = self._pending[0].params
            key, room = first.batch_key(), 1 if first.seeded else self.max_batch
            batch: list[Job] = []
            rest: deque[Job] = deque()
            while self._pending:
                job = self._pending.popleft()
                if len(batch) < room and job.params.batch_key() == key and not (batch and job.params.seeded):
                    batch.append(job)
                else:
                    rest.append(job)
            self._pending = rest
            self.running = len(batch)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                if self._closed:
                    return
                continue
            now = time.monotonic()
            live = []
            for job in batch:
                if job.cancelled:
                    _deliver(job, QueueTimeout("cancelled before it started"))
                elif now > job.deadline:
                    _deliver(job, QueueTimeout("the request's deadline passed while it waited in the queue"))
                else:
                    live.append(job)
            if live:
                self._generate(live)
            with self._cv:
                self.running = 0

    def _generate(self, jobs: list[Job]) -> None:
        try:
            results = self.batch_fn(self.model, self.tokenizer, jobs)
        except Exception as exc:  # noqa: BLE001 - a failed batch must not stop the server
            log.exception("generation failed for a batch of %d requests", len(jobs))
            for job in jobs:
                _deliver(job, exc)
            return
        self.batches += 1
        self.batched_jobs += len(jobs)
        results = list(results)
        for i, job in enumerate(jobs):  # every job is answered, even by a batch_fn that returned too few
            _deliver(job, results[i] if i < len(results) else RuntimeError("the batch returned no result for a job"))


def _deliver(job: Job, outcome: Any) -> None:
    try:
        job.on_done(outcome)
    except Exception:  # noqa: BLE001 - a callback error must not stop the engine thread
        log.exception("a request's completion callback failed")


class _RowControl:
    """Per-row stopping and streaming inside one batched ``generate`` call (see module docstring).

    Called by transformers after every decoding step with ``input_ids`` [B, prompt_len + t];
    returns a bool tensor [B]: True for rows that are finished."""

    def __init__(self, jobs: list[Job], tokenizer: Any, eos: set[int], prompt_len: int):
        self.jobs = jobs
        self.tok = tokenizer
        self.eos = eos
        self.prompt_len = prompt_len
        n = len(jobs)
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.text: list[str] = [""] * n  # the decoded text kept so far (cut at a stop string)
        self.sent: list[int] = [0] * n  # characters already given to on_text
        self.reason: list[str | None] = [None] * n
        self.deadline_hit = [False] * n
        self.hold = [max((len(s) for s in j.params.stop), default=1) - 1 for j in jobs]

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch

        last = input_ids[:, -1].tolist()
        now = time.monotonic()
        for i, job in enumerate(self.jobs):
            if self.reason[i] is not None:
                continue
            tok = last[i]
            if tok in self.eos:
                self._finish(i, "stop")
                continue
            self.tokens[i].append(tok)
            self._decode(i)
            if self.reason[i] is not None:
                continue
            if len(self.tokens[i]) >= job.params.max_new_tokens or job.cancelled:
                self._finish(i, "length")
            elif now > job.deadline:
                self.deadline_hit[i] = True
                self._finish(i, "length")
        return torch.tensor([r is not None for r in self.reason], dtype=torch.bool, device=input_ids.device)

    def _decode(self, i: int) -> None:
        full = self.tok.decode(self.tokens[i], skip_special_tokens=True)
        for s in self.jobs[i].params.stop:
            at = full.find(s)
            if at >= 0:
                self.text[i] = full[: at + len(s)] if self.jobs[i].params.include_stop else full[:at]
                self._finish(i, "stop")
                return
        self.text[i] = full
        # hold back a partial UTF-8 character and a possible start of a stop string
        ready = len(full) - (1 if full.endswith("\ufffd") else 0) - self.hold[i]
        self._emit(i, ready)

    def _emit(self, i: int, upto: int) -> None:
        cb = self.jobs[i].on_text
        if cb is not None and upto > self.sent[i]:
            piece = self.text[i][self.sent[i]:upto]
            self.sent[i] = upto
            try:
                cb(piece)
            except Exception:  # noqa: BLE001
                log.exception("a streaming callback failed")

    def _finish(self, i: int, reason: str) -> None:
        self.reason[i] = reason
        self._emit(i, len(self.text[i]))

    def finish_all(self) -> None:
        for i in range(len(self.jobs)):
            if self.reason[i] is None:
                self._finish(i, "length")


def hf_generate_batch(model: Any, tokenizer: Any, jobs: list[Job]) -> list[JobResult]:
    """One ``neutral_generate`` call for ``jobs`` (same batch key): left-padded prompts, the
    largest ``max_new_tokens`` of the batch, ``_RowControl`` for each row's own limits."""
    import torch
    from transformers import StoppingCriteriaList

    from sqlcoach.generate.hf import decoding_config, neutral_generate

    p = jobs[0].params
    sample = p.temperature > 0
    cfg = decoding_config(model, tokenizer, do_sample=sample, temperature=p.temperature if sample else 1.0,
                          top_p=p.top_p, top_k=0, max_new_tokens=max(j.params.max_new_tokens for j in jobs))
    tokenizer.padding_side = "left"  # the last column must be every row's last prompt token
    batch = tokenizer.pad({"input_ids": [j.prompt_ids for j in jobs]}, return_tensors="pt")
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    control = _RowControl(jobs, tokenizer, set(cfg.eos_token_id), batch["input_ids"].shape[1])
    if p.seeded:  # _take_batch gives a seeded job a batch of its own
        torch.manual_seed(int(p.seed))  # type: ignore[arg-type]
    with torch.inference_mode():
        neutral_generate(model, cfg, **batch, stopping_criteria=StoppingCriteriaList([control]))
    control.finish_all()
    now = time.monotonic()
    return [JobResult(text=control.text[i], finish_reason=control.reason[i] or "length",
                      prompt_tokens=len(j.prompt_ids), completion_tokens=len(control.tokens[i]),
                      seconds=now - j.submitted, deadline_hit=control.deadline_hit[i])
            for i, j in enumerate(jobs)]
