"""A synthetic comparison report (no training): shared by the report tests and the Chromium test."""

from __future__ import annotations


def _row(name, method, ex, em, *, rss=900.0, reward=None, status="ok"):
    train = None
    if method != "start":
        train = {"global_step": 12, "seconds": 60.0, "median_step_seconds": 4.8, "peak_process_rss_mb": rss,
                 "generated_tokens_per_s": 35.0 if reward else None, "trained_tokens_per_s": 800.0,
                 "loss_curve": [[s, 2.0 / s] for s in range(1, 13)],
                 "reward_curve": [[s, reward * s / 12] for s in range(1, 13)] if reward else []}
    summary = {"all": {"count": 10, "scored": 10, "ex": ex, "em": em},
               "by_hardness": {"easy": {"count": 4, "scored": 4, "ex": min(1.0, ex + 0.1), "em": em},
                               "medium": {"count": 3, "scored": 3, "ex": ex, "em": em},
                               "hard": {"count": 2, "scored": 2, "ex": ex / 2, "em": 0.0},
                               "extra": {"count": 1, "scored": 1, "ex": 0.0, "em": 0.0}},
               "errors": {"exec_error": 2, "wrong_result": 3}, "executes": 0.8}
    return {"name": name, "method": method, "status": status, "train": train,
            "eval": {"questions": 10, "summary": summary,
                     "samples": [{"question": "Which <museum> is oldest?", "pred": "SELECT a | b",
                                  "gold": "SELECT name FROM museum", "ex": False, "error": "wrong_result"}]}}


def sample_report() -> dict:
    return {
        "command": "sqlcoach compare --config configs/compare/demo.yaml --out runs/x",
        "config": {"budget": "seconds", "budget_value": 180, "eval_split": "dev"},
        "start": {"path": "runs/start/sft/final"},
        "machine": {"cpu_count": 2, "threads_per_method": 1, "torch": "2.13.0"},
        "methods": [
            _row("start", "start", 0.1, 0.05),
            _row("sft", "sft", 0.3, 0.2),
            _row("grpo", "grpo", 0.4, 0.3, rss=1200.0, reward=0.6),
            {"name": "ppo", "method": "ppo", "status": "failed: prepare `sqlcoach pairs mine` exited with 1"},
        ],
    }
