"""Summaries of verdicts: EX/EM by hardness and difficulty, error counts, interaction accuracy.

``summarize`` turns a list of ``Verdict`` into a plain dict (what ``--out SUMMARY.json`` holds);
``format_table`` prints it the way the official scorer's users are used to reading it.

Denominators. A gold that fails, times out, returns too much, or whose database is missing makes the
example ``gold_error``. The default convention (``gold_errors="count"``) is the official scorers':
the example stays in the denominator and counts as wrong, since no prediction can match a gold
that does not run (BIRD's evaluation scores it 0; the Spider test-suite scorer asserts that the
gold runs and stops the whole run otherwise, so a count that leaves such examples out is a number
that scorer never prints). ``gold_errors="exclude"`` leaves them out (sqlcoach's earlier rule). Every
block carries both figures (``ex_gold_errors_counted``, ``ex_gold_errors_excluded``) and the table
prints the other one beside the chosen one. Examples marked ``unmeasurable`` (a synthetic database
on which the gold returns nothing on every fill, so EX could not tell a wrong query from a right
one) are left out of EX under both conventions and counted; EM still scores them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from sqlcoach.types import BIRD_DIFFICULTIES, ERROR_CLASSES, HARDNESS_LEVELS, Verdict


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


GOLD_ERROR_CONVENTIONS = ("count", "exclude")


def _block(vs: Sequence[Verdict], gold_errors: str = "count") -> dict[str, Any]:
    measurable = [v for v in vs if v.error != "unmeasurable"]
    scored = [v for v in measurable if v.error != "gold_error"]
    correct = sum(v.ex for v in scored)
    counted = _rate(correct, len(measurable))
    excluded = _rate(correct, len(scored))
    em_pool = vs if gold_errors == "count" else [v for v in vs if v.error != "gold_error"]
    em_known = [v for v in em_pool if v.em is not None]
    return {
        "count": len(vs),
        "scored": len(scored),
        "ex": counted if gold_errors == "count" else excluded,
        "em": _rate(sum(bool(v.em) for v in em_known), len(em_known)) if em_known else None,
        "gold_errors": len(measurable) - len(scored),
        "unmeasurable": len(vs) - len(measurable),
        "ex_gold_errors_counted": counted,
        "ex_gold_errors_excluded": excluded,
    }


def _by(vs: Sequence[Verdict], key: str, levels: Iterable[str], gold_errors: str = "count") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for level in levels:
        group = [v for v in vs if getattr(v, key) == level]
        if group:
            out[level] = _block(group, gold_errors)
    others = sorted({getattr(v, key) for v in vs} - set(levels) - {None})
    for level in others:  # labels outside the known scale (a user's own dataset) still appear
        out[level] = _block([v for v in vs if getattr(v, key) == level], gold_errors)
    return out


def summarize(
    verdicts: Sequence[Verdict],
    *,
    interactions: Sequence[int] | None = None,
    extra: dict[str, Any] | None = None,
    gold_errors: str = "count",
) -> dict[str, Any]:
    """``interactions[i]`` is the interaction id of verdict i for multi-turn files (question match
    is ``all``; interaction match, every turn right, is ``interaction``). ``gold_errors``: the
    convention of the module docstring."""
    if gold_errors not in GOLD_ERROR_CONVENTIONS:
        from sqlcoach.errors import ConfigError

        raise ConfigError(f"gold_errors must be one of {GOLD_ERROR_CONVENTIONS}, got {gold_errors!r}")
    summary: dict[str, Any] = {"all": _block(verdicts, gold_errors), "gold_error_convention": gold_errors}
    summary["by_hardness"] = _by(verdicts, "hardness", HARDNESS_LEVELS, gold_errors)
    if any(v.difficulty for v in verdicts):
        summary["by_difficulty"] = _by(verdicts, "difficulty", BIRD_DIFFICULTIES, gold_errors)
    errors = Counter(v.error for v in verdicts if v.error)
    summary["errors"] = {cls: errors.get(cls, 0) for cls in ERROR_CLASSES}
    # "executes" = the prediction ran (right or wrong): how often the model writes runnable SQL
    scored = [v for v in verdicts if v.error not in ("gold_error", "unmeasurable")]
    summary["executes"] = _rate(sum(v.error in (None, "wrong_result") for v in scored), len(scored))
    if interactions is not None:
        groups: dict[int, list[Verdict]] = {}
        for v, k in zip(verdicts, interactions):
            groups.setdefault(k, []).append(v)
        measurable = [g for g in groups.values() if all(v.error != "unmeasurable" for v in g)]
        scored_groups = measurable if gold_errors == "count" else [
            g for g in measurable if all(v.error != "gold_error" for v in g)]
        summary["interaction"] = {
            "count": len(groups),
            "scored": len(scored_groups),
            "ex": _rate(sum(all(v.ex for v in g) for g in scored_groups), len(scored_groups)),
            "em": _rate(sum(all(bool(v.em) for v in g) for g in scored_groups), len(scored_groups))
            if all(v.em is not None for g in scored_groups for v in g)
            else None,
        }
    if extra:
        summary.update(extra)
    return summary


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.2f}" if pct else f"{x:.4f}"


def format_table(summary: dict[str, Any]) -> str:
    """A fixed-width table: one column per hardness (and difficulty) level, then the errors."""
    cols: list[tuple[str, dict[str, Any]]] = list(summary.get("by_hardness", {}).items())
    cols += list(summary.get("by_difficulty", {}).items())
    cols.append(("all", summary["all"]))
    width = max(10, *(len(name) + 2 for name, _ in cols))
    lines = []
    head = f"{'':<12}" + "".join(f"{name:>{width}}" for name, _ in cols)
    lines.append(head)
    lines.append(f"{'count':<12}" + "".join(f"{b['count']:>{width}}" for _, b in cols))
    lines.append(f"{'EX':<12}" + "".join(f"{_fmt(b['ex']):>{width}}" for _, b in cols))
    if summary["all"].get("em") is not None:
        lines.append(f"{'EM':<12}" + "".join(f"{_fmt(b['em']):>{width}}" for _, b in cols))
    inter = summary.get("interaction")
    if inter:
        lines.append("")
        lines.append(
            f"interactions: {inter['count']}  interaction EX {_fmt(inter['ex'])}"
            + (f"  interaction EM {_fmt(inter['em'])}" if inter.get("em") is not None else "")
            + "  (question match: the 'all' column)"
        )
    bird = summary.get("bird")
    if bird:
        lines.append("")
        parts = [f"{k} {v:.2f}" for k, v in bird.items() if isinstance(v, (int, float)) and k != "iterations"]
        lines.append("BIRD: " + "  ".join(parts) + (f"  (VES timing: {bird['iterations']} iterations)" if "iterations" in bird else ""))
    if summary.get("plans"):
        from sqlcoach.metrics.plans import format_plans

        lines.append("")
        lines.append(format_plans(summary["plans"]))
    errs = {k: v for k, v in summary.get("errors", {}).items() if v}
    lines.append("")
    scored = summary["all"]["scored"]
    lines.append(
        f"scored {scored} of {summary['all']['count']}; executes {_fmt(summary.get('executes'))}; errors: "
        + (", ".join(f"{k} {v}" for k, v in errs.items()) if errs else "none")
    )
    if summary["all"].get("ex") is not None:
        lines.append(gold_error_line(summary))
    if summary.get("oracle_history"):
        lines.append("ORACLE: these predictions were made with the earlier turns' gold SQL in the prompt (history=gold)")
    return "\n".join(lines)


def gold_error_line(summary: dict[str, Any]) -> str:
    """The line that puts the two gold-error conventions side by side."""
    a = summary["all"]
    conv = summary.get("gold_error_convention", "count")
    counted, excluded = a.get("ex_gold_errors_counted"), a.get("ex_gold_errors_excluded")
    extra = f"; {a['unmeasurable']} EX-unmeasurable left out" if a.get("unmeasurable") else ""
    if conv == "count":
        return (f"gold errors: {a.get('gold_errors', 0)} counted as wrong (the official scorers' convention); "
                f"EX with them left out {_fmt(excluded)} over {a['scored']}{extra}")
    return (f"gold errors: {a.get('gold_errors', 0)} left out (--gold-errors exclude); "
            f"EX with them counted as wrong {_fmt(counted)} over {a['scored'] + a.get('gold_errors', 0)}{extra}")
