import pytest

from sqlcoach.metrics import cache
from sqlcoach.metrics.em import em_and_hardness

GOLDS = ["SELECT a FROM t", "SELECT count(*) FROM t WHERE x > 1 GROUP BY y"]


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLCOACH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SQLCOACH_NO_CACHE", raising=False)
    return tmp_path


def test_hardness_is_cached_after_a_miss_and_reused(fresh, monkeypatch):
    assert cache.get_hardness(GOLDS) is None
    first = em_and_hardness(["", ""], GOLDS, ["d", "d"], tables_path=None, want_em=False)
    assert [h for _, h in first] == ["easy", "medium"]
    assert cache.get_hardness(GOLDS) == ["easy", "medium"]
    # a hit must not parse at all: break the parser and ask again
    import sqlcoach.sql.hardness as hardness_mod

    monkeypatch.setattr(hardness_mod, "hardness", lambda sql: pytest.fail("parsed despite a cache hit"))
    again = em_and_hardness(["", ""], GOLDS, ["d", "d"], tables_path=None, want_em=False)
    assert again == first


def test_a_changed_gold_line_is_a_miss(fresh):
    cache.put_hardness(GOLDS, ["easy", "medium"])
    assert cache.get_hardness([GOLDS[0], GOLDS[1] + " "]) is None


def test_corrupt_or_disabled_cache_is_a_miss(fresh, monkeypatch):
    cache.put_hardness(GOLDS, ["easy", "medium"])
    for f in (fresh / "hardness").iterdir():
        f.write_text("{not json")
    assert cache.get_hardness(GOLDS) is None
    cache.put_hardness(GOLDS, ["easy", "medium"])
    monkeypatch.setenv("SQLCOACH_NO_CACHE", "1")
    assert cache.get_hardness(GOLDS) is None


def test_em_requests_never_use_the_cache(fresh):
    cache.put_hardness(GOLDS, ["extra", "extra"])  # deliberately wrong: must not be read with EM
    out = em_and_hardness(["SELECT a FROM t", ""], GOLDS, ["d", "d"], tables_path=None, want_em=True)
    assert out == [(True, "easy"), (False, "medium")]
