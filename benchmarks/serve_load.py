"""Load on `sqlcoach serve`: C concurrent clients x R requests each, on loopback, tiny model.

    PYTHONPATH=src python benchmarks/serve_load.py [--clients 50] [--requests 20] [--max-tokens 8]
        [--time-limit 300] [--model DIR]

Starts a real `sqlcoach serve` process on 127.0.0.1 (a free port) with a tiny from-scratch model
(built in a temporary folder unless --model is given), then C threads each send R
/v1/chat/completions requests (greedy, --max-tokens) over one keep-alive connection. The loop is
bounded in count (C x R) and in time (--time-limit: clients stop sending when it passes, and each
request has a 60 s timeout). Prints: requests done, errors (any non-200 or transport error), p50 /
p95 / max latency, throughput (requests/s, generated tokens/s), the mean batch size the server
formed, and the server's peak RSS (its process and children, sampled every 0.1 s) against its
RSS before the load. Traffic goes to 127.0.0.1 only; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def rss_mib(pid: int) -> float:
    import psutil

    try:
        p = psutil.Process(pid)
        return (p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))) / 2**20
    except psutil.Error:
        return 0.0


def client_loop(port: int, n: int, body: bytes, stop_at: float, lat: list, errors: list, tokens: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(n):
        if time.monotonic() > stop_at:
            errors.append("not sent: time limit")
            break
        t0 = time.monotonic()
        try:
            conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                errors.append(f"HTTP {resp.status}: {data[:200]!r}")
                continue
            tokens.append(json.loads(data)["usage"]["completion_tokens"])
            lat.append(time.monotonic() - t0)
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--time-limit", type=float, default=300.0)
    ap.add_argument("--model", default=None, help="model folder (default: a tiny from-scratch model)")
    args = ap.parse_args()
    from serve_process import ServeProcess

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        model = args.model
        if model is None:
            from sqlcoach.models.tiny import init_tiny_model
            import serve_fixture

            model = str(Path(tmp) / "tiny")
            info = init_tiny_model(model, "tiny", serve_fixture.CORPUS, seed=0)
            print(f"model: tiny from-scratch Qwen2, {info['parameters']:,} parameters")
        srv = ServeProcess(model, "--served-model-name", "m", "--max-batch", str(args.max_batch), "--max-queue",
                           str(max(256, 2 * args.clients)), log=Path(tmp) / "serve.log")
        try:
            rss0 = rss_mib(srv.proc.pid)
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "How many singers are there?"}],
                               "max_tokens": args.max_tokens, "temperature": 0}).encode()
            lat: list[float] = []
            errors: list[str] = []
            tokens: list[int] = []
            peak = [rss0]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.1):
                    peak[0] = max(peak[0], rss_mib(srv.proc.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            stop_at = time.monotonic() + args.time_limit
            threads = [threading.Thread(target=client_loop, args=(srv.port, args.requests, body, stop_at, lat, errors,
                                                                  tokens)) for _ in range(args.clients)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(args.time_limit + 120)
            wall = time.monotonic() - t0
            done.set()
            sampler.join(2)
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            try:
                c.request("GET", "/health")
                health = json.loads(c.getresponse().read())
            except (OSError, http.client.HTTPException, ValueError):
                health = {}
            finally:
                c.close()
        finally:
            srv.stop()
    total = args.clients * args.requests
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    print(f"load: {args.clients} clients x {args.requests} requests = {total}, max_tokens {args.max_tokens}, "
          f"loopback, {wall:.1f} s")
    print(f"ok {len(lat)}  errors {len(errors)}" + (f"  (first: {errors[0]})" if errors else ""))
    if lat:
        print(f"latency p50 {q[49]:.3f} s  p95 {q[94]:.3f} s  max {max(lat):.3f} s")
    print(f"throughput {len(lat) / wall:.1f} requests/s, {sum(tokens) / wall:.0f} generated tokens/s")
    if health.get("batches"):
        print(f"batches {health['batches']}, mean batch size {health['batched_requests'] / health['batches']:.1f}")
    print(f"server RSS before {rss0:.0f} MiB, peak under load {peak[0]:.0f} MiB")
    return 0 if not errors and len(lat) == total else 1


if __name__ == "__main__":
    sys.exit(main())
