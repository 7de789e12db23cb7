"""``sqlcoach view`` in a real headless Chromium over a demo-like and a compare-like folder
(tests/view_fixture.py, generated, no model): filter the rows, open a question and read both
result tables from the DOM, compare two prediction files (A/B with McNemar's p), and look at the
training runs; a screenshot of each.

Chromium is driven over the DevTools protocol on a pipe (tests/integration/cdp.py). Skips with a
reason when /usr/bin/chromium is absent. Set SQLCOACH_SCREENSHOT_DIR to a folder to keep the
screenshots (rows.png, question.png, ab.png, runs.png).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import view_fixture as vf  # noqa: E402
from cdp import CHROMIUM, Browser, chromium_marks  # noqa: E402
from serve_process import ServeProcess  # noqa: E402

from sqlcoach.metrics.stats import mcnemar_counts  # noqa: E402

pytestmark = chromium_marks()

def _cells(browser: Browser, table: str) -> list[list[str]]:
    """The text of each body cell of the table ``table`` (a CSS selector), row by row."""
    return browser.js(f"[...document.querySelectorAll({json.dumps(table + ' tbody tr')})]"
                      ".map(tr => [...tr.cells].map(td => td.textContent))")


def _select(browser: Browser, sel_id: str, value: str) -> None:
    browser.js(f"(() => {{ const s = document.getElementById({json.dumps(sel_id)}); s.value = {json.dumps(value)};"
               "s.dispatchEvent(new Event('change')); })()")


def test_filter_open_a_question_and_compare_two_files(tmp_path):
    runs = vf.make_runs(tmp_path / "runs")
    shots = []
    with ServeProcess(runs["demo"], str(runs["compare"]), verb="view", log=tmp_path / "view.log") as srv:
        browser = Browser(str(CHROMIUM), tmp_path / "profile", width=1280, height=1000)
        try:
            browser.open(srv.url + "/")
            browser.wait_for("document.querySelectorAll('#rows tbody tr').length === 6")
            files = browser.js("[...document.querySelectorAll('#file option')].map(o => o.textContent)")
            # filter: the wrong answers of the first file, then those on one database
            _select(browser, "f-verdict", "wrong")
            browser.wait_for("document.querySelectorAll('#rows tbody tr').length === 3")
            wrong = _cells(browser, "#rows")
            _select(browser, "f-db", "concert")
            browser.wait_for("document.querySelectorAll('#rows tbody tr').length === 2")
            info = browser.js("document.getElementById('pageinfo').textContent")
            shots.append(browser.screenshot(tmp_path / "rows.png"))
            # open "average age": both SQL formatted, both result tables run live
            browser.js("[...document.querySelectorAll('#rows tbody tr')].find(tr => tr.cells[0].textContent === '2').click()")
            browser.wait_for("!!(document.querySelector('#gold-result table') && document.querySelector('#pred-result table'))")
            gold_sql = browser.js("document.getElementById('gold-sql').textContent")
            gold_rows = _cells(browser, "#gold-result table")
            pred_rows = _cells(browser, "#pred-result table")
            heading = browser.js("document.querySelector('#opened h2').textContent")
            shots.append(browser.screenshot(tmp_path / "question.png"))
            link = browser.js("location.href")
            # A/B: greedy (A) against the sampled file (B)
            browser.js("document.querySelector('nav button[data-tab=ab]').click()")
            _select(browser, "ab-a", "0")
            _select(browser, "ab-b", "1")
            browser.js("document.getElementById('ab-go').click()")
            browser.wait_for("!!document.getElementById('ab-p')")
            a_only = browser.js("document.getElementById('ab-aonly').textContent")
            b_only = browser.js("document.getElementById('ab-bonly').textContent")
            p_text = browser.js("document.getElementById('ab-p').textContent")
            shots.append(browser.screenshot(tmp_path / "ab.png"))
            browser.js("document.querySelector('nav button[data-tab=runs]').click()")
            browser.wait_for("[...document.querySelectorAll('#runs-out img')].every(i => i.complete && i.naturalWidth > 0)")
            curves = browser.js("document.querySelectorAll('#runs-out svg polyline').length")
            reports = browser.js("[...document.querySelectorAll('#runs-out a[data-blob]')].map(a => a.textContent)")
            shots.append(browser.screenshot(tmp_path / "runs.png"))
            # the address of an opened question opens it again
            browser.open(link)
            browser.wait_for("!!document.querySelector('#gold-result table')")
            heading_again = browser.js("document.querySelector('#opened h2').textContent")
        finally:
            browser.close()
    assert len(files) == 4 and files[0].startswith("demo/pred/greedy.jsonl · 6 rows · EX 50.0% (3/6)")
    assert [r[0] for r in wrong] == ["2", "3", "5"] and all(r[6] == "wrong" for r in wrong)
    assert info == "1–2 of 2 (filtered from 6)"
    assert heading == heading_again == "What is the average age of singers?" and link.endswith("#f=0&r=2")
    assert gold_sql == "SELECT\n  AVG(age)\nFROM singer"
    assert gold_rows == [["34.5"]] and pred_rows == [["45"]]
    assert (a_only, b_only) == ("1", "2")
    assert float(p_text) == pytest.approx(mcnemar_counts(1, 2), abs=1e-4)
    assert curves == 4  # a loss curve per training run, and the GRPO-like run's two reward curves
    assert sorted(reports) == ["compare-x/report.html", "demo/report.html"]
    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    keep = os.environ.get("SQLCOACH_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)


def test_with_an_api_key_the_page_asks_for_it_once(tmp_path):
    runs = vf.make_runs(tmp_path / "runs")
    with ServeProcess(runs["demo"], "--api-key", "s3cret", verb="view", log=tmp_path / "view.log") as srv:
        browser = Browser(str(CHROMIUM), tmp_path / "profile")
        try:
            browser.open(srv.url + "/")
            browser.wait_for("getComputedStyle(document.getElementById('keybox')).display !== 'none'")
            rows_before = browser.js("document.querySelectorAll('#rows tbody tr').length")
            browser.js("document.getElementById('apikey').focus()")
            browser.send("Input.insertText", {"text": "s3cret"})
            browser.js("document.getElementById('keygo').click()")
            browser.wait_for("document.querySelectorAll('#rows tbody tr').length === 6")
            # the plots come through the key too (fetched, then shown from a blob: address)
            browser.js("document.querySelector('nav button[data-tab=runs]').click()")
            browser.wait_for("[...document.querySelectorAll('#runs-out img')].length > 0 && "
                             "[...document.querySelectorAll('#runs-out img')].every(i => i.complete && i.naturalWidth > 0)")
        finally:
            browser.close()
    assert rows_before == 0
