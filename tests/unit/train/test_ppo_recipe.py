"""The recipe's plain helpers: prompt order per step (resume-safe) and reward summing."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from sqlcoach.train.ppo import rows_for_step, score_completions  # noqa: E402


def test_rows_for_step_is_deterministic_covers_every_row_and_splits_processes():
    rows = [{"i": i} for i in range(10)]
    first_pass = [r["i"] for s in range(5) for r in rows_for_step(rows, s, 2, 0, 1, seed=3)]
    assert sorted(first_pass) == list(range(10))  # one pass visits every row once
    assert first_pass == [r["i"] for s in range(5) for r in rows_for_step(rows, s, 2, 0, 1, seed=3)]
    assert first_pass != [r["i"] for s in range(5) for r in rows_for_step(rows, s, 2, 0, 1, seed=4)]
    # two processes take disjoint halves of what one process of twice the batch would take
    both = [r["i"] for r in rows_for_step(rows, 0, 2, 0, 2, seed=3) + rows_for_step(rows, 0, 2, 1, 2, seed=3)]
    assert both == [r["i"] for r in rows_for_step(rows, 0, 4, 0, 1, seed=3)]


def test_score_completions_sums_rewards_and_keeps_none_only_when_all_none():
    def a(prompts, completions, completion_ids=None, **cols):
        assert cols["gold_sql"] == ["g0", "g1", "g2"] and "prompt" not in cols
        assert completions[0] == [{"role": "assistant", "content": "x"}]
        return [1.0, None, None]

    def b(prompts, completions, completion_ids=None, **cols):
        return [0.5, 0.25, None]

    rows = [{"prompt": [{"role": "user", "content": "q"}], "gold_sql": f"g{i}"} for i in range(3)]
    scores, means, values = score_completions([a, b], rows, ["x", "y", "z"], [[1], [2], [3]])
    assert scores == [1.5, 0.25, None]
    assert means == {"rewards/a": 1.0, "rewards/b": 0.375}
    assert values == {"a": [1.0, None, None], "b": [0.5, 0.25, None]}


def test_score_completions_refuses_a_reward_of_the_wrong_length():
    def short(prompts, completions, **cols):
        return [1.0]

    rows = [{"prompt": "p", "gold_sql": "g"}] * 2
    with pytest.raises(ValueError, match="returned 1 values for 2"):
        score_completions([short], rows, ["x", "y"], [[1], [2]])
