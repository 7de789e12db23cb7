"""A real ``sqlcoach view`` process (uvicorn on 127.0.0.1) sent path-traversal requests byte for
byte: ``http.client`` sends the path as written (an HTTP client library or a browser would
normalise ``../`` away before the server saw it). Every one is refused and none returns a file
from outside the folders given."""

from __future__ import annotations

import http.client
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import view_fixture as vf  # noqa: E402
from serve_process import ServeProcess  # noqa: E402

pytestmark = pytest.mark.integration

RAW_PATHS = [
    "/blob/../../../../../../etc/passwd", "/blob/..%2f..%2f..%2f..%2fetc%2fpasswd", "/blob/%2e%2e/%2e%2e/etc/passwd",
    "/blob//etc/passwd", "/blob/%2Fetc%2Fpasswd", "/blob/..\\..\\etc\\passwd", "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/api/files/../../../../etc/passwd/rows", "/api/files/0/rows/../../../../etc/passwd",
    "/api/files/0/../../../../../etc/passwd", "/blob/0/../../../../etc/passwd", "/blob/0%00.png", "/blob/%00",
]


def test_raw_traversal_requests_are_refused(tmp_path):
    runs = vf.make_runs(tmp_path / "runs")
    secret = tmp_path / "secret.txt"  # beside the run folder, not inside it
    secret.write_text("TOP SECRET")
    with ServeProcess(runs["demo"], verb="view", log=tmp_path / "view.log") as srv:
        answers = {}
        for path in RAW_PATHS + ["/blob/..%2f..%2fsecret.txt", "/blob/../../secret.txt"]:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.endheaders()
            r = conn.getresponse()
            answers[path] = (r.status, r.read().decode("utf-8", "replace"))
            conn.close()
        ok = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        ok.request("GET", "/blob/0")
        first = ok.getresponse()
        assert first.status == 200
        ok.close()
    for path, (status, body) in answers.items():
        assert status in (400, 404), (path, status)
        assert "root:" not in body and "TOP SECRET" not in body, path
