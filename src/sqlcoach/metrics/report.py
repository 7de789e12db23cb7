"""Summaries of verdicts: EX/EM by hardness and difficulty, error counts, interaction accuracy.

``summarize`` turns a list of ``Verdict`` into a plain dict (what ``--out SUMMARY.json`` holds);
``format_table`` prints it the way the official scorer's users are used to reading it.

Denominators: examples whose gold cannot be scored (``gold_error``: the gold fails or its database
is missing) are counted and listed, but left out of EX and EM; ``scored`` says how many remain.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from sqlcoach.types import BIRD_DIFFICULTIES, ERROR_CLASSES, HARDNESS_LEVELS, Verdict


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _block(vs: Sequence[Verdict]) -> dict[str, Any]:
    scored = [v for v in vs if v.error != "gold_error"]
    em_known = [v for v in scored if v.em is not None]
    return {
        "count": len(vs),
        "scored": len(scored),
        "ex": _rate(sum(v.ex for v in scored), len(scored)),
        "em": _rate(sum(bool(v.em) for v in em_known), len(em_known)) if em_known else None,
    }


def _by(vs: Sequence[Verdict], key: str, levels: Iterable[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for level in levels:
        group = [v for v in vs if getattr(v, key) == level]
        if group:
            out[level] = _block(group)
    others = sorted({getattr(v, key) for v in vs} - set(levels) - {None})
    for level in others:  # labels outside the known scale (a user's own dataset) still appear
        out[level] = _block([v for v in vs if getattr(v, key) == level])
    return out


def summarize(
    verdicts: Sequence[Verdict],
    *,
    interactions: Sequence[int] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``interactions[i]`` is the interaction id of verdict i for multi-turn files."""
    summary: dict[str, Any] = {"all": _block(verdicts)}
    summary["by_hardness"] = _by(verdicts, "hardness", HARDNESS_LEVELS)
    if any(v.difficulty for v in verdicts):
        summary["by_difficulty"] = _by(verdicts, "difficulty", BIRD_DIFFICULTIES)
    errors = Counter(v.error for v in verdicts if v.error)
    summary["errors"] = {cls: errors.get(cls, 0) for cls in ERROR_CLASSES}
    # "executes" = the prediction ran (right or wrong): how often the model writes runnable SQL
    scored = [v for v in verdicts if v.error != "gold_error"]
    summary["executes"] = _rate(sum(v.error in (None, "wrong_result") for v in scored), len(scored))
    if interactions is not None:
        groups: dict[int, list[Verdict]] = {}
        for v, k in zip(verdicts, interactions):
            groups.setdefault(k, []).append(v)
        scored_groups = [g for g in groups.values() if all(v.error != "gold_error" for v in g)]
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
    return "\n".join(lines)
