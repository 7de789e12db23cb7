"""Fixtures of the serve tests: one tiny model and one taught model per session, and a factory
for an in-process server (FastAPI's TestClient) with a replaceable generation function."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import serve_fixture as sf  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return sf.tiny_model(tmp_path_factory.mktemp("serve-tiny"))


@pytest.fixture(scope="session")
def taught_dir(tmp_path_factory):
    return sf.taught_model(tmp_path_factory.mktemp("serve-taught"))


@pytest.fixture
def databases(tmp_path):
    return sf.make_databases(tmp_path / "dbs")


@pytest.fixture
def make_client(databases):
    """``make_client(model_dir, batch_fn=None, loaded_verifier=None, **ServeOptions fields) ->
    (TestClient, Server)``; ``loaded_verifier``: an object with ``Verifier.score`` (a fake)."""
    from fastapi.testclient import TestClient

    from sqlcoach.serve.app import asgi_app
    from sqlcoach.serve.setup import ServeOptions, open_server

    made = []

    def make(model_dir, batch_fn=None, loaded_verifier=None, **kw):
        kw.setdefault("databases", str(databases))
        kw.setdefault("sql_workers", 0)
        kw.setdefault("served_model_name", "tiny")
        server = open_server(ServeOptions(model=str(model_dir), device="cpu", **kw), batch_fn=batch_fn,
                             verifier=loaded_verifier)
        client = TestClient(asgi_app(server), raise_server_exceptions=False)
        made.append((client, server))
        return client, server

    yield make
    for client, server in made:
        client.close()
        server.close()
