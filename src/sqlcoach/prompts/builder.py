"""One prompt builder for every consumer: template + schema style + sample values -> messages/rows.

:class:`PromptBuilder` owns the per-database schema cache (``introspect`` + ``serialize``, each
database read once per builder, a failure remembered too) and the skip rules. The consumers differ
in what they do with an example whose prompt cannot be built; each keeps its own rule, as a method:

=====================================  =====================================================================
consumer                               rule (method)
=====================================  =====================================================================
SFT rows (``train.sft``,               ``sft_rows`` / ``sft_row``: *strict*. No gold SQL, no database, an
``models.tiny.training_corpus``)       unreadable database or a ``DataError`` from the template (e.g. an
                                       anonymized-template name clash) skips the example, with the reason.
RL rows (``train.rl_data.              ``rl_rows`` / ``rl_row``: the SFT rule and the SFT prompt, plus the
build_rl_rows``: GRPO, PPO)            RL columns (``RL_COLUMNS``); the rows are built database by database
                                       (see ``rl_rows`` for what that means for the skip list).
Renamed SFT copies                     ``schema`` (the cached ``Schema`` object, to rename) and
(``train.augment.renamed_rows``)       ``sft_row_for_schema`` (render a row from a renamed schema).
Prediction text                        ``prediction_text`` (and ``prediction_messages``): *lenient*. An absent database gives an empty
(``generate.predict``)                 schema; an unreadable one an empty schema and one warning on stderr
                                       per database; a ``DataError`` from the template a warning and the
                                       ``minimal`` template instead. Never skips an example.
Pair mining (``train.pairs.            ``messages(ex, lenient=True)``: the lenient schema rule of prediction
mine_pairs``)                          (empty schema + one warning), but *no* template fallback: a
                                       ``DataError`` from the template propagates.
=====================================  =====================================================================

Every row, prompt text and skip message is the one the consumers produced before this class
existed (the fixture-based tests and the prediction-file checks depend on it).
"""

from __future__ import annotations

import sys
from typing import Any

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.types import Schema

#: Columns every RL row carries besides ``prompt`` (``sqlcoach.train.rl_data`` re-exports it).
RL_COLUMNS: tuple[str, ...] = (
    "id", "db_id", "db_path", "gold_sql", "hardness", "question", "format_template", "sql_names",
)


class UnreadableDatabase(DataError):
    """The schema of ``db_path`` cannot be read. ``cause`` is the original exception; ``first`` is
    True for the first report of this database by its builder (the message then says why), False
    afterwards (the message only says that the database is unreadable)."""

    def __init__(self, db_path: Any, cause: BaseException, first: bool):
        message = f"cannot read schema of {db_path}: {cause}" if first else f"unreadable database {db_path}"
        super().__init__(message)
        self.db_path = db_path
        self.cause = cause
        self.first = first


class PromptBuilder:
    """template, schema_style, sample_values -> chat messages / rows for every consumer; one schema cache.

    See the module docstring for which consumer uses which rule. Raises ``ConfigError`` naming the
    valid choices when ``template`` or ``schema_style`` is unknown."""

    def __init__(self, template: str = "sql_terminal", schema_style: str = "compact", sample_values: int = 3):
        from sqlcoach.prompts.templates import TEMPLATES, get_template
        from sqlcoach.schema.serialize import STYLES

        try:
            get_template(template)
        except ValueError:
            raise ConfigError(f"unknown template {template!r} (known: {', '.join(TEMPLATES)})") from None
        if schema_style not in STYLES:
            raise ConfigError(f"unknown schema style {schema_style!r} (known: {', '.join(STYLES)})")
        self.template = template
        self.schema_style = schema_style
        self.sample_values = sample_values
        self._schemas: dict[Any, Schema] = {}
        self._texts: dict[Any, str] = {}
        self._failed: dict[Any, BaseException] = {}  # db_path -> why it cannot be read
        self._warned: set[Any] = set()  # databases already warned about on stderr (lenient rule)

    def __repr__(self) -> str:
        return (f"PromptBuilder(template={self.template!r}, schema_style={self.schema_style!r}, "
                f"sample_values={self.sample_values})")

    # -- the schema cache -------------------------------------------------------------------------
    def _failure(self, db_path: Any) -> None:
        if db_path in self._failed:
            raise UnreadableDatabase(db_path, self._failed[db_path], first=False)

    def schema(self, db_path: Any) -> Schema:
        """The ``Schema`` of ``db_path`` (``introspect`` with ``sample_values``), read once per
        builder. Raises ``UnreadableDatabase`` (a ``DataError``) when it cannot be read; the failure
        is cached too (the first raise says why, later ones only that it is unreadable)."""
        hit = self._schemas.get(db_path)
        if hit is not None:
            return hit
        self._failure(db_path)
        from sqlcoach.schema.introspect import introspect

        try:
            schema = introspect(db_path, sample_values=self.sample_values)
        except Exception as exc:  # a broken database must not stop a run: the caller reports it
            self._failed[db_path] = exc
            raise UnreadableDatabase(db_path, exc, first=True) from exc
        self._schemas[db_path] = schema
        return schema

    def render_schema(self, schema: Schema) -> str:
        """``schema`` as text in this builder's style (no cache: for schemas not read from a file)."""
        from sqlcoach.schema.serialize import serialize

        return serialize(schema, self.schema_style)

    def schema_text(self, db_path: Any) -> str:
        """The schema text of ``db_path``, cached per database; ``UnreadableDatabase`` (a
        ``DataError``) as :meth:`schema` says."""
        hit = self._texts.get(db_path)
        if hit is not None:
            return hit
        schema = self.schema(db_path)
        try:
            text = self.render_schema(schema)
        except Exception as exc:
            self._failed[db_path] = exc
            self._schemas.pop(db_path, None)
            raise UnreadableDatabase(db_path, exc, first=True) from exc
        self._texts[db_path] = text
        return text

    def lenient_schema_text(self, ex: Any) -> str:
        """The prediction / pair-mining rule: ``""`` for an example without a database, and ``""``
        plus one warning on stderr per database when its schema cannot be read."""
        if not ex.db_path:
            return ""
        try:
            return self.schema_text(ex.db_path)
        except UnreadableDatabase as exc:
            if ex.db_path not in self._warned:
                self._warned.add(ex.db_path)
                print(f"warning: cannot read schema of {ex.db_id} ({ex.db_path}): {exc.cause}", file=sys.stderr)
            return ""

    # -- messages and rows ------------------------------------------------------------------------
    def messages(self, ex: Any, *, lenient: bool = False) -> list[dict]:
        """Chat messages of ``ex`` under the builder's template (``render_prompt``).

        ``lenient=False``: the schema must be readable (``DataError``: no database, or
        ``UnreadableDatabase``). ``lenient=True`` (pair mining): the schema is ``""`` when absent or
        unreadable (:meth:`lenient_schema_text`). Either way a ``DataError`` from the template (e.g.
        names that clash with the anonymized template's placeholders) propagates."""
        from sqlcoach.prompts.templates import render_prompt

        if lenient:
            text = self.lenient_schema_text(ex)
        else:
            if not ex.db_path:
                raise DataError("no database")
            text = self.schema_text(ex.db_path)
        return render_prompt(ex, text, self.template)

    def _row(self, ex: Any, schema_text: str) -> dict[str, Any]:
        from sqlcoach.prompts.templates import render_completion, render_prompt

        prompt = render_prompt(ex, schema_text, self.template)
        completion = render_completion(ex.gold_sql, self.template, example=ex)
        return {"prompt": list(prompt), "completion": [{"role": "assistant", "content": completion}]}

    def sft_row(self, ex: Any) -> dict[str, Any]:
        """``{"prompt": [...], "completion": [{"role": "assistant", "content": ...}]}`` for ``ex``.

        Raises ``DataError`` whose message is the skip reason: ``no gold SQL``, ``no database``,
        ``cannot read schema of <db>: <why>`` (first time) / ``unreadable database <db>`` (later
        examples of the same database), or the template's own error."""
        if not ex.gold_sql:
            raise DataError("no gold SQL")
        if not ex.db_path:
            raise DataError("no database")
        return self._row(ex, self.schema_text(ex.db_path))

    def sft_row_for_schema(self, ex: Any, schema: Schema) -> dict[str, Any]:
        """An SFT row of ``ex`` shown ``schema`` (rendered in the builder's style) instead of its
        database's: renamed copies (``train.augment``). Errors propagate (nothing is skipped)."""
        return self._row(ex, self.render_schema(schema))

    def sft_rows(self, examples: Any) -> tuple[list[dict[str, Any]], list[str]]:
        """Examples -> TRL conversational prompt/completion rows; ``(rows, skipped)`` with one
        ``"<id>: <why>"`` per skipped example (see :meth:`sft_row`), the rest still used."""
        rows: list[dict[str, Any]] = []
        skipped: list[str] = []
        for ex in examples:
            try:
                rows.append(self.sft_row(ex))
            except DataError as exc:
                skipped.append(f"{ex.id}: {exc}")
        return rows, skipped

    def _rl_columns(self, ex: Any, prompt: list[dict], tokenizer: Any) -> dict[str, Any]:
        from sqlcoach.prompts.templates import names_column

        row = {
            "prompt": prompt,
            "id": str(ex.id),
            "db_id": ex.db_id,
            "db_path": str(ex.db_path),
            "gold_sql": ex.gold_sql,
            "hardness": ex.hardness or "",
            "question": ex.question,
            "format_template": self.template,
            # JSON placeholder -> name for the anonymized template ("" otherwise): rewards decode with it
            "sql_names": names_column(ex, self.template),
        }
        if tokenizer is not None:
            from sqlcoach.prompts.chat import to_text

            row["prompt_tokens"] = len(tokenizer(to_text(prompt, tokenizer), add_special_tokens=False)["input_ids"])
        return row

    def rl_row(self, ex: Any, tokenizer: Any = None) -> dict[str, Any]:
        """One RL row: the SFT prompt of ``ex`` plus ``RL_COLUMNS`` (+ ``prompt_tokens``, the length
        of the chat-formatted prompt, with a ``tokenizer``). ``DataError`` as :meth:`sft_row`."""
        return self._rl_columns(ex, self.sft_row(ex)["prompt"], tokenizer)

    def rl_rows(self, examples: Any, tokenizer: Any = None) -> tuple[list[dict[str, Any]], list[str]]:
        """RL rows of the usable examples, in example order, and the skip reasons.

        As ``build_rl_rows`` always did: the reasons without a database read (no gold SQL, no
        database) come first, in example order; then the examples are taken database by database
        (in order of first appearance), and a database for which any example fails (unreadable,
        or a template error, which for the anonymized template is a property of the database)
        contributes no row at all, its reasons following."""
        usable: list[Any] = []
        skipped: list[str] = []
        for ex in examples:
            if not ex.gold_sql:
                skipped.append(f"{ex.id}: no gold SQL")
            elif not ex.db_path:
                skipped.append(f"{ex.id}: no database")
            else:
                usable.append(ex)
        groups: dict[Any, list[int]] = {}
        for i, ex in enumerate(usable):
            groups.setdefault(ex.db_path, []).append(i)
        prompts: list[Any] = [None] * len(usable)
        for db_path, idx in groups.items():
            rows, why = self.sft_rows([usable[i] for i in idx])
            if len(rows) == len(idx):
                for i, row in zip(idx, rows):
                    prompts[i] = row["prompt"]
            else:
                skipped.extend(why or [f"{usable[i].id}: unreadable database {db_path}" for i in idx])
        out = [self._rl_columns(ex, prompt, tokenizer) for ex, prompt in zip(usable, prompts) if prompt is not None]
        return out, skipped

    def prediction_text(self, ex: Any, tokenizer: Any) -> str:
        """The chat-formatted prompt text for predicting ``ex`` (``prompts.chat.to_text``).

        Never fails on the data: an absent or unreadable database gives an empty schema (one
        warning on stderr per database), and a ``DataError`` from the template (e.g. a name clash
        with the anonymized template's placeholders) a warning and the ``minimal`` template."""
        from sqlcoach.prompts.chat import to_text

        return to_text(self.prediction_messages(ex), tokenizer)

    def prediction_messages(self, ex: Any) -> list[dict]:
        """The chat messages :meth:`prediction_text` formats (what a chat endpoint is sent), under
        the same lenient rule: empty schema for an absent/unreadable database, the ``minimal``
        template when the builder's template raises ``DataError``. Never fails on the data."""
        from sqlcoach.prompts.templates import render_prompt

        text = self.lenient_schema_text(ex)
        try:
            return list(render_prompt(ex, text, self.template))
        except DataError as exc:  # e.g. names that clash with the anonymized template's placeholders
            print(f"warning: {ex.id}: {exc}; prompting with the minimal template instead", file=sys.stderr)
            return list(render_prompt(ex, text, "minimal"))

    def prediction_texts(self, examples: Any, tokenizer: Any) -> list[str]:
        """:meth:`prediction_text` of each example."""
        return [self.prediction_text(ex, tokenizer) for ex in examples]
