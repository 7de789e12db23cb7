"""Choosing one answer among N sampled candidates: named selection rules behind one typed signature.

A selector is a ``Selector``: ``selector(candidates) -> Selection``. ``SELECTORS`` maps each rule's
name (what ``sqlcoach predict --select`` takes) to its function; ``get_selector(name)`` looks one
up with a clear error. A learned selector (a verifier reading each candidate's rendered result)
is one more callable of the same type, built from its folder; ``predict(select=...)`` takes a name
or such a callable, and the candidates carry the question and the schema text it reads.

The rules (each one never lets a candidate whose SQL failed to run win over one that ran):

``first``
    The first candidate whose SQL ran without error. When none ran, the first non-empty SQL
    (``fallback``), and ``-1`` / ``""`` when every candidate is empty. With the greedy answer
    put first this is "greedy, unless greedy fails and a sample runs".
``vote``
    Self-consistency by execution result (``sqlcoach.execution.vote.vote``, its docstring has the
    grouping and tie rules): the largest group of candidates with the same result wins, a tie
    goes to the group whose first member came first, the winner is that group's first member.
    When no candidate ran, the most frequent non-empty SQL string (``fallback``).
``vote-nonempty``
    The same vote, among the candidates whose SQL ran without error AND returned at least one
    row. The groups are the plain vote's (an empty result never groups with a non-empty one
    under the project's comparer, so dropping the empty group leaves the others whole); the
    largest non-empty group wins, ties as in ``vote``. When no candidate returned a row, the
    plain ``vote`` decides (``fallback``). A row of NULLs counts as a row: the comparer, not
    this rule, decides what a result is.

``Selection.votes[i]`` is always the size of candidate i's group in the plain vote (0 when it did
not run), whatever the rule, so the JSONL records the same vote counts under every rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlcoach.errors import ConfigError
from sqlcoach.execution.vote import Vote, vote
from sqlcoach.types import ExecResult


@dataclass(frozen=True)
class Candidates:
    """The N candidates of one question, in sample order (the greedy one first when there is one).

    ``sqls[i]``: the SQL (``""`` when none came out); ``results[i]``: its execution result on the
    question's database, ``None`` when it was not run. ``question`` and ``schema_text``: what a
    learned selector reads besides the results; the rule-based selectors ignore them."""

    sqls: tuple[str, ...]
    results: tuple[ExecResult | None, ...]
    question: str = ""
    schema_text: str = ""

    def __post_init__(self) -> None:
        if len(self.sqls) != len(self.results):  # internal invariant: one result per candidate
            raise ValueError(f"{len(self.sqls)} candidate SQL strings for {len(self.results)} results")

    @classmethod
    def of(cls, sqls: Sequence[str], results: Sequence[ExecResult | None], **context: str) -> Candidates:
        return cls(tuple(sqls), tuple(results), **context)

    def ran(self, i: int) -> bool:
        """Whether candidate ``i`` has SQL that ran without error."""
        r = self.results[i]
        return bool(self.sqls[i]) and r is not None and r.error is None and r.rows is not None


@dataclass(frozen=True)
class Selection:
    """What a selector chose. ``chosen``: the candidate's index (``-1`` when every candidate is
    empty); ``sql``: its SQL; ``rule``: the selector's name; ``votes[i]``: candidate i's group size
    in the plain result vote (0 when it did not run); ``fallback``: the rule's own criterion could
    not decide and its documented fallback did; ``scores``: a learned selector's score of each
    candidate, ``None`` for one that did not run (``None`` as a whole for the rules)."""

    chosen: int
    sql: str
    rule: str
    votes: tuple[int, ...]
    fallback: bool
    scores: tuple[float | None, ...] | None = None


class Selector(Protocol):
    """The contract of a selection rule: pure in its input, never picks a candidate that failed
    to run when another ran, deterministic for the rule-based ones."""

    def __call__(self, candidates: Candidates) -> Selection: ...


def _plain_vote(c: Candidates) -> tuple[Vote, tuple[int, ...]]:
    v = vote(c.sqls, c.results)
    return v, tuple(v.sizes[g] if g >= 0 else 0 for g in v.group_of)


def select_first(c: Candidates) -> Selection:
    """The ``first`` rule (module docstring)."""
    _, votes = _plain_vote(c)
    for i in range(len(c.sqls)):
        if c.ran(i):
            return Selection(i, c.sqls[i], "first", votes, False)
    for i, sql in enumerate(c.sqls):
        if sql:
            return Selection(i, sql, "first", votes, True)
    return Selection(-1, "", "first", votes, True)


def select_vote(c: Candidates) -> Selection:
    """The ``vote`` rule (module docstring)."""
    v, votes = _plain_vote(c)
    return Selection(v.chosen, v.sql, "vote", votes, v.fallback)


def select_vote_nonempty(c: Candidates) -> Selection:
    """The ``vote-nonempty`` rule (module docstring)."""
    v, votes = _plain_vote(c)
    reps = {g: v.group_of.index(g) for g in range(len(v.sizes))}  # group -> its first member
    nonempty = [g for g in range(len(v.sizes)) if c.results[reps[g]].rows]  # type: ignore[union-attr]
    if not nonempty:
        return Selection(v.chosen, v.sql, "vote-nonempty", votes, True)
    best = max(nonempty, key=lambda g: v.sizes[g])  # max keeps the first of equal sizes: the earliest group
    return Selection(reps[best], c.sqls[reps[best]], "vote-nonempty", votes, False)


#: name -> selector; ``sqlcoach predict --select`` offers these names.
SELECTORS: dict[str, Selector] = {
    "first": select_first,
    "vote": select_vote,
    "vote-nonempty": select_vote_nonempty,
}

#: what ``predict`` did before selection rules existed, and still does by default
DEFAULT_SELECTOR = "vote"

#: selectors that need a trained verifier folder (``--verifier DIR``); built by
#: ``sqlcoach.generate.verifier_select.build_selector`` (this layer imports no model)
LEARNED_SELECTORS: tuple[str, ...] = ("verifier", "vote+verifier")


def get_selector(name: str) -> Selector:
    """The selector called ``name``; ``ConfigError`` naming the known ones otherwise."""
    try:
        return SELECTORS[name]
    except (KeyError, TypeError):
        if name in LEARNED_SELECTORS:
            raise ConfigError(f"selection {name!r} reads a trained verifier: give its folder (--verifier DIR)") from None
        raise ConfigError(f"unknown selection rule {name!r}; choose one of "
                          f"{', '.join([*SELECTORS, *LEARNED_SELECTORS])}") from None

