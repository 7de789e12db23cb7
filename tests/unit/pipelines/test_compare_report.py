"""sqlcoach.bench.report / plots: the Markdown table and the self-contained HTML page."""

from __future__ import annotations

import re

from report_fixture import sample_report

from sqlcoach.runtime import plots
from sqlcoach.pipelines.compare.report import COLUMNS, html_page, markdown, markdown_table, write_reports


def test_markdown_table_one_row_per_method_with_measured_cells():
    table = markdown_table(sample_report())
    lines = table.splitlines()
    assert len(lines) == 2 + 4
    assert all(line.count("|") == len(COLUMNS) + 1 for line in lines[:2])
    grpo = lines[4]
    cells = [c.strip() for c in grpo.strip("|").split("|")]
    row = dict(zip(COLUMNS, cells))
    assert row["method"] == "grpo" and row["steps"] == "12" and row["s/step (median)"] == "4.800"
    assert row["EX"] == "40.0" and row["EM"] == "30.0" and row["EX hard"] == "20.0" and row["executes"] == "80.0"
    assert row["peak MiB"] == "1200" and row["last reward"] == "0.600" and row["gen tok/s"] == "35"
    assert row["EX seen"] == "-"
    rep = sample_report()
    rep["methods"][2]["eval"]["seen"] = {"questions": 5, "summary": {"all": {"ex": 0.6}, "executes": 0.9}}
    assert "| 60.0 | 90.0 | 0.600 |" in markdown_table(rep).splitlines()[4]
    assert "failed: prepare `sqlcoach pairs mine` exited with 1" in lines[5]
    # a "|" inside a cell cannot break the table
    rep = sample_report()
    rep["methods"][1]["status"] = "failed: a | b"
    assert "failed: a \\| b" in markdown_table(rep)


def test_markdown_document_has_the_command():
    md = markdown(sample_report())
    assert md.startswith("# sqlcoach compare") and "sqlcoach compare --config configs/compare/demo.yaml" in md


def test_html_is_self_contained_and_escaped(tmp_path):
    page = html_page(sample_report())
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", page), "no external resource"
    imgs = re.findall(r"<img [^>]*src='data:image/png;base64,", page)
    assert len(imgs) == len(plots.all_figures(sample_report()["methods"])) == 6
    assert page.count("<table") >= 3
    assert "Which &lt;museum&gt; is oldest?" in page and "<museum>" not in page
    paths = write_reports(sample_report(), tmp_path)
    assert sorted(p.name for p in paths.values()) == ["report.html", "report.json", "report.md"]


def test_figures_skip_what_is_missing():
    rows = sample_report()["methods"]
    no_reward = [r for r in rows if r["name"] != "grpo"]
    caps = [c for c, _ in plots.all_figures(no_reward)]
    assert not any(c.startswith("Reward") for c in caps)
    assert plots.all_figures([rows[-1]]) == []  # only an unavailable method: nothing to draw
    png = plots.ex_by_hardness(rows)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_peak_memory_prefers_cuda():
    row = {"train": {"peak_cuda_mb": 512.0, "peak_process_rss_mb": 2000.0}}
    assert plots.peak_memory(row) == (512.0, "CUDA max allocated")
    assert plots.peak_memory({"train": {"peak_process_rss_mb": 2000.0}}) == (2000.0, "process peak RSS")


def test_ex_figure_adds_seen_databases_when_measured():
    rows = sample_report()["methods"]
    rows[1]["eval"]["seen"] = {"questions": 5, "summary": {"all": {"ex": 0.5}}}
    assert plots.ex_by_hardness(rows)[:8] == b"\x89PNG\r\n\x1a\n"


def test_total_seconds_adds_preparation_training_and_evaluation():
    from sqlcoach.pipelines.compare.report import total_seconds

    row = {"train": {"prepare_seconds": 150.0, "process_seconds": 200.0}, "eval": {"process_seconds": 60.0}}
    assert total_seconds(row) == 410.0
    assert total_seconds({"eval": {"process_seconds": 60.0}}) == 60.0
    assert total_seconds({}) is None


def test_steps_to_95_percent_of_the_final_reward():
    from sqlcoach.metrics.stats import steps_to_fraction

    rising = [[s, min(1.0, s / 50)] for s in range(1, 101)]  # rises to 1.0 by step 50, then flat
    got = steps_to_fraction(rising)
    assert 45 <= got <= 60
    assert steps_to_fraction([[1, 0.5], [2, 0.4], [3, 0.3]]) is None  # never rose
    assert steps_to_fraction([[1, 0.5]]) is None
