"""Start a real ``sqlcoach serve`` (or ``view``) process on 127.0.0.1 (a free port) and wait until it answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``with ServeProcess(model, *flags) as srv:`` -> ``srv.url`` (``http://127.0.0.1:PORT``);
    the process is stopped (SIGTERM, then SIGKILL) on exit; its output is in ``srv.log``.
    ``verb="view"`` starts ``sqlcoach view TARGET *flags`` instead (any verb answering ``/health``)."""

    def __init__(self, model: str | Path, *flags: str, log: Path, start_timeout: float = 90.0, verb: str = "serve"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log)
        env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1"}
        self._fh = self.log.open("w")
        # --port last: ``view`` takes several folders, and argparse wants them before any option
        self.proc = subprocess.Popen([sys.executable, "-m", "sqlcoach.cli", verb, str(model), *flags, "--port",
                                      str(self.port)], stdout=self._fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sqlcoach {verb} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sqlcoach {verb} did not answer in {start_timeout} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._fh.close()

    def __enter__(self) -> "ServeProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
