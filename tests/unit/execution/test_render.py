"""The one result renderer: every kind of result, and never more than the budget."""

from __future__ import annotations

import random

import pytest

from sqlcoach.execution.render import format_cell, render_result, token_length
from sqlcoach.types import ExecResult


def ok(columns, *rows):
    return ExecResult(rows=tuple(tuple(r) for r in rows), columns=tuple(columns))


def test_small_result_shows_columns_count_and_rows():
    text = render_result(ok(["name", "age"], ("Ann", 31), ("Bob", 42)))
    assert text == "columns (2): name | age\nrows: 2\nAnn | 31\nBob | 42"


def test_empty_result_says_so():
    assert render_result(ok(["n"])) == "columns (1): n\nrows: 0 (empty result)"


def test_error_class_and_message():
    r = ExecResult(rows=None, error="exec_error", message="no such column:\n nme")
    assert render_result(r) == "error: exec_error: no such column: nme"
    assert render_result(ExecResult(rows=None, error="parse_error")) == "error: parse_error"


def test_timeout_is_rendered_as_such():
    r = ExecResult(rows=None, error="timeout", message="killed after 2.5s hard limit (worker)")
    assert render_result(r) == "error: timeout: the query ran past its time limit (killed after 2.5s hard limit (worker))"
    assert render_result(ExecResult(rows=None, error="timeout")).startswith("error: timeout:")


def test_not_run():
    assert render_result(None) == "not run: no SQL"


def test_nulls_blobs_floats_bools_and_control_characters():
    r = ok(["a", "b", "c", "d", "e"], (None, b"\x00\xff\x10", 0.1 + 0.2, True, "two\nlines\tand tab"))
    line = render_result(r).splitlines()[2]
    assert line == "NULL | <blob 3 bytes> | 0.3 | 1 | two\\nlines\\tand tab"
    assert format_cell(1e-20) == "1e-20" and format_cell(123456789.0) == "1.23457e+08"
    assert format_cell(memoryview(b"abcd")) == "<blob 4 bytes>"


def test_huge_cell_is_cut():
    cell = format_cell("x" * 10_000, max_cell=20)
    assert len(cell) == 20 and cell.endswith("...")


def test_many_rows_stop_at_max_rows_with_a_trailer():
    r = ok(["i"], *[(i,) for i in range(100)])
    lines = render_result(r, max_rows=3).splitlines()
    assert lines == ["columns (1): i", "rows: 100", "0", "1", "2", "... 97 more rows"]


def test_rows_cut_to_the_budget_keep_the_trailer_and_count():
    r = ok(["word"], *[("w" * 30,) for _ in range(50)])
    text = render_result(r, budget=120)
    assert len(text) <= 120
    assert text.splitlines()[1] == "rows: 50" and text.splitlines()[-1].startswith("... ")
    shown = len(text.splitlines()) - 3
    assert text.splitlines()[-1] == f"... {50 - shown} more rows"


def test_many_columns_are_summarised():
    cols = [f"c{i}" for i in range(100)]
    text = render_result(ok(cols, tuple(range(100))), max_columns=4, budget=10_000)
    assert text.splitlines()[0] == "columns (100): c0 | c1 | c2 | c3 | ... (+96 columns)"
    assert text.splitlines()[2] == "0 | 1 | 2 | 3 | ... (+96 columns)"


def test_header_longer_than_budget_is_cut_not_overflowing():
    cols = [f"a_very_long_column_name_{i}" for i in range(40)]
    text = render_result(ok(cols, tuple(range(40))), budget=50, max_columns=40)
    assert 0 < len(text) <= 50 and text.endswith("...")


def test_zero_budget_gives_empty_text_and_negative_is_an_error():
    assert render_result(ok(["a"], (1,)), budget=0) == ""
    with pytest.raises(ValueError):
        render_result(None, budget=-1)


class WordTokenizer:
    """A tokenizer stand-in: one token per whitespace-separated word and per '|'."""

    def encode(self, text, add_special_tokens=False):
        return text.replace("|", " | ").split()


def test_token_budget_counts_tokens_not_characters():
    r = ok(["name"], *[(f"person number {i}",) for i in range(30)])
    length = token_length(WordTokenizer())
    text = render_result(r, budget=25, length=length)
    assert length(text) <= 25 and len(text) > 25  # far more characters than tokens


@pytest.mark.parametrize("seed", range(30))
def test_never_more_than_the_budget_on_random_results(seed):
    rng = random.Random(seed)
    pool = [None, 0, -7, 3.14159265358979, "", "x" * rng.randrange(300), b"\x00" * 5, "é\n\t|", True]
    ncols = rng.randrange(1, 12)
    rows = [tuple(rng.choice(pool) for _ in range(ncols)) for _ in range(rng.randrange(0, 40))]
    result = ok([f"col_{i}" for i in range(ncols)], *rows)
    budget = rng.randrange(0, 400)
    assert len(render_result(result, budget=budget, max_rows=rng.randrange(1, 20))) <= budget
    length = token_length(WordTokenizer())
    assert length(render_result(result, budget=budget // 4, length=length)) <= budget // 4
    err = ExecResult(rows=None, error="exec_error", message="m" * rng.randrange(500))
    assert len(render_result(err, budget=budget)) <= budget


def test_non_monotone_length_is_still_safe():
    # a length that shrinks when one particular character is appended: the final check catches it
    def odd(text):
        return len(text) - (5 if text.endswith("...") else 0)

    text = render_result(ok(["a"], *[("y" * 50,) for _ in range(10)]), budget=40, length=odd)
    assert odd(text) <= 40
