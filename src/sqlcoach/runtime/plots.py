"""Every figure sqlcoach draws (matplotlib, Agg backend: no display, no network).

Training curves written next to a run (``plot_loss``, ``plot_rewards``, ``plot_preference``:
each writes a PNG and returns its path, or ``None`` when the history holds nothing to draw), and
a comparison's figures as PNG bytes (``curves``, ``ex_by_hardness``, ``bars``, ``all_figures``:
each takes the report's method rows, ``report["methods"]``). ``data_uri`` / ``png_data_uri``
turn bytes / a file into ``data:image/png;base64,...`` for a self-contained HTML page.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from sqlcoach.types import HARDNESS_LEVELS


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless: never try to open a window
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    _plt().close(fig)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_data_uri(path: str | Path) -> str:
    """``data:image/png;base64,...`` of a PNG file, for embedding it in a self-contained HTML page."""
    return data_uri(Path(path).read_bytes())


def _save(fig: Any, out_png: str | Path, dpi: int = 100) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    _plt().close(fig)
    return out


# --------------------------------------------------------------------------- training curves


def plot_loss(log_history: list[dict[str, Any]], out_png: str | Path, *, title: str = "SFT loss") -> Path | None:
    """``loss`` (and ``eval_loss`` when present) against ``step`` from a Trainer's
    ``state.log_history``; ``None`` when the history holds no loss value."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h and "step" in h]
    if not train and not evals:
        return None
    fig, ax = _plt().subplots(figsize=(6, 3.5), dpi=100)
    if train:
        ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", lw=1.5)
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], "o-", label="eval loss", lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out_png)


def plot_rewards(reward_curve: list[dict[str, Any]], out_png: str | Path, *, title: str = "GRPO reward",
                 ylabel: str = "mean reward") -> Path | None:
    """Total reward and each component (``[{step, reward, <name>: ...}]``) against step; a key
    missing from some points is drawn where it is present (``adapt``'s curves start without the
    training-batch signals)."""
    if not reward_curve:
        return None
    steps = [p["step"] for p in reward_curve]
    fig, ax = _plt().subplots(figsize=(6, 3.5), dpi=100)
    keys = list(dict.fromkeys(k for p in reward_curve for k in p if k != "step"))
    for key in keys:
        ys = [p.get(key) for p in reward_curve]
        if all(y is None for y in ys):
            continue
        ax.plot(steps, [float("nan") if y is None else y for y in ys], label=key, lw=1.8 if key == "reward" else 1.0)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out_png)


def plot_preference(history: list[dict[str, Any]], out_png: str | Path, *, title: str, margin_key: str) -> Path | None:
    """Two panels against step: ``loss`` and ``margin_key`` (DPO: ``rewards/margins``; RM:
    ``margin``); ``None`` when nothing was logged."""
    loss = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    margin = [(h["step"], h[margin_key]) for h in history if margin_key in h and "step" in h and "eval_loss" not in h]
    if not loss and not margin:
        return None
    fig, axes = _plt().subplots(1, 2, figsize=(9, 3.4))
    for ax, pts, name in ((axes[0], loss, "loss"), (axes[1], margin, margin_key)):
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 30 else None)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, out_png, dpi=110)


# --------------------------------------------------------------------------- comparison figures


def _colour(rows: list[dict[str, Any]], name: str) -> Any:
    """The same colour for a method in every figure (its position among all rows)."""
    names = [r.get("name") for r in rows]
    i = names.index(name) if name in names else 0
    return f"C{i % 10}"


def _ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status") == "ok"]


def curves(rows: list[dict[str, Any]], key: str, *, ylabel: str, title: str) -> bytes | None:
    """One line per method of ``row["train"][key]`` (``[[step, value], ...]``)."""
    series = [(r["name"], (r.get("train") or {}).get(key) or []) for r in _ok(rows)]
    series = [(n, c) for n, c in series if c]
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, c in series:
        ax.plot([p[0] for p in c], [p[1] for p in c], marker="." if len(c) < 30 else None, lw=1.5, label=name,
                color=_colour(rows, name))
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def ex_by_hardness(rows: list[dict[str, Any]]) -> bytes | None:
    """Grouped bars: EX per hardness level (and overall), one bar per method."""
    evald = [r for r in _ok(rows) if r.get("eval")]
    if not evald:
        return None
    levels = [lv for lv in HARDNESS_LEVELS if any(lv in r["eval"]["summary"].get("by_hardness", {}) for r in evald)]
    has_seen = any((r["eval"].get("seen") or {}).get("summary") for r in evald)
    groups = levels + ["all"] + (["seen DBs"] if has_seen else [])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.8 / len(evald)
    top = 0.0
    for i, r in enumerate(evald):
        s = r["eval"]["summary"]
        vals = [100 * ((s.get("by_hardness", {}).get(g) or {}).get("ex") or 0.0) for g in levels]
        vals.append(100 * (s["all"].get("ex") or 0.0))
        if has_seen:
            seen = ((r["eval"].get("seen") or {}).get("summary") or {}).get("all") or {}
            vals.append(100 * (seen.get("ex") or 0.0))
        xs = [j + i * width - 0.4 + width / 2 for j in range(len(groups))]
        ax.bar(xs, vals, width=width, label=r["name"], color=_colour(rows, r["name"]))
        top = max([top, *vals])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_ylabel("EX (%)")
    ax.set_title("EX by hardness (unseen DBs), and on seen DBs" if has_seen else "EX by hardness")
    ax.set_ylim(0, min(100.0, max(5.0, top * 1.2)))  # small figures stay visible
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def bars(rows: list[dict[str, Any]], values: dict[str, float | None], *, ylabel: str, title: str) -> bytes | None:
    """One bar per method name in ``values`` (methods without a value are left out)."""
    items = [(n, v) for n, v in values.items() if isinstance(v, (int, float))]
    if not items:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.bar([n for n, _ in items], [v for _, v in items], color=[_colour(rows, n) for n, _ in items])
    for i, (_, v) in enumerate(items):
        ax.annotate(f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def all_figures(rows: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """(caption, PNG) of every figure the report shows, in order; empty figures are skipped."""
    trained = [r for r in _ok(rows) if r.get("train")]
    figs = [
        ("Training loss per step", curves(rows, "loss_curve", ylabel="loss", title="Training loss")),
        ("Reward per step (RL methods; DPO: reward margin)",
         curves(rows, "reward_curve", ylabel="reward", title="Reward")),
        ("EX per hardness per method (and on databases seen in training, when measured)", ex_by_hardness(rows)),
        ("Median seconds per optimizer step",
         bars(rows, {r["name"]: r["train"].get("median_step_seconds") for r in trained},
              ylabel="s / step", title="Time per step (median)")),
        ("Training wall time (s)",
         bars(rows, {r["name"]: r["train"].get("seconds") for r in trained}, ylabel="s", title="Training time")),
        ("Peak memory of the training process (MiB)",
         bars(rows, {r["name"]: peak_memory(r)[0] for r in trained}, ylabel="MiB", title="Peak memory")),
    ]
    return [(c, png) for c, png in figs if png is not None]


def peak_memory(row: dict[str, Any]) -> tuple[float | None, str]:
    """(value in MiB, what it is): CUDA max allocated when measured, else process peak RSS."""
    t = row.get("train") or {}
    if t.get("status", "ok") != "ok":
        return None, "process peak RSS"
    if isinstance(t.get("peak_cuda_mb"), (int, float)):
        return float(t["peak_cuda_mb"]), "CUDA max allocated"
    v = t.get("peak_process_rss_mb")
    return (float(v) if isinstance(v, (int, float)) else None), "process peak RSS"


def ex_intervals(rows: list[dict[str, Any]]) -> bytes | None:
    """EX (%) per method as points with 95% error bars (``rows``: the comparison's ``across_seeds``
    rows, each with ``ex = {mean, lo, hi}``); the control's mean, when one row has ``vs_control``
    missing and others have it, is drawn as a dashed line."""
    items = [r for r in rows if r.get("ex")]
    if not items:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    xs = list(range(len(items)))
    for i, r in enumerate(items):
        e = r["ex"]
        ax.errorbar([i], [100 * e["mean"]], yerr=[[100 * (e["mean"] - e["lo"])], [100 * (e["hi"] - e["mean"])]],
                    fmt="o", capsize=4, color=f"C{i % 10}")
        ax.annotate(f"{100 * e['mean']:.1f}", (i, 100 * e["hi"]), ha="center", va="bottom", fontsize=8)
    has_vc = any(r.get("vs_control") for r in items)
    ctrl = [r for r in items if has_vc and not r.get("vs_control") and r.get("method") != "start"]
    if ctrl:
        ax.axhline(100 * ctrl[0]["ex"]["mean"], ls="--", lw=1, color="grey", label=f"control ({ctrl[0]['name']})")
        ax.legend(fontsize=8)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{r['name']}\n({r['runs']} run{'s' if r['runs'] != 1 else ''})" for r in items], fontsize=8)
    ax.set_ylabel("EX (%)")
    ax.set_title("EX with 95% bootstrap intervals")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
