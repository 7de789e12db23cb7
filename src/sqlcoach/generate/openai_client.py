"""One client for every OpenAI-compatible chat endpoint: the API prediction backend and the judge.

``ChatClient(base_url, model).chat(messages)`` POSTs ``{base_url}/chat/completions`` (the OpenAI
convention: ``base_url`` ends with ``/v1``, e.g. ``http://127.0.0.1:8000/v1`` for ``sqlcoach
serve``, vLLM's server, or a hosted API) and returns a :class:`ChatResult`. ``run_requests`` runs
many of them with bounded concurrency and hands each result to a callback as it arrives, so the
caller can write it to disk at once (nothing is lost when a run is interrupted).

What is guaranteed:

* ``chat`` never raises because of the endpoint: every failure becomes a ``ChatResult`` with an
  error class from ``API_ERRORS``: ``rate_limited`` (HTTP 429 after every retry), ``server_error``
  (5xx after every retry), ``http_error`` (any other status, not retried: 400, 401, 404...),
  ``timeout`` (the request deadline passed, after every retry), ``connection`` (refused, reset,
  DNS..., after every retry), ``bad_response`` (a 200 whose body is not the OpenAI JSON: garbage,
  no ``choices``, a body over ``MAX_BODY_BYTES``; not retried: a server that answers garbage once
  will again).
* Retries: 429, 5xx, timeouts and connection errors are retried up to ``max_retries`` times, with
  exponential backoff and full jitter (a wait drawn uniformly from ``[0, min(backoff_max,
  backoff_base * 2**attempt)]``). A ``Retry-After`` header (seconds or an HTTP date) is honoured
  instead, capped at ``retry_after_max`` seconds; it also pauses every other request of the
  same client until then (a 429 is about the account, not one request).
* A request timeout that is a real wall-clock deadline for the whole attempt (connect, send, and
  every read of the body): a server that accepts the connection and never answers, or trickles
  one byte a second, is cut off at ``timeout`` seconds.
* Rate limiting: at most ``concurrency`` requests in flight (``run_requests``) and, with
  ``max_rps``, at most that many request starts per second across threads.
* Token usage: ``prompt_tokens`` / ``completion_tokens`` from the response's ``usage`` object
  (``None`` when the server does not send it: never guessed).

What is not done: streaming, tool calls, ``n > 1`` in one request (one completion per request),
and HTTPS proxies (``http.client`` connects directly; local servers need none). The API key is sent
as ``Authorization: Bearer`` and never logged or written to a file.

The standard library's ``http.client`` is used instead of the ``openai`` package on purpose: no new
dependency, our own retry policy (the package retries by itself) and a total deadline per attempt.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from sqlcoach.errors import ConfigError

#: error classes of a request that did not give a completion
API_ERRORS = ("rate_limited", "server_error", "http_error", "timeout", "connection", "bad_response")
#: the largest response body read (a hostile server could send gigabytes)
MAX_BODY_BYTES = 16 * 2**20
_READ_CHUNK = 65536


@dataclass
class ChatResult:
    """One request's outcome. ``error`` is ``None`` on success (``text`` holds the completion),
    else one of ``API_ERRORS`` with ``message``; ``attempts`` counts HTTP attempts (1 = no retry);
    ``status`` is the last HTTP status (``None`` when none came back)."""

    text: str = ""
    error: str | None = None
    message: str = ""
    attempts: int = 0
    status: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    seconds: float = 0.0
    waits: list[float] = field(default_factory=list)  # seconds slept before each retry

    @property
    def ok(self) -> bool:
        return self.error is None

    def usage(self) -> dict[str, int | None]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


class _Retryable(Exception):
    def __init__(self, error: str, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.error, self.message, self.status, self.retry_after = error, message, status, retry_after


class _Final(Exception):
    def __init__(self, error: str, message: str, status: int | None = None):
        super().__init__(message)
        self.error, self.message, self.status = error, message, status


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date
    (``None`` when absent or unreadable; never negative)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ChatClient:
    """An OpenAI-compatible ``/chat/completions`` client; see the module docstring for what it
    guarantees. Thread-safe: ``run_requests`` calls ``chat`` from several threads.

    ``sleep`` and ``rng`` are the waiting function and the jitter's random source (tests pass
    their own to check the backoff without waiting)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        retry_after_max: float = 120.0,
        max_rps: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        url = urllib.parse.urlsplit(base_url.strip())
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"--base-url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {base_url!r}")
        if not model:
            raise ConfigError("a model name is required (the name the endpoint serves, e.g. its /v1/models id)")
        if timeout <= 0 or max_retries < 0 or backoff_base < 0 or backoff_max < 0:
            raise ConfigError("timeout must be > 0 and max_retries, backoff_base, backoff_max >= 0")
        if max_rps is not None and max_rps <= 0:
            raise ConfigError("max_rps must be > 0 or unset")
        self.base_url = base_url.strip().rstrip("/")
        self._url = url
        self._path = (url.path.rstrip("/") or "") + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.retry_after_max = float(retry_after_max)
        self.max_rps = max_rps
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._not_before = 0.0  # monotonic time before which no request may start (Retry-After)
        self._next_start = 0.0  # monotonic time of the next allowed start (max_rps)

    def __repr__(self) -> str:  # never shows the key
        return f"ChatClient(base_url={self.base_url!r}, model={self.model!r}, timeout={self.timeout})"

    # -- pacing -----------------------------------------------------------------------------------
    def _wait_turn(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._not_before, self._next_start)
                if start <= now:
                    if self.max_rps:
                        self._next_start = now + 1.0 / self.max_rps
                    return
            self._sleep(min(start - now, 1.0))

    def _pause_all(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        return self._rng.uniform(0.0, min(self.backoff_max, self.backoff_base * 2**attempt))

    # -- one request ------------------------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> ChatResult:
        """One chat completion, with retries; never raises because of the endpoint."""
        body: dict[str, Any] = {
            "model": self.model, "messages": list(messages), "max_tokens": int(max_tokens),
            "temperature": float(temperature), "top_p": float(top_p), "n": 1, "stream": False,
        }
        if seed is not None:
            body["seed"] = int(seed)
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        res = ChatResult()
        t0 = time.monotonic()
        for attempt in range(self.max_retries + 1):
            self._wait_turn()
            res.attempts = attempt + 1
            try:
                status, data = self._post(payload)
                res.status = status
                self._fill(res, data)
                res.error, res.message = None, ""
                break
            except _Final as exc:
                res.error, res.message, res.status = exc.error, exc.message, exc.status
                break
            except _Retryable as exc:
                res.error, res.message, res.status = exc.error, exc.message, exc.status
                if attempt == self.max_retries:
                    break
                wait_s = self.backoff(attempt, exc.retry_after)
                if exc.retry_after is not None:
                    self._pause_all(wait_s)
                res.waits.append(round(wait_s, 3))
                self._sleep(wait_s)
        res.seconds = round(time.monotonic() - t0, 4)
        if not res.ok and res.attempts > 1:
            res.message = f"{res.message} (after {res.attempts} attempts)"
        return res

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        host, port = self._url.hostname, self._url.port
        if self._url.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _post(self, payload: bytes) -> tuple[int, Any]:
        """One HTTP attempt under one deadline: (status, parsed JSON) or a _Retryable/_Final."""
        deadline = time.monotonic() + self.timeout
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "sqlcoach"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        conn = None
        try:
            conn = self._connection(self.timeout)
            conn.request("POST", self._path, body=payload, headers=headers)
            _set_timeout(conn, deadline)
            resp = conn.getresponse()
            body = _read_body(conn, resp, deadline)
            status = resp.status
            retry_after = parse_retry_after(resp.getheader("Retry-After"))
        except (socket.timeout, TimeoutError):
            raise _Retryable("timeout", f"no complete answer within {self.timeout:g}s") from None
        except _Final:
            raise
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Retryable("connection", f"{exc.__class__.__name__}: {exc}"[:200]) from None
        finally:
            if conn is not None:
                conn.close()
        if status == 429:
            raise _Retryable("rate_limited", f"HTTP 429 {_snippet(body)}", 429, retry_after)
        if status >= 500:
            raise _Retryable("server_error", f"HTTP {status} {_snippet(body)}", status, retry_after)
        if status != 200:
            hint = " (does --base-url end with /v1?)" if status == 404 else ""
            raise _Final("http_error", f"HTTP {status}{hint} {_snippet(body)}", status)
        try:
            return status, json.loads(body.decode("utf-8", "replace"))
        except ValueError:
            raise _Final("bad_response", f"not JSON: {_snippet(body)}", status) from None

    @staticmethod
    def _fill(res: ChatResult, data: Any) -> None:
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise _Final("bad_response", f"no choices[0].message.content in {_snippet(json.dumps(data)[:300].encode())}",
                         200) from None
        res.text = "" if content is None else str(content)
        res.finish_reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        usage = data.get("usage") if isinstance(data, dict) else None
        if isinstance(usage, dict):
            res.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
            res.completion_tokens = _int_or_none(usage.get("completion_tokens"))


def _int_or_none(x: Any) -> int | None:
    return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 else None


def _set_timeout(conn: http.client.HTTPConnection, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("deadline passed")
    if conn.sock is not None:
        conn.sock.settimeout(left)


def _read_body(conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        _set_timeout(conn, deadline)
        chunk = resp.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Final("bad_response", f"response body larger than {MAX_BODY_BYTES} bytes", resp.status)
        chunks.append(chunk)


def _snippet(body: bytes, limit: int = 160) -> str:
    text = " ".join(body[: limit * 2].decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_END = object()


def run_requests(
    jobs: Sequence[Any],
    call: Callable[[Any], ChatResult],
    on_result: Callable[[Any, ChatResult], None],
    *,
    concurrency: int = 4,
    progress: Any = None,
) -> None:
    """``call(job)`` for every job with at most ``concurrency`` in flight; ``on_result(job, result)``
    runs in the calling thread as each finishes (in completion order), so it may write files
    without a lock. ``progress`` (a tqdm bar or ``None``) is advanced once per job. An exception
    from ``call`` itself (a bug, not the endpoint) becomes a ``bad_response`` result for that job."""
    if concurrency < 1:
        raise ConfigError("concurrency must be >= 1")
    it = iter(jobs)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sqlcoach-api") as ex:
        pending: dict[Any, Any] = {}
        for job in it:
            pending[ex.submit(call, job)] = job
            if len(pending) >= concurrency:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others
                    res = ChatResult(error="bad_response", message=f"{exc.__class__.__name__}: {exc}"[:200])
                on_result(job, res)
                if progress is not None:
                    progress.update(1)
                nxt = next(it, _END)
                if nxt is not _END:
                    pending[ex.submit(call, nxt)] = nxt
