"""Loss curves as PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any


def plot_loss(log_history: list[dict[str, Any]], out_png: str | Path, *, title: str = "SFT loss") -> Path | None:
    """Plot ``loss`` (and ``eval_loss`` when present) against ``step`` from a Trainer's
    ``state.log_history``; writes ``out_png`` and returns its path, or ``None`` when the history
    holds no loss value (nothing to draw)."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h and "step" in h]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: never try to open a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if train:
        ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", lw=1.5)
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], "o-", label="eval loss", lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def png_data_uri(path: str | Path) -> str:
    """``data:image/png;base64,...`` for embedding a PNG in a self-contained HTML page."""
    data = Path(path).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
