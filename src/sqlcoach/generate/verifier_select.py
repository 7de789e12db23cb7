"""Selection by a trained verifier: the ``verifier`` and ``vote+verifier`` rules.

Both are ``sqlcoach.execution.select.Selector`` callables built from a verifier folder
(``build_selector(name, verifier=DIR)``, what ``predict --select ... --verifier DIR`` calls); they
live here because they load a model, which the execution layer may not import. Every candidate
that ran (each distinct text once) is scored by the verifier reading its rendered result
(``sqlcoach.models.verifier``); ``Selection.scores`` holds each candidate's logit, ``None`` for a
candidate whose SQL failed, timed out or was empty: it can never be chosen while another ran, so
it is not scored (on SmolLM2's Spider samples that is 70-85 % of the candidates, and of the
verifier's forward passes).

``verifier``
    The candidate that ran (SQL without error; ``Candidates.ran``) with the highest score; ties go
    to the earlier candidate. A candidate whose SQL failed or timed out never wins over one that
    ran, whatever its score.
``vote+verifier``
    A vote weighted by the verifier: the candidates that ran are grouped by result as in
    ``vote``; each group weighs the sum of its members' probabilities ``sigmoid(score)``; the
    heaviest group wins (ties: the group whose first member came first) and its highest-scored
    member is chosen. With equal scores this is the plain vote.

When no candidate ran, both fall back to the plain ``vote`` rule's fallback (the most frequent
non-empty SQL string), ``fallback=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError
from sqlcoach.execution.select import LEARNED_SELECTORS, Candidates, Selection, Selector, get_selector, select_vote
from sqlcoach.execution.vote import vote
from sqlcoach.models.verifier import Verifier, load_verifier, sigmoid


class VerifierSelector:
    """The ``verifier`` / ``vote+verifier`` rule (module docstring) with a loaded ``Verifier``.

    ``reads_schema``: ``predict`` fills ``Candidates.schema_text`` for selectors that say so."""

    reads_schema = True

    def __init__(self, verifier: Verifier, rule: str = "verifier"):
        if rule not in LEARNED_SELECTORS:
            raise ConfigError(f"a verifier selects by one of {', '.join(LEARNED_SELECTORS)}, not {rule!r}")
        self.verifier = verifier
        self.rule = rule
        self.__name__ = rule
        # what predict's run key records: the rule and the verifier's folder (two verifiers never resume each other's file)
        self.key = f"{rule}:{getattr(verifier, 'path', '') or type(verifier).__name__}"

    def __call__(self, c: Candidates) -> Selection:
        plain = select_vote(c)
        ran = [i for i in range(len(c.sqls)) if c.ran(i)]
        logits = self.verifier.score([(c.question, c.schema_text, c.sqls[i], c.results[i]) for i in ran]) if ran else []
        by_index = dict(zip(ran, logits))
        scores = tuple(by_index.get(i) for i in range(len(c.sqls)))
        if not ran:
            return Selection(plain.chosen, plain.sql, self.rule, plain.votes, True, scores)
        if self.rule == "verifier":
            best = max(ran, key=lambda i: (scores[i], -i))
        else:
            groups = vote(c.sqls, c.results).group_of
            weight: dict[int, float] = {}
            for i in ran:
                weight[groups[i]] = weight.get(groups[i], 0.0) + sigmoid(scores[i])
            first = {g: min(i for i in ran if groups[i] == g) for g in weight}
            g = max(weight, key=lambda g: (weight[g], -first[g]))
            best = max((i for i in ran if groups[i] == g), key=lambda i: (scores[i], -i))
        return Selection(best, c.sqls[best], self.rule, plain.votes, False, scores)


def build_selector(name: str, verifier: str | Path | Verifier | None = None, *, device: str = "auto",
                   prefix_cache: bool = False) -> Selector:
    """The selector ``name``: a rule of ``execution.select.SELECTORS``, or a learned one
    (``LEARNED_SELECTORS``) read from the verifier folder ``verifier``. ``ConfigError`` for an
    unknown name, a learned rule without a verifier, a verifier given to a rule that reads none,
    or a folder that is not a verifier. ``prefix_cache``: a verifier loaded here scores from cached
    shared prefixes (``models.verifier.score_texts``; scores equal within float tolerance)."""
    if name not in LEARNED_SELECTORS:
        if verifier is not None:
            raise ConfigError(f"--verifier is read only by the selections {', '.join(LEARNED_SELECTORS)}, not {name!r}")
        return get_selector(name)
    if verifier is None:
        return get_selector(name)  # the one-line error that asks for the folder
    v = verifier if isinstance(verifier, Verifier) else load_verifier(verifier, device=device,
                                                                      prefix_cache=prefix_cache)
    return VerifierSelector(v, name)


def chosen_score(selection: Selection) -> Any:
    """The chosen candidate's score (``None`` for a rule that scores nothing or when none was chosen)."""
    if selection.scores is None or selection.chosen < 0:
        return None
    return selection.scores[selection.chosen]


def check_selection_options(n: int, select: str | None, verifier: Any) -> None:
    """The command-line rule shared by ``predict`` and ``ask``: ``--n >= 1``; ``--select`` needs
    ``--n 2`` or more; ``--verifier`` goes with a learned rule (``LEARNED_SELECTORS``) and they need
    it. A ``ConfigError`` naming the conflict otherwise."""
    if n < 1:
        raise ConfigError("--n must be >= 1")
    if select is not None and n < 2:
        raise ConfigError("--select chooses among sampled answers: it needs --n 2 or more")
    if (select in LEARNED_SELECTORS) != (verifier is not None):
        raise ConfigError(f"--verifier goes with --select {' or '.join(LEARNED_SELECTORS)}, and they need it")
