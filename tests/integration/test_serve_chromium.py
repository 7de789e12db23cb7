"""The web page of `sqlcoach serve` in a real headless Chromium: choose a database, type a
question, submit, read the SQL and the result table from the DOM, and take a screenshot.

Chromium is driven over the DevTools protocol on a pipe (tests/integration/cdp.py: standard
library only, offline). Skips with a reason when /usr/bin/chromium is absent. The model is the
tiny one taught a single query (tests/serve_fixture.py), so the table's content is known.
Set SQLCOACH_SCREENSHOT to a path to keep the screenshot.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_fixture as sf  # noqa: E402
from cdp import CHROMIUM, Browser, chromium_marks  # noqa: E402
from serve_process import ServeProcess  # noqa: E402

pytestmark = chromium_marks()


def test_page_asks_and_shows_the_result_table(tmp_path):
    model = sf.taught_model(tmp_path / "model")
    dbs = sf.make_databases(tmp_path / "dbs")
    with ServeProcess(model, "--databases", str(dbs), "--served-model-name", "taught-tiny", "--max-tokens", "32",
                      log=tmp_path / "serve.log") as srv:
        browser = Browser(str(CHROMIUM), tmp_path / "profile")
        try:
            browser.open(srv.url + "/")
            browser.wait_for("document.querySelectorAll('#database option').length === 2")
            # the model name and the database list come from two separate fetches: wait for both
            browser.wait_for("document.getElementById('model').textContent !== '…'")
            assert browser.js("document.getElementById('model').textContent") == "taught-tiny"
            browser.js("document.getElementById('database').value = 'concert'")
            browser.js("const q = document.getElementById('question'); q.focus();")
            browser.send("Input.insertText", {"text": "Who are the singers, youngest first?"})  # typed, as a user would
            browser.js("document.getElementById('submit').click()")
            browser.wait_for("document.querySelectorAll('#rows tbody tr').length > 0")
            sql = browser.js("document.getElementById('sql').textContent")
            head = browser.js("[...document.querySelectorAll('#rows th')].map(th => th.textContent)")
            rows = browser.js("[...document.querySelectorAll('#rows tbody tr')]"
                              ".map(tr => [...tr.cells].map(td => td.textContent))")
            timing = browser.js("document.getElementById('time').textContent")
            shot = browser.screenshot(tmp_path / "page.png")
        finally:
            browser.close()
    assert sql == sf.TAUGHT_SQL
    assert head == ["name", "age"]
    assert rows == [[n, str(a)] for _, n, a, _ in sorted(sf.SINGER_ROWS, key=lambda r: r[2])]
    assert timing.startswith("4 row(s) in ") and " s (generation " in timing
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    keep = os.environ.get("SQLCOACH_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
