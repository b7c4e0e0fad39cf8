"""Open the configured PolicyStore backend (service and CLI share this)."""

from __future__ import annotations

from dataclasses import replace

from schedcp.errors import ConfigError

from .embeddings import Embedder, MiniLmEmbedder
from .settings import StoreSettings
from .store import DEFAULT_LIMITS, PolicyStore


def open_store(settings: StoreSettings, *, embedder: Embedder | None = None) -> PolicyStore:
    """Open (creating if needed) the store ``settings`` describe, with the local MiniLM embedder."""
    embedder = embedder or MiniLmEmbedder(threads=settings.embed_threads)
    limits = replace(DEFAULT_LIMITS, max_source_bytes=settings.max_source_bytes)
    if settings.backend == "weaviate":
        if not settings.weaviate_url:
            raise ConfigError("SCHEDCP_WEAVIATE_URL", "is required when SCHEDCP_REPOSITORY_BACKEND=weaviate",
                              hint="set it to the Weaviate HTTP endpoint, e.g. http://weaviate:8080")
        from .weaviate_store import WeaviateStore

        return WeaviateStore.connect(settings.weaviate_url, grpc_port=settings.weaviate_grpc_port,
                                     embedder=embedder, limits=limits)
    from .sqlite_store import SqliteStore

    return SqliteStore(settings.db_path, embedder=embedder, limits=limits)
