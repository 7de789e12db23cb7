"""Rank awareness without a process group: what rank 0 and the other ranks do (runtime.dist),
where each rank loads (runtime.device), that only rank 0 writes the summary and sample log, that
the sharded pass-rate filter keeps what one process keeps, and that PPO's whitening over
processes equals whitening the whole batch. (Real two-rank runs: tests/integration/test_distributed_tiny.py.)"""

from __future__ import annotations

import sqlite3

import pytest

from sqlcoach.runtime import dist


@pytest.fixture()
def rank1(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")


def test_single_process_is_rank_zero(monkeypatch):
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert dist.describe() == {"world_size": 1, "rank": 0, "local_rank": 0} and dist.is_main()
    seen = []
    dist.main_log(seen.append)("x")
    assert seen == ["x"] and dist.gather_objects(3) == [3] and dist.shared_value(4) == 4
    assert dist.main_first(lambda: 5) == 5 and dist.ensure_group(cpu=True) is False


def test_other_ranks_stay_quiet(rank1):
    seen = []
    dist.main_log(seen.append)("x")
    assert seen == [] and not dist.is_main() and dist.describe()["world_size"] == 2


def test_each_rank_loads_onto_its_own_gpu(monkeypatch, rank1):
    torch = pytest.importorskip("torch")
    from sqlcoach.runtime import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.training_device(False) == "cuda:1" and device.training_device(True) == "cpu"
    assert device.device_map_for("cuda:1") == {"": 1} and device.device_map_for("cuda") == {"": 1}
    assert device.device_map_for("cpu") == {"": "cpu"}


def test_only_rank_zero_writes_the_summary_and_samples(tmp_path, rank1):
    from sqlcoach.train.run import SUMMARY_FILE, RunSummary, write_summary
    from sqlcoach.train.samples import SampleLog

    class Cfg:
        output_dir = str(tmp_path)

    s = RunSummary(recipe="sft", final_dir="f", global_step=1, max_steps=1, seconds=1, train_seconds=1,
                   median_step_seconds=None, peak_memory_mb=1, peak_cuda_mb=None, train_loss=None, rows=1, skipped=0,
                   trainable_parameters=1, device="cpu", resumed_from=None, stopped_by_clock=False, plot_png=None,
                   world_size=2, global_batch=8)
    got = write_summary(Cfg(), s)
    assert got == s.as_dict() and got["world_size"] == 2 and got["global_batch"] == 8
    assert not (tmp_path / SUMMARY_FILE).exists()
    log = SampleLog(tmp_path, every=1, n=2, log=lambda m: None, fresh=True)
    assert not log.due(1)


def _rows(tmp_path, n=7):
    db = tmp_path / "t.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x INTEGER)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
    con.commit()
    con.close()
    return [{"prompt": [{"role": "user", "content": f"q{i}"}], "gold_sql": f"SELECT x FROM t WHERE x > {i}",
             "db_path": str(db), "db_id": "t"} for i in range(n)]


def _fake_generate(model, tokenizer, texts, *, n, **kw):
    """Prompt i is solved by j of its k samples, j = i mod (k + 1): every pass rate occurs."""
    from sqlcoach.generate.hf import Generations

    out = []
    for t in texts:
        i = int(t.split("q")[-1].split()[0])
        solved = i % (n + 1)
        out.append([f"SELECT x FROM t WHERE x > {i}" if j < solved else "SELECT 0" for j in range(n)])
    return Generations(out, 0, 5 * n * len(texts), 0.0)


def test_sharded_pass_rate_filter_keeps_what_one_process_keeps(tmp_path, monkeypatch):
    from sqlcoach.train import rl_data

    monkeypatch.setattr("sqlcoach.prompts.chat.to_text", lambda msgs, tok: msgs[0]["content"])
    rows = _rows(tmp_path)
    kw = dict(model=None, tokenizer=None, k=3, generate=_fake_generate, pool=None)
    one, one_stats = rl_data.pass_rate_filter(rows, **kw)
    assert 0 < len(one) < len(rows)
    class Sent(Exception):
        pass

    def rank1_gather(obj):  # rank 1's share, caught on its way into the gather
        raise Sent(obj)

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(dist, "gather_objects", rank1_gather)
    with pytest.raises(Sent) as sent:
        rl_data.sharded_pass_rate_filter(rows, **kw)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(dist, "gather_objects", lambda obj: [obj, sent.value.args[0]])
    kept, stats = rl_data.sharded_pass_rate_filter(rows, **kw)
    assert kept == one and stats["pass_rates"] == one_stats["pass_rates"]
    assert stats["generated_tokens"] == one_stats["generated_tokens"]


def test_whitening_over_processes_equals_whitening_the_batch():
    torch = pytest.importorskip("torch")
    from sqlcoach.train import ppo_core as core

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, generator=g)
    mask = (torch.rand(4, 6, generator=g) > 0.3).long()
    whole = core.masked_whiten(x, mask)
    halves = [(x[:2], mask[:2]), (x[2:], mask[2:])]
    # each "process" sums its statistics with the other's, as accelerator.reduce(t, "sum") would
    parts = []
    for i, (xi, mi) in enumerate(halves):
        other_x, other_m = halves[1 - i]
        calls = iter(range(2))

        def sum_across(t, xi=xi, mi=mi, other_x=other_x, other_m=other_m, calls=calls):
            k = next(calls)
            if k == 0:
                om = other_m.to(t.dtype)
                return t + torch.stack([(other_x * om).sum(), om.sum()])
            # the second call sums squared deviations from the global mean (the same on both)
            return t + ((other_x - _mean_of(halves)) ** 2 * other_m.to(t.dtype)).sum()

        parts.append(core.masked_whiten(xi, mi, sum_across=sum_across))
    assert torch.allclose(torch.cat(parts), whole, atol=1e-6)


def _mean_of(halves):
    num = sum((x * m).sum() for x, m in halves)
    den = sum(m.sum() for _, m in halves)
    return num / den
