"""The web page of `sqlcoach serve` in a real headless Chromium: choose a database and read its
schema, type a question, submit, read the SQL and the result table from the DOM, edit the SQL and
run it again (and a hostile edit refused by the sandbox), go back to an earlier question from the
session's history, and take a screenshot.

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
            # the schema of the chosen database: the first one listed (concert), then shop when chosen
            browser.wait_for("document.querySelector('#schema [data-table]') !== null")
            schema_concert = browser.js("[...document.querySelectorAll('#schema [data-table]')].map(t => "
                                        "[t.dataset.table, [...t.querySelectorAll('[data-column]')].map(c => c.dataset.column)])")
            choose(browser, "shop")
            browser.wait_for("document.querySelector('#schema [data-table=\"item\"]') !== null")
            choose(browser, "concert")
            browser.wait_for("document.querySelector('#schema [data-table=\"singer\"]') !== null")
            ask(browser, "Who are the singers, youngest first?")
            sql = browser.js("document.getElementById('sql').value")
            head, rows = result(browser)
            timing = browser.js("document.getElementById('time').textContent")
            # edit the SQL and run it again: the sandbox runs the user's query
            edit_and_run(browser, "SELECT name, country FROM singer WHERE age > 30 ORDER BY name")
            edited = result(browser), browser.js("document.getElementById('edited').textContent")
            # a hostile edit: refused by the read-only sandbox, shown as an error, nothing changed
            edit_and_run(browser, "DELETE FROM singer")
            refused = browser.js("document.getElementById('error').textContent")
            # a second question, then back to the first from the history (newest first)
            ask(browser, "And again, by age?")
            history = browser.js("[...document.querySelectorAll('#history li button')].map(b => b.textContent)")
            browser.js("document.querySelectorAll('#history li button')[1].click()")
            browser.wait_for("document.getElementById('question').value === 'Who are the singers, youngest first?'")
            browser.wait_for("document.querySelectorAll('#rows tbody tr').length === 4")
            restored = browser.js("document.getElementById('sql').value"), result(browser)
            shot = browser.screenshot(tmp_path / "page.png")
        finally:
            browser.close()
    assert schema_concert == [["singer", ["singer_id", "name", "age", "country"]]]
    assert sql == sf.TAUGHT_SQL
    assert head == ["name", "age"]
    youngest_first = [[n, str(a)] for _, n, a, _ in sorted(sf.SINGER_ROWS, key=lambda r: r[2])]
    assert rows == youngest_first
    assert timing.startswith("4 row(s) in ") and " s (generation " in timing
    assert edited == ((["name", "country"], [["Ana", "PT"], ["Chen", "CN"]]), "edited: not the model's SQL")
    assert refused and ("read" in refused.lower() or "not authorized" in refused.lower()), refused
    assert history == ["And again, by age?", "Who are the singers, youngest first?"]
    assert restored == (sf.TAUGHT_SQL, (["name", "age"], youngest_first))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    keep = os.environ.get("SQLCOACH_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def choose(browser, database):
    browser.js(f"{{ const s = document.getElementById('database'); s.value = '{database}'; "
               "s.dispatchEvent(new Event('change')); }")


def ask(browser, question):
    browser.js("{ document.getElementById('rows')?.remove(); const q = document.getElementById('question'); "
               "q.value = ''; q.focus(); }")
    browser.send("Input.insertText", {"text": question})  # typed, as a user would
    browser.js("document.getElementById('submit').click()")
    browser.wait_for("document.querySelectorAll('#rows tbody tr').length > 0 && !document.getElementById('submit').disabled")


def edit_and_run(browser, sql):
    browser.js("{ document.getElementById('rows')?.remove(); document.getElementById('error').textContent = ''; "
               "const t = document.getElementById('sql'); t.focus(); t.select(); }")
    browser.send("Input.insertText", {"text": sql})  # replaces the selection, as typing would
    browser.js("document.getElementById('run').click()")
    browser.wait_for("(document.getElementById('rows') !== null || document.getElementById('error').textContent !== '') "
                     "&& !document.getElementById('run').disabled")


def result(browser):
    head = browser.js("[...document.querySelectorAll('#rows th')].map(th => th.textContent)")
    rows = browser.js("[...document.querySelectorAll('#rows tbody tr')].map(tr => [...tr.cells].map(td => td.textContent))")
    return head, rows


def test_page_shows_the_turns_of_an_agent_answer(tmp_path):
    """The agent box ticked: the model (taught the protocol, tests/serve_fixture.py) runs a query,
    reads its observation and answers; the page lists both turns with the query and what came back,
    and the answer's table; an answer without the box shows no turns."""
    model = sf.taught_agent_model(tmp_path / "model")
    dbs = sf.make_databases(tmp_path / "dbs")
    with ServeProcess(model, "--databases", str(dbs), "--served-model-name", "agent-tiny", "--max-tokens", "48",
                      log=tmp_path / "serve.log") as srv:
        browser = Browser(str(CHROMIUM), tmp_path / "profile")
        try:
            browser.open(srv.url + "/")
            browser.wait_for("document.querySelectorAll('#database option').length === 2")
            browser.wait_for("document.querySelector('#schema [data-table]') !== null")
            browser.js("document.getElementById('agent').click()")
            ask(browser, "Who are the singers, youngest first?")
            browser.wait_for("!document.getElementById('turns').hidden")
            turns = browser.js("[...document.querySelectorAll('#turnlist li')].map(li => [li.dataset.kind, "
                               "li.querySelector('.query').textContent, li.querySelector('.observation')?.textContent ?? null])")
            finish = browser.js("document.getElementById('finish').textContent")
            sql = browser.js("document.getElementById('sql').value")
            head, rows = result(browser)
            shot = browser.screenshot(tmp_path / "agent.png")
            # the same question without the agent: no turns shown
            browser.js("document.getElementById('agent').click()")
            ask(browser, "Who are the singers, youngest first?")
            hidden = browser.js("document.getElementById('turns').hidden")
        finally:
            browser.close()
    assert [(k, q) for k, q, _ in turns] == [("sql", sf.AGENT_QUERY), ("solution", sf.TAUGHT_SQL)]
    observation = turns[0][2]
    assert observation.startswith("<observation>") and "4" in observation and "turns left: 4" in observation
    assert turns[1][2] is None and finish == "(2 turn(s), ended: solution)"
    assert sql == sf.TAUGHT_SQL and head == ["name", "age"]
    assert rows == [[n, str(a)] for _, n, a, _ in sorted(sf.SINGER_ROWS, key=lambda r: r[2])]
    assert hidden is True
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("SQLCOACH_SCREENSHOT_AGENT")
    if keep:
        shutil.copy(shot, keep)
