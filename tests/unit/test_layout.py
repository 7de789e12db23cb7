"""The recipes stay readable: no function in train/ or pipelines/ has a body over 80 lines
(signature and docstring not counted); each recipe is setup helpers plus a short run function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sqlcoach"
FILES = sorted((SRC / "train").glob("*.py")) + sorted((SRC / "pipelines").rglob("*.py"))
LIMIT = 80


def _bodies(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]  # the docstring
            if body:
                yield node.name, node.end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_function_body_over_the_limit(path):
    long = {name: n for name, n in _bodies(path) if n > LIMIT}
    assert not long, f"{path.name}: split these into setup helpers returning one object each: {long}"


def test_every_recipe_writes_one_summary_file():
    """One summary file name for every recipe (train.run.SUMMARY_FILE), written by write_summary."""
    recipes = ("sft", "dpo", "rm", "grpo", "ppo")
    for name in recipes:
        text = (SRC / "train" / f"{name}.py").read_text()
        assert "write_summary(" in text and "sqlcoach_" + name + ".json" not in text, name
