"""A model remembers how to prompt it: sqlcoach_recipe.json, and the rules that read it."""

from __future__ import annotations

import json

import pytest

from sqlcoach.errors import DataError
from sqlcoach.prompts.recipe import DEFAULTS, RECIPE_FILE, PromptRecipe, read_recipe, recipe_of, resolve_prompt


def test_save_and_read_back(tmp_path):
    rec = PromptRecipe(template="anonymized", schema_style="compact", schema_sample_values=0, max_length=320, source="sft")
    path = rec.save(tmp_path)
    data = json.loads(path.read_text())
    assert data["template"] == "anonymized" and data["anonymize"] is True and data["system_prompt"] is None
    assert data["value_retrieval"] == 5 and data["token_budget"] == 0 and data["turn_history"] == "questions" and data["version"] == 2
    assert read_recipe(tmp_path) == rec
    assert PromptRecipe(template="reasoning").system_prompt  # the template's system message is recorded


def test_recorded_values_fill_what_the_caller_leaves_unset(tmp_path):
    PromptRecipe(template="omnisql", schema_style="ddl", schema_sample_values=0, source="sft").save(tmp_path)
    said: list[str] = []
    rec = resolve_prompt(tmp_path, log=said.append)
    assert (rec.template, rec.schema_style, rec.schema_sample_values) == ("omnisql", "ddl", 0)
    assert said == []


def test_an_explicit_contradiction_is_used_and_printed(tmp_path):
    PromptRecipe(template="omnisql", schema_style="ddl", schema_sample_values=0).save(tmp_path)
    said: list[str] = []
    rec = resolve_prompt(tmp_path, template="sql_terminal", schema_style="ddl", log=said.append)
    assert rec.template == "sql_terminal" and rec.schema_style == "ddl"
    assert len(said) == 1 and "trained with template='omnisql'" in said[0] and "'sql_terminal'" in said[0]


def test_a_folder_without_a_recipe_uses_the_defaults_with_one_notice(tmp_path):
    said: list[str] = []
    rec = resolve_prompt(tmp_path, schema_sample_values=0, log=said.append)
    assert (rec.template, rec.schema_style, rec.schema_sample_values) == (DEFAULTS["template"], DEFAULTS["schema_style"], 0)
    assert len(said) == 1 and RECIPE_FILE in said[0]


def test_an_adapter_without_a_recipe_uses_its_base(tmp_path):
    base, adapter = tmp_path / "base", tmp_path / "adapter"
    base.mkdir()
    adapter.mkdir()
    PromptRecipe(template="minimal", source="model init").save(base)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    assert recipe_of(adapter).template == "minimal"


def test_a_broken_recipe_names_the_file(tmp_path):
    (tmp_path / RECIPE_FILE).write_text("{not json")
    with pytest.raises(DataError, match=RECIPE_FILE):
        read_recipe(tmp_path)


def test_then_keeps_the_history():
    rec = PromptRecipe(template="minimal", source="model init").then("sft", max_length=64).then("grpo")
    assert rec.source == "grpo" and rec.history == ["model init", "sft"] and rec.max_length == 64
