"""Settings of the repository service, read from the environment in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schedcp.settings import CommonSettings, data_dir, env_int, env_path, env_str, load_common


@dataclass(frozen=True)
class StoreSettings:
    """Which backend holds the policies; shared by the service and the CLI's embedded mode."""

    backend: str
    db_path: Path
    weaviate_url: str | None
    weaviate_grpc_port: int
    embed_threads: int
    max_source_bytes: int


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    store: StoreSettings
    #: Library directory seeded at start-up (bpf/), or None to skip seeding.
    seed_dir: Path | None


def load_store(environ: dict[str, str] | None = None) -> StoreSettings:
    """Read the store settings; fails naming the variable when one does not parse."""
    backend = env_str("SCHEDCP_REPOSITORY_BACKEND", "sqlite", environ=environ, choices=("sqlite", "weaviate"),
                      doc="Policy store backend: sqlite (embedded, default) or weaviate (fleets).")
    db_path = env_path("SCHEDCP_REPOSITORY_DB", data_dir(environ) / "repository" / "policies.db",
                       environ=environ, doc="SQLite file of the embedded policy store.")
    weaviate_url = env_str("SCHEDCP_WEAVIATE_URL", None, environ=environ,
                           doc="Weaviate HTTP endpoint (e.g. http://weaviate:8080) for the weaviate backend "
                               "and its contract tests.")
    weaviate_grpc = env_int("SCHEDCP_WEAVIATE_GRPC_PORT", 50051, minimum=1, maximum=65535, environ=environ,
                            doc="Weaviate's gRPC port (weaviate-client v4 uses both HTTP and gRPC).")
    threads = env_int("SCHEDCP_EMBED_THREADS", 1, minimum=1, maximum=2, environ=environ,
                      doc="onnxruntime threads for the embedding model (1-2; the CPU is shared with VMs).")
    max_source = env_int("SCHEDCP_REPOSITORY_MAX_SOURCE_BYTES", 512 * 1024, minimum=1024,
                         maximum=16 * 1024 * 1024, environ=environ,
                         doc="Largest scheduler source the repository accepts, in bytes.")
    assert backend is not None and db_path is not None
    return StoreSettings(backend=backend, db_path=db_path, weaviate_url=weaviate_url,
                         weaviate_grpc_port=weaviate_grpc, embed_threads=threads, max_source_bytes=max_source)


def load(environ: dict[str, str] | None = None) -> Settings:
    default_seed = Path(__file__).resolve().parents[2] / "bpf"
    seed_dir = env_path("SCHEDCP_REPOSITORY_SEED_DIR", default_seed if default_seed.is_dir() else None,
                        environ=environ,
                        doc="Scheduler library (bpf/) seeded into the repository at start-up; "
                            "set to an empty directory to skip.")
    return Settings(common=load_common("repository", environ), store=load_store(environ), seed_dir=seed_dir)
