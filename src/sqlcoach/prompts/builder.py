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
RL rows (``tasks.sql_exec``,          ``rl_rows`` / ``rl_row``: the SFT prompt plus the RL columns
``train.rl_data.build_rl_rows``:       (``RL_COLUMNS``); which examples are usable is the caller's rule
GRPO, PPO)                             (``skip=``: the execution task needs gold SQL); the rows are built
                                       database by database (see ``rl_rows`` for the skip list).
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

Every consumer gets the same prompt for the same settings: value retrieval (``value_retrieval``
values the question mentions, ``sqlcoach.schema.values``, shown under the schema), the token
budget (``token_budget``: the schema text shrunk as ``sqlcoach.schema.serialize`` documents,
measured with ``approx_tokens`` so that training and prediction cut the same way whatever the
tokenizer) and the multi-turn history (``turn_history``: ``questions`` shows only the earlier
questions; ``predicted`` and ``gold`` show the SQL the example's ``turns`` carry: prediction puts
the model's own earlier SQL there, training rows keep the gold, i.e. teacher forcing). With
``value_retrieval=0`` and ``token_budget=0`` the schema text is the per-database cached text, byte
for byte what the builder made before those settings existed. BIRD's
``database_description/*.csv`` column and value descriptions reach the ``ddl`` and ``nl`` styles
through ``introspect`` when the files are present.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from sqlcoach.errors import DataError
from sqlcoach.prompts.settings import PromptSettings
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

    def __init__(self, template: str = "sql_terminal", schema_style: str = "compact", sample_values: int = 3,
                 *, value_retrieval: int | None = None, token_budget: int | None = None,
                 turn_history: str | None = None):
        # None: the setting's default (``prompts.settings.DEFAULTS``); PromptSettings checks the rest
        self.prompt = PromptSettings.of(template=template, schema_style=schema_style,
                                        schema_sample_values=sample_values, value_retrieval=value_retrieval,
                                        token_budget=token_budget, turn_history=turn_history)
        self.template = self.prompt.template
        self.schema_style = self.prompt.schema_style
        self.sample_values = self.prompt.schema_sample_values
        self.value_retrieval = self.prompt.value_retrieval
        self.token_budget = self.prompt.token_budget
        self.turn_history = self.prompt.turn_history
        self._schemas: dict[Any, Schema] = {}
        self._texts: dict[Any, str] = {}
        self._failed: dict[Any, BaseException] = {}  # db_path -> why it cannot be read
        self._warned: set[Any] = set()  # databases already warned about on stderr (lenient rule)

    @classmethod
    def from_settings(cls, settings: PromptSettings | Any) -> PromptBuilder:
        """The builder of a :class:`~sqlcoach.prompts.settings.PromptSettings` (or of a mapping
        under the ``PROMPT_KEYS`` names, missing keys taking ``DEFAULTS``)."""
        s = settings if isinstance(settings, PromptSettings) else PromptSettings.of(dict(settings))
        return cls(s.template, s.schema_style, s.schema_sample_values, value_retrieval=s.value_retrieval,
                   token_budget=s.token_budget, turn_history=s.turn_history)

    def settings(self) -> dict[str, Any]:
        """This builder's settings under the recipe's names (``PROMPT_KEYS``)."""
        return self.prompt.as_dict()

    def __repr__(self) -> str:
        return (f"PromptBuilder(template={self.template!r}, schema_style={self.schema_style!r}, "
                f"sample_values={self.sample_values}, value_retrieval={self.value_retrieval}, "
                f"token_budget={self.token_budget}, turn_history={self.turn_history!r})")

    @property
    def plain(self) -> bool:
        """True when the schema text depends on the database only (no values, no budget)."""
        return self.value_retrieval == 0 and self.token_budget == 0

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

    def retrieval_text(self, ex: Any) -> str:
        """What value retrieval reads: the question, its evidence and the earlier questions."""
        parts = [ex.question, ex.evidence or "", *(t.question for t in getattr(ex, "turns", ()))]
        return " ".join(p for p in parts if p)

    def values_for(self, ex: Any) -> list[tuple[str, str, str]]:
        """Up to ``value_retrieval`` ``(table, column, value)`` triples ``ex`` mentions (``[]`` without
        a database, or when its values cannot be indexed: the schema read already said why)."""
        if self.value_retrieval <= 0 or not ex.db_path:
            return []
        from sqlcoach.schema.values import retrieve_values

        try:
            return retrieve_values(ex.db_path, self.retrieval_text(ex), k=self.value_retrieval)
        except (DataError, OSError):
            return []

    def example_schema_text(self, ex: Any) -> tuple[str, list[tuple[str, str, str]]]:
        """``(schema text, values)`` of ``ex``: the cached per-database text when :attr:`plain`,
        else the schema serialised with the values ``ex`` mentions and within the token budget.
        ``UnreadableDatabase`` as :meth:`schema` says (the caller checks ``ex.db_path``)."""
        if self.plain:
            return self.schema_text(ex.db_path), []
        from sqlcoach.schema.serialize import serialize

        schema = self.schema(ex.db_path)
        values = self.values_for(ex)
        try:
            text = serialize(schema, self.schema_style, values=values, question=self.retrieval_text(ex),
                             budget_tokens=self.token_budget or None)
        except Exception as exc:
            self._failed[ex.db_path] = exc
            self._schemas.pop(ex.db_path, None)
            raise UnreadableDatabase(ex.db_path, exc, first=True) from exc
        return text, values

    def shown(self, ex: Any) -> Any:
        """``ex`` as the prompt shows it: under ``turn_history=questions`` its earlier turns lose
        their SQL (the model sees the earlier questions only)."""
        if self.turn_history == "questions" and any(t.sql for t in ex.turns):
            from dataclasses import replace

            from sqlcoach.types import Turn

            return replace(ex, turns=tuple(Turn(t.question, None) for t in ex.turns))
        return ex

    def render(self, ex: Any, schema_text: str, values: Any = (), template: str | None = None) -> list[dict]:
        """``render_prompt`` of ``ex`` as shown (:meth:`shown`) with this builder's values and budget."""
        from sqlcoach.prompts.templates import render_prompt

        return render_prompt(self.shown(ex), schema_text, template or self.template,
                             values=values, budget_tokens=self.token_budget or None)

    def lenient_example_text(self, ex: Any) -> tuple[str, list[tuple[str, str, str]]]:
        """:meth:`example_schema_text` under the lenient rule of :meth:`lenient_schema_text`."""
        if not ex.db_path:
            return "", []
        try:
            return self.example_schema_text(ex)
        except UnreadableDatabase as exc:
            if ex.db_path not in self._warned:
                self._warned.add(ex.db_path)
                print(f"warning: cannot read schema of {ex.db_id} ({ex.db_path}): {exc.cause}", file=sys.stderr)
            return "", []

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
        if lenient:
            text, values = self.lenient_example_text(ex)
        else:
            if not ex.db_path:
                raise DataError("no database")
            text, values = self.example_schema_text(ex)
        return self.render(ex, text, values)

    def _row(self, ex: Any, schema_text: str, values: Any = ()) -> dict[str, Any]:
        from sqlcoach.prompts.templates import render_completion

        prompt = self.render(ex, schema_text, values)
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
        return self._row(ex, *self.example_schema_text(ex))

    def sft_row_for_schema(self, ex: Any, schema: Schema) -> dict[str, Any]:
        """An SFT row of ``ex`` shown ``schema`` (rendered in the builder's style) instead of its
        database's: renamed copies (``train.augment``). Errors propagate (nothing is skipped).
        Retrieved values are not shown (they are spelled in the database's names, which the copy
        renames); the token budget applies."""
        if self.token_budget:
            from sqlcoach.schema.serialize import serialize

            return self._row(ex, serialize(schema, self.schema_style, question=ex.question, budget_tokens=self.token_budget))
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

    def rl_rows(self, examples: Any, tokenizer: Any = None, *,
                skip: Callable[[Any], str | None] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """RL rows of the usable examples, in example order, and the skip reasons.

        Which examples a consumer can use is its own rule, not the builder's: ``skip(ex)`` returns
        the reason to leave ``ex`` out, or ``None`` (the single-turn execution task, which scores
        against the gold, passes ``sqlcoach.tasks.sql_exec.needs_gold``: "no gold SQL"). The
        builder itself only needs a database. An example without gold SQL that ``skip`` lets
        through gets the SFT prompt alone (its ``gold_sql`` column is ``None``).

        As ``build_rl_rows`` always did: the consumer's reasons and "no database" (no database read)
        come first, in example order; then the examples are taken database by database (in order of
        first appearance), and a database for which any example fails (unreadable, or a template
        error, which for the anonymized template is a property of the database) contributes no row
        at all, its reasons following."""
        usable: list[Any] = []
        skipped: list[str] = []
        for ex in examples:
            reason = skip(ex) if skip is not None else None
            if reason:
                skipped.append(f"{ex.id}: {reason}")
            elif not ex.db_path:
                skipped.append(f"{ex.id}: no database")
            else:
                usable.append(ex)
        groups: dict[Any, list[int]] = {}
        for i, ex in enumerate(usable):
            groups.setdefault(ex.db_path, []).append(i)
        prompts: list[Any] = [None] * len(usable)
        for db_path, idx in groups.items():
            got, why = self._rl_prompts([usable[i] for i in idx])
            if len(got) == len(idx):
                for i, prompt in zip(idx, got):
                    prompts[i] = prompt
            else:
                skipped.extend(why or [f"{usable[i].id}: unreadable database {db_path}" for i in idx])
        out = [self._rl_columns(ex, prompt, tokenizer) for ex, prompt in zip(usable, prompts) if prompt is not None]
        return out, skipped

    def _rl_prompts(self, examples: list[Any]) -> tuple[list[list[dict]], list[str]]:
        """The SFT prompt of each example (through ``sft_row`` when it has gold SQL, so the
        template's completion rules apply as in SFT; the prompt alone otherwise) and the reasons of
        those that fail."""
        prompts: list[list[dict]] = []
        skipped: list[str] = []
        for ex in examples:
            try:
                prompts.append(self.sft_row(ex)["prompt"] if ex.gold_sql else list(self.render(ex, *self.example_schema_text(ex))))
            except DataError as exc:
                skipped.append(f"{ex.id}: {exc}")
        return prompts, skipped

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
        text, values = self.lenient_example_text(ex)
        try:
            return list(self.render(ex, text, values))
        except DataError as exc:  # e.g. names that clash with the anonymized template's placeholders
            print(f"warning: {ex.id}: {exc}; prompting with the minimal template instead", file=sys.stderr)
            return list(self.render(ex, text, values, "minimal"))

    def prediction_texts(self, examples: Any, tokenizer: Any) -> list[str]:
        """:meth:`prediction_text` of each example."""
        return [self.prediction_text(ex, tokenizer) for ex in examples]
