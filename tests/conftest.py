"""Suite-wide settings: tests never read or write the user's ~/.cache/sqlcoach."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SQLCOACH_CACHE_DIR", str(tmp_path_factory.mktemp("sqlcoach-cache")))
    yield
    mp.undo()
