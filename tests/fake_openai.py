"""A fake OpenAI-compatible endpoint for tests (a fixture, not product code).

``FakeOpenAI(responder)`` serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on
127.0.0.1 in a background thread (stdlib ``http.server``). ``responder(request_json, n)`` (``n``:
the 0-based count of chat requests so far) returns what to do with this request:

* ``("ok", text)`` or ``("ok", text, usage_dict_or_None)``: a normal completion (usage defaults to
  word counts of the prompt and the text; ``None`` sends no usage object);
* ``("status", code, body, headers)``: that HTTP status (e.g. 429 with ``{"Retry-After": "0.1"}``);
* ``("garbage", bytes)``: a 200 whose body is the bytes (not JSON);
* ``("hang", seconds)``: accept the request and say nothing for that long;
* ``("drop",)``: close the connection without an answer.

``script(*steps)`` makes a responder that plays ``steps`` in order, then repeats the last one.
Run as a script (``python tests/fake_openai.py --port 8765 --mode echo-gold|judge``) it serves
until killed, for trying the CLI by hand.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


def script(*steps: tuple) -> Callable[[dict, int], tuple]:
    def responder(req: dict, n: int) -> tuple:
        return steps[min(n, len(steps) - 1)]

    return responder


def tiny_world(out: Any) -> Any:
    """A small generated world (20 train, 8 dev questions) at ``out``, for endpoint tests."""
    from sqlcoach.data.world import build_world

    build_world(out, seed=0, n_train=20, n_dev=8, progress=False)
    return out


def dev_golds(world: Any) -> dict[str, str]:
    """question -> gold SQL of the world's dev split, in file order."""
    from sqlcoach.data import load_examples

    return {ex.question: ex.gold_sql for ex in load_examples("spider", str(world), "dev")}


def asked(req: dict, questions: Any) -> str:
    """The one of ``questions`` that a chat request's last message asks."""
    text = req["messages"][-1]["content"]
    return next(q for q in questions if q in text)


def _words(messages: list[dict]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages)


class FakeOpenAI:
    def __init__(self, responder: Callable[[dict, int], tuple]):
        self.responder = responder
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:  # quiet
                pass

            def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    req = json.loads(raw)
                except ValueError:
                    self._send(400, b'{"error": "bad json"}')
                    return
                with fake._lock:
                    n = len(fake.requests)
                    fake.requests.append(req)
                    fake.headers.append(dict(self.headers))
                if not self.path.endswith("/chat/completions"):
                    self._send(404, b'{"error": "not found"}')
                    return
                step = fake.responder(req, n)
                kind = step[0]
                if kind == "ok":
                    text = step[1]
                    usage = step[2] if len(step) > 2 else {
                        "prompt_tokens": _words(req.get("messages", [])), "completion_tokens": len(text.split()),
                        "total_tokens": 0}
                    body: dict[str, Any] = {
                        "id": f"chatcmpl-{n}", "object": "chat.completion", "model": req.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop"}]}
                    if usage is not None:
                        body["usage"] = usage
                    self._send(200, json.dumps(body).encode())
                elif kind == "status":
                    self._send(step[1], (step[2] if len(step) > 2 else "").encode(), step[3] if len(step) > 3 else None)
                elif kind == "garbage":
                    self._send(200, step[1])
                elif kind == "hang":
                    time.sleep(step[1])
                    self.close_connection = True
                elif kind == "drop":
                    self.close_connection = True
                    self.connection.close()
                else:
                    raise AssertionError(f"unknown step {step!r}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


_GOLD = re.compile(r"^Gold SQL:\s*(.+)$", re.M)
_PRED = re.compile(r"Model output:\s*(.+?)\n\s*\n", re.S)


def judge_responder(req: dict, n: int) -> tuple:
    """A fake judge: scores 5 when the output contains the gold SQL's text, else 2; every 10th
    reply is malformed on purpose (no scores). It proves plumbing, not judgement."""
    text = "\n".join(str(m.get("content", "")) for m in req.get("messages", []))
    if n % 10 == 9:
        return ("ok", "I think this query is fine overall.")
    gold = _GOLD.search(text)
    pred = _PRED.search(text)
    good = bool(gold and pred and " ".join(gold.group(1).split()).lower() in " ".join(pred.group(1).split()).lower())
    s = 5 if good else 2
    return ("ok", f"SQL_SCORE: {s}\nREASONING_SCORE: {s}\nFORMAT_SCORE: 5\nEDUCATIONAL_SCORE: {max(1, s - 1)}\n"
                  f"OVERALL_SCORE: {(3 * s + 4) / 4:.2f}\nEXPLANATION: fake judge\nERROR_TYPE: {'none' if good else 'logic'}")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--mode", choices=["judge", "select1"], default="judge")
    a = ap.parse_args()
    resp = judge_responder if a.mode == "judge" else (lambda req, n: ("ok", "SELECT 1"))
    srv = FakeOpenAI(resp)
    srv.server.server_close()
    srv.server = ThreadingHTTPServer(("127.0.0.1", a.port), srv.server.RequestHandlerClass)
    print(f"serving http://127.0.0.1:{a.port}/v1", flush=True)
    srv.server.serve_forever()
