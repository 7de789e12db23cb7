"""report.html renders in headless Chromium from disk: tables and images present, screenshot not blank.

Skips with a reason when /usr/bin/chromium is absent (Debian: ``apt-get install -y chromium``).
Chromium runs with no network features (no background networking, component update or sync) on
a ``file://`` URL: a page that needed a server or the network would come out without its figures.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "pipelines"))
from report_fixture import sample_report  # noqa: E402

from sqlcoach.pipelines.compare.report import write_reports  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install -y chromium)"),
]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def render(html: Path, tmp_path: Path) -> tuple[str, Path]:
    """(DOM after load, screenshot PNG path) of ``html`` opened from disk."""
    dom = _chromium(tmp_path, "--dump-dom", html.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp_path / "report.png"
    res = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", html.resolve().as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    return dom.stdout, shot


def not_blank(png: Path) -> float:
    """Share of pixels that differ from the most common colour (0: blank page)."""
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(str(png))[..., :3]
    flat = (img.reshape(-1, 3) * 255).astype(np.uint8)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    return 1.0 - counts.max() / counts.sum()


def test_report_html_renders_with_tables_and_figures(tmp_path):
    paths = write_reports(sample_report(), tmp_path / "report")
    dom, shot = render(paths["html"], tmp_path)
    assert len(re.findall(r"<table", dom)) >= 3  # methods, EM/errors, samples
    imgs = re.findall(r"<img [^>]*src=\"data:image/png;base64,", dom)
    assert len(imgs) == 6
    assert "failed: prepare `sqlcoach pairs mine` exited with 1" in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not_blank(shot) > 0.02


def test_evaluate_html_with_plans_renders(tmp_path):
    """`sqlcoach evaluate --html` on a small database: the plans section is in the rendered DOM."""
    import sqlite3

    from sqlcoach.cli import main

    db = tmp_path / "database" / "m"
    db.mkdir(parents=True)
    con = sqlite3.connect(db / "m.sqlite")
    con.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INT); INSERT INTO t VALUES (1,'x',3),(2,'y',1);")
    con.commit()
    con.close()
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT a FROM t WHERE id = 1\tm\nSELECT a FROM t ORDER BY b\tm\n")
    pred = tmp_path / "pred.sql"
    pred.write_text("SELECT a FROM t WHERE id + 0 = 1\nSELECT a FROM t ORDER BY b\n")
    page = tmp_path / "eval.html"
    assert main(["evaluate", "--gold", str(gold), "--pred", str(pred), "--db", str(tmp_path / "database"),
                 "--etype", "exec", "--workers", "0", "--html", str(page)]) == 0
    dom, shot = render(page, tmp_path)
    assert "Plans (EXPLAIN QUERY PLAN)" in dom and "temp_btree_order_by" in dom
    assert "Correct but worse plans (first 1)" in dom and "id + 0 = 1" in dom
    assert len(re.findall(r"<table", dom)) >= 4  # accuracy, errors, plan features, worse examples
    assert not_blank(shot) > 0.02
