"""Fixtures for the repository's integration tests: the real embedding model and each backend.

``store`` is parametrised over backends, so every contract test runs against
the embedded SQLite store here and against Weaviate wherever
SCHEDCP_WEAVIATE_URL points at a server (e.g. the compose deployment).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.repository.embeddings import MiniLmEmbedder
from services.repository.store import Limits

#: Small limits so oversize tests stay cheap.
TEST_LIMITS = Limits(max_source_bytes=64 * 1024)


@pytest.fixture(scope="session")
def embedder() -> MiniLmEmbedder:
    return MiniLmEmbedder(threads=1)


def _weaviate_store(embedder: MiniLmEmbedder) -> Iterator[object]:
    url = os.environ.get("SCHEDCP_WEAVIATE_URL")
    if not url:
        pytest.skip("Weaviate backend: set SCHEDCP_WEAVIATE_URL (and SCHEDCP_WEAVIATE_GRPC_PORT) to a "
                    "Weaviate server to run the contract suite against it; none can run on this machine")
    from services.repository.weaviate_store import WeaviateStore

    prefix = "T" + uuid.uuid4().hex[:10]
    store = WeaviateStore.connect(url, embedder=embedder, limits=TEST_LIMITS, prefix=prefix,
                                  grpc_port=int(os.environ.get("SCHEDCP_WEAVIATE_GRPC_PORT", "50051")))
    try:
        yield store
    finally:
        for name in list(store._names.values()):  # each test's own collections
            store._client.collections.delete(name)
        store.close()


@pytest.fixture(params=["sqlite", "weaviate"])
def store(request: pytest.FixtureRequest, embedder: MiniLmEmbedder, tmp_path: Path) -> Iterator[object]:
    if request.param == "weaviate":
        yield from _weaviate_store(embedder)
        return
    from services.repository.sqlite_store import SqliteStore

    s = SqliteStore(tmp_path / "policies.db", embedder=embedder, limits=TEST_LIMITS)
    try:
        yield s
    finally:
        s.close()
