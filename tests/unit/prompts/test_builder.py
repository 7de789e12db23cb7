"""PromptBuilder: one schema cache and the consumers' rules (SFT, RL, prediction, pair mining,
renamed copies), byte-identical to what the consumers built before it existed."""

from __future__ import annotations

import ast
import importlib
import sqlite3
import sys
from pathlib import Path

import pytest

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.prompts.builder import RL_COLUMNS, PromptBuilder, UnreadableDatabase
from sqlcoach.prompts.templates import TEMPLATES
from sqlcoach.schema.serialize import STYLES
from sqlcoach.types import Example
from sqlcoach.tasks import needs_gold

# the module (sqlcoach.schema re-exports a function of the same name)
introspect_mod = importlib.import_module("sqlcoach.schema.introspect")
SRC = Path(__file__).resolve().parents[3] / "src" / "sqlcoach"


def _make_db(path: Path, script: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(script)
    con.commit()
    con.close()
    return str(path)


@pytest.fixture()
def dbs(tmp_path):
    shop = _make_db(tmp_path / "shop.sqlite", """
        CREATE TABLE item (item_id INTEGER PRIMARY KEY, name TEXT, price REAL);
        CREATE TABLE sale (sale_id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES item(item_id), qty INTEGER);
        INSERT INTO item VALUES (1, 'pen', 2.0), (2, 'ink', 5.0), (3, 'pad', 3.5);
        INSERT INTO sale VALUES (1, 1, 4), (2, 3, 1);
    """)
    zoo = _make_db(tmp_path / "zoo" / "zoo.sqlite", """
        CREATE TABLE animal (animal_id INTEGER PRIMARY KEY, species TEXT, age INTEGER);
        INSERT INTO animal VALUES (1, 'lion', 4), (2, 'seal', 9);
    """)
    # names that look like the anonymized template's placeholders: a DataError from the template
    clash = _make_db(tmp_path / "clash.sqlite", "CREATE TABLE t1 (c1 INTEGER, name TEXT); INSERT INTO t1 VALUES (1, 'a');")
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is not a database" * 100)
    return {"shop": shop, "zoo": zoo, "clash": clash, "broken": str(broken)}


def _ex(i, db, sql="SELECT count(*) FROM item", question=None, db_id="shop", **kw):
    return Example(id=f"q{i}", db_id=db_id, question=question or f"How many items {i}?", gold_sql=sql, db_path=db, **kw)


def _examples(dbs):
    return [
        _ex(0, dbs["shop"], hardness="easy"),
        _ex(1, dbs["zoo"], "SELECT species FROM animal WHERE age > 5", "Which animals are older than 5?", "zoo"),
        _ex(2, dbs["shop"], None),  # no gold SQL
        _ex(3, None),  # no database
        _ex(4, dbs["broken"], db_id="broken"),  # unreadable
        _ex(5, dbs["shop"], "SELECT name FROM item WHERE price > 3", "Names of items over 3?"),
        _ex(6, dbs["broken"], db_id="broken"),  # unreadable, second example of that database
        _ex(7, dbs["clash"], "SELECT name FROM t1", "The name?", "clash"),
        _ex(8, dbs["zoo"], "SELECT count(*) FROM animal", "How many animals?", "zoo"),
    ]


# The SFT recipe's build_rows as it was before PromptBuilder (train/sft.py), kept verbatim as the
# reference the builder must reproduce byte for byte.
def _reference_build_rows(examples, *, template, schema_style, sample_values=3):
    from sqlcoach.prompts.templates import render_completion, render_prompt
    from sqlcoach.schema.introspect import introspect
    from sqlcoach.schema.serialize import serialize

    schema_text = {}
    rows, skipped = [], []
    for ex in examples:
        if not ex.gold_sql:
            skipped.append(f"{ex.id}: no gold SQL")
            continue
        if not ex.db_path:
            skipped.append(f"{ex.id}: no database")
            continue
        if ex.db_path not in schema_text:
            try:
                schema_text[ex.db_path] = serialize(introspect(ex.db_path, sample_values=sample_values), schema_style)
            except Exception as exc:
                schema_text[ex.db_path] = None
                skipped.append(f"{ex.id}: cannot read schema of {ex.db_path}: {exc}")
                continue
        text = schema_text[ex.db_path]
        if text is None:
            skipped.append(f"{ex.id}: unreadable database {ex.db_path}")
            continue
        try:
            prompt = render_prompt(ex, text, template)
            completion = render_completion(ex.gold_sql, template, example=ex)
        except DataError as exc:
            skipped.append(f"{ex.id}: {exc}")
            continue
        rows.append({"prompt": list(prompt), "completion": [{"role": "assistant", "content": completion}]})
    return rows, skipped


# generate/predict.py's build_prompts as it was before PromptBuilder (one call = one cache).
def _reference_build_prompts(examples, tokenizer, *, template, schema_style, sample_values=3):
    from sqlcoach.prompts.chat import to_text
    from sqlcoach.prompts.templates import render_prompt
    from sqlcoach.schema.introspect import introspect
    from sqlcoach.schema.serialize import serialize

    cache = {}
    out = []
    for ex in examples:
        key = ex.db_path or ""
        if key not in cache:
            try:
                cache[key] = serialize(introspect(ex.db_path, sample_values=sample_values), schema_style) if ex.db_path else ""
            except Exception as exc:
                print(f"warning: cannot read schema of {ex.db_id} ({ex.db_path}): {exc}", file=sys.stderr)
                cache[key] = ""
        try:
            messages = render_prompt(ex, cache[key], template)
        except DataError as exc:
            print(f"warning: {ex.id}: {exc}; prompting with the minimal template instead", file=sys.stderr)
            messages = render_prompt(ex, cache[key], "minimal")
        out.append(to_text(messages, tokenizer))
    return out


@pytest.mark.parametrize("template", sorted(TEMPLATES))
@pytest.mark.parametrize("style", sorted(STYLES))
def test_sft_rows_equal_the_old_build_rows(dbs, template, style):
    exs = _examples(dbs)
    for sv in (0, 2):
        want = _reference_build_rows(exs, template=template, schema_style=style, sample_values=sv)
        assert PromptBuilder(template, style, sv).sft_rows(exs) == want
        try:  # while sqlcoach.train.sft.build_rows still exists it must agree too
            from sqlcoach.train.sft import build_rows
        except ImportError:
            continue
        assert build_rows(exs, template=template, schema_style=style, sample_values=sv) == want


def test_sft_rows_hard_written(dbs):
    rows, skipped = PromptBuilder("minimal", "compact", 0).sft_rows(_examples(dbs))
    assert rows[0] == {
        "prompt": [{"role": "user", "content": "item(item_id*, name, price)\nsale(sale_id*, item_id->item.item_id, qty)\n"
                                               "Question: How many items 0?\nSQL:"}],
        "completion": [{"role": "assistant", "content": "SELECT count(*) FROM item"}],
    }
    assert rows[1]["prompt"][0]["content"] == "animal(animal_id*, species, age)\nQuestion: Which animals are older than 5?\nSQL:"
    assert len(rows) == 5  # q0, q1, q5, q7 (no clash outside the anonymized template), q8
    b = dbs["broken"]
    assert skipped == [
        "q2: no gold SQL",
        "q3: no database",
        f"q4: cannot read schema of {b}: {b}: cannot read schema: file is not a database",
        f"q6: unreadable database {b}",
    ]
    rows, skipped = PromptBuilder("sql_terminal", "compact", 2).sft_rows(_examples(dbs)[:1])
    assert "item(item_id*{1|2}, name{'pen'|'ink'}, price{2.0|5.0})" in rows[0]["prompt"][0]["content"]
    _, skipped = PromptBuilder("anonymized", "compact", 0).sft_rows(_examples(dbs))
    assert skipped[-1].startswith(f"q7: {dbs['clash']}: schema names look like anonymisation placeholders")


def test_each_database_is_introspected_once(dbs, monkeypatch):
    calls: list[str] = []
    real = introspect_mod.introspect

    def counting(db_path, **kw):
        calls.append(str(db_path))
        return real(db_path, **kw)

    monkeypatch.setattr(introspect_mod, "introspect", counting)
    b = PromptBuilder("sql_terminal", "compact", 0)
    exs = _examples(dbs) * 2
    b.sft_rows(exs)
    b.rl_rows(exs)
    for ex in exs:
        b.prediction_text(ex, None)
        b.messages(ex, lenient=True)
    b.schema(dbs["shop"])
    b.schema_text(dbs["zoo"])
    # each readable and each unreadable database once (the failure is cached too)
    assert sorted(calls) == sorted([dbs["shop"], dbs["zoo"], dbs["clash"], dbs["broken"]])


def test_unreadable_database_is_reported_once_and_cached(dbs):
    b = PromptBuilder()
    with pytest.raises(UnreadableDatabase, match="cannot read schema of .*file is not a database") as first:
        b.schema_text(dbs["broken"])
    assert first.value.first and isinstance(first.value, DataError)
    with pytest.raises(UnreadableDatabase, match="^unreadable database ") as again:
        b.schema(dbs["broken"])
    assert not again.value.first and again.value.cause is first.value.cause
    with pytest.raises(DataError, match="no gold SQL"):
        b.sft_row(_ex(0, dbs["shop"], None))
    with pytest.raises(DataError, match="no database"):
        b.sft_row(_ex(0, None))
    with pytest.raises(DataError, match="no database"):
        b.messages(_ex(0, None))


def test_rl_rows_without_a_gold_rule_keep_gold_less_examples(dbs):
    """The builder itself needs only a database: gold is the task's business (tasks.sql_exec)."""
    exs = _examples(dbs)
    rows, skipped = PromptBuilder("sql_terminal", "compact", 0).rl_rows(exs)
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q5", "q7", "q8"]
    q2 = rows[2]
    assert q2["gold_sql"] is None
    assert q2["prompt"] == PromptBuilder("sql_terminal", "compact", 0).messages(exs[2])
    assert not any("no gold SQL" in s for s in skipped)


def test_rl_rows_skip_unusable_examples_with_the_old_order(dbs):
    exs = _examples(dbs)
    rows, skipped = PromptBuilder("sql_terminal", "compact", 0).rl_rows(exs, skip=needs_gold)
    assert [r["id"] for r in rows] == ["q0", "q1", "q5", "q7", "q8"]
    sft_rows, _ = _reference_build_rows(exs, template="sql_terminal", schema_style="compact", sample_values=0)
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in sft_rows]
    for row in rows:
        assert set(row) == set(RL_COLUMNS) | {"prompt"} and row["format_template"] == "sql_terminal"
    assert rows[0]["hardness"] == "easy" and rows[0]["db_path"] == dbs["shop"] and rows[0]["sql_names"] == ""
    b = dbs["broken"]
    # per-example reasons first, then the reasons found database by database
    assert skipped == [
        "q2: no gold SQL",
        "q3: no database",
        f"q4: cannot read schema of {b}: {b}: cannot read schema: file is not a database",
        f"q6: unreadable database {b}",
    ]
    _, skipped = PromptBuilder().rl_rows([exs[4], exs[2], exs[0]], skip=needs_gold)
    assert skipped[0] == "q2: no gold SQL" and skipped[1].startswith("q4: cannot read schema of")
    # the anonymized template: a clashing database gives no row; the others carry their name map
    rows, skipped = PromptBuilder("anonymized", "compact", 0).rl_rows(exs, skip=needs_gold)
    assert "q7" not in [r["id"] for r in rows] and skipped[-1].startswith("q7: ")
    assert '"t1": "item"' in rows[0]["sql_names"]


def test_rl_row_and_prompt_tokens(dbs):
    class Tok:
        chat_template = None

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

    b = PromptBuilder("minimal", "compact", 0)
    row = b.rl_row(_ex(0, dbs["shop"]), tokenizer=Tok())
    assert row["prompt_tokens"] == len((row["prompt"][-1]["content"] + "\n").split())
    assert "prompt_tokens" not in b.rl_row(_ex(0, dbs["shop"]))
    with pytest.raises(DataError, match="cannot read schema"):
        b.rl_row(_ex(4, dbs["broken"]))


def test_rl_columns_are_defined_once():
    from sqlcoach.train import rl_data

    assert rl_data.RL_COLUMNS is RL_COLUMNS
    tree = ast.parse((SRC / "train" / "rl_data.py").read_text())
    assigned = [t.id for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)]
    assert "RL_COLUMNS" not in assigned


@pytest.mark.parametrize("template", ["sql_terminal", "omnisql", "anonymized"])
def test_prediction_text_equals_the_old_build_prompts(dbs, template, capsys):
    exs = _examples(dbs)
    want = _reference_build_prompts(exs, None, template=template, schema_style="compact", sample_values=3)
    want_err = capsys.readouterr().err
    got = PromptBuilder(template, "compact", 3).prediction_texts(exs, None)
    assert got == want and capsys.readouterr().err == want_err


def test_prediction_text_unreadable_database_gets_an_empty_schema_and_one_warning(dbs, capsys):
    b = PromptBuilder("minimal", "compact", 0)
    texts = [b.prediction_text(_ex(i, dbs["broken"], db_id="broken"), None) for i in range(3)]
    assert texts[0] == "\nQuestion: How many items 0?\nSQL:\n"
    assert b.prediction_text(_ex(9, None), None) == "\nQuestion: How many items 9?\nSQL:\n"  # no database: no warning
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: cannot read schema of broken ({dbs['broken']}): {dbs['broken']}: cannot read schema: "
                   "file is not a database"]
    # a template error falls back to the minimal template, with a warning
    anon = PromptBuilder("anonymized", "compact", 0)
    text = anon.prediction_text(_ex(7, dbs["clash"], "SELECT name FROM t1", "The name?", "clash"), None)
    assert text == "t1(c1, name)\nQuestion: The name?\nSQL:\n"
    assert "prompting with the minimal template instead" in capsys.readouterr().err


def test_pair_mining_rule_is_lenient_schema_without_template_fallback(dbs, capsys):
    b = PromptBuilder("minimal", "compact", 0)
    assert b.messages(_ex(4, dbs["broken"]), lenient=True) == [
        {"role": "user", "content": "\nQuestion: How many items 4?\nSQL:"}]
    assert "warning: cannot read schema of" in capsys.readouterr().err
    assert b.messages(_ex(3, None), lenient=True)[0]["content"].startswith("\nQuestion:")
    with pytest.raises(DataError):
        b.messages(_ex(4, dbs["broken"]))  # the strict rule
    with pytest.raises(DataError, match="placeholders"):
        PromptBuilder("anonymized", "compact", 0).messages(_ex(7, dbs["clash"], "SELECT name FROM t1"), lenient=True)


def test_sft_row_for_schema_renders_a_given_schema(dbs):
    b = PromptBuilder("omnisql", "ddl", 2)
    ex = _ex(0, dbs["shop"])
    assert b.sft_row_for_schema(ex, b.schema(dbs["shop"])) == b.sft_row(ex)


def test_unknown_template_or_style_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="unknown template 'nope'") as exc:
        PromptBuilder(template="nope")
    assert all(name in str(exc.value) for name in TEMPLATES)
    with pytest.raises(ConfigError, match="unknown schema style 'yaml'") as exc:
        PromptBuilder(schema_style="yaml")
    assert all(name in str(exc.value) for name in STYLES)


def test_models_do_not_import_train():
    tree = ast.parse((SRC / "models" / "tiny.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("sqlcoach.train")]


def test_prompt_settings_are_checked_once_and_travel_whole():
    import pytest

    from sqlcoach.errors import ConfigError
    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.prompts.settings import DEFAULTS, PromptSettings

    s = PromptSettings.of(template="minimal", value_retrieval=None)
    assert s.as_dict() == {**DEFAULTS, "template": "minimal"}
    assert PromptSettings.of({"token_budget": 40}).token_budget == 40  # a job mapping
    b = PromptBuilder.from_settings(s)
    assert b.prompt == s and b.settings() == s.as_dict()
    with pytest.raises(ConfigError, match="unknown template"):
        PromptSettings(template="nope")
    with pytest.raises(ConfigError, match="turn_history"):
        PromptSettings(turn_history="everything")
    with pytest.raises(ConfigError, match=">= 0"):
        PromptSettings(token_budget=-1)
    with pytest.raises(Exception):  # frozen: nobody changes a run's settings on the way
        s.template = "sql_terminal"  # type: ignore[misc]
