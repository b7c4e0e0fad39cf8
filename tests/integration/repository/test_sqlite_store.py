"""The embedded store on disk: restart durability, concurrent processes and threads, model mismatch."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from schedcp.workload_key import workload_key
from services.repository.sqlite_store import SqliteStore
from services.repository.store import (
    Antipattern,
    PerformanceRecord,
    Policy,
    PolicyMetadata,
    PolicyStatus,
    SearchQuery,
    StoreIncompatible,
    WorkloadClass,
)

W = WorkloadClass


def policy(name: str, version: str = "1", description: str = "") -> Policy:
    return Policy(name=name, version=version, source=f"/* {name}@{version} */\nint x;\n",
                  metadata=PolicyMetadata(description=description or f"Scheduler {name} for testing.",
                                          target_workloads=(W.CPU_THROUGHPUT,)))


def perf(ratio: float, source_id: str) -> PerformanceRecord:
    return PerformanceRecord(workload_class=W.CPU_THROUGHPUT, metric="ops_per_s", ratio=ratio,
                             source="deployment", source_id=source_id)


def test_everything_survives_a_restart_and_the_index_is_rebuilt(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.db"
    with SqliteStore(path, embedder=embedder) as store:
        store.put(policy("alpha", description="Deadline scheduling for latency-critical request handlers."))
        store.put(policy("beta", description="Longest job first to shorten batch makespan."))
        store.set_status("beta", "1", PolicyStatus.VERIFIED, reason="verdict passed")
        store.record_outcome("beta", "1", perf(1.3, "o1"), event_id="perf:deployment:o1",
                             workload_text="nightly ETL batch where a few big jobs finish last")
        store.record_antipattern(Antipattern(antipattern_id="a1", policy_name="alpha", policy_version="1",
                                             workload_class=W.LATENCY_SERVER, reason="stall", stage="dynamic"))
        before = {p.ref: store.get(p.name, p.version) for p in store.list(all_versions=True)}
        expected_hits = [h.policy.ref for h in store.search(SearchQuery(text="batch job makespan"))]
    with SqliteStore(path, embedder=embedder) as reopened:
        after = {p.ref: reopened.get(p.name, p.version) for p in reopened.list(all_versions=True)}
        assert after == before
        assert [r.source_id for r in reopened.get("beta").history] == ["o1"]
        assert [a.antipattern_id for a in reopened.list_antipatterns()] == ["a1"]
        hits = reopened.search(SearchQuery(text="batch job makespan"))
        assert [h.policy.ref for h in hits] == expected_hits and hits[0].policy.name == "beta"
        # Two description vectors and one workload vector came back from disk.
        assert reopened._index.size == 3
        assert reopened.check_integrity() == []


# Run in separate interpreters (test modules are not importable by name under
# --import-mode=importlib, so multiprocessing cannot pickle a function from here).
_WRITER = """
import sys
from services.repository.embeddings import MiniLmEmbedder
from services.repository.sqlite_store import SqliteStore
from services.repository.store import PerformanceRecord, Policy, PolicyMetadata, WorkloadClass

path, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = SqliteStore(path, embedder=MiniLmEmbedder(threads=1))
for i in range(n):
    store.put(Policy(name=f"w{worker}_p{i}", version="1", source=f"/* w{worker}_p{i} */\\nint x;\\n",
                     metadata=PolicyMetadata(description=f"Worker {worker} policy {i}: queue variant {i * worker}.",
                                             target_workloads=(WorkloadClass.CPU_THROUGHPUT,))))
    # Every worker also records the same shared events: each must land exactly once.
    for source_id, ratio in ((f"shared-{i}", 1.0 + i / 10), (f"w{worker}-{i}", 2.0)):
        store.record_outcome("shared", "1", PerformanceRecord(
            workload_class=WorkloadClass.CPU_THROUGHPUT, metric="ops_per_s", ratio=ratio,
            source="deployment", source_id=source_id), event_id=f"perf:deployment:{source_id}")
store.close()
"""
REPO = Path(__file__).resolve().parents[3]


def _spawn_writer(path: Path, worker: int, n: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(worker), str(n)], cwd=REPO,
                            stderr=subprocess.PIPE)


def _wait(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"writer process failed: {err.decode()[-2000:]}"


def test_concurrent_processes_and_threads_lose_nothing(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.db"
    store = SqliteStore(path, embedder=embedder)
    store.put(policy("shared", description="A shared policy every worker records outcomes for."))
    workers, per_worker = 3, 8
    procs = [_spawn_writer(path, w, per_worker) for w in range(workers)]
    # Meanwhile this process reads and writes from several threads.
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                store.search(SearchQuery(text="queue variant", limit=5))
                store.list()
                store.get("shared")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    def thread_writer(t: int) -> None:
        try:
            for i in range(5):
                store.put(policy(f"t{t}_p{i}"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    threads += [threading.Thread(target=thread_writer, args=(t,)) for t in range(2)]
    for t in threads:
        t.daemon = True
        t.start()
    try:
        for p in procs:
            _wait(p)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    names = {p.name for p in store.list()}
    expected = {f"w{w}_p{i}" for w in range(workers) for i in range(per_worker)}
    expected |= {f"t{t}_p{i}" for t in range(2) for i in range(5)} | {"shared"}
    assert names == expected
    history = store.get("shared").history
    assert len(history) == per_worker + workers * per_worker
    assert sorted(r.source_id for r in history if r.source_id.startswith("shared-")) == \
        sorted(f"shared-{i}" for i in range(per_worker))
    # The index picked up the other processes' rows.
    hits = store.search(SearchQuery(text="Worker 2 policy 7: queue variant 14.", limit=1))
    assert hits[0].policy.name == "w2_p7"
    assert store.check_integrity() == []
    store.close()


def test_another_process_write_is_visible_to_an_open_store(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.db"
    store = SqliteStore(path, embedder=embedder)
    assert store.search(SearchQuery(text="anything")) == []
    store.put(policy("shared"))
    _wait(_spawn_writer(path, 5, 1))
    assert [h.policy.name for h in store.search(SearchQuery(text="Worker 5 policy 0", limit=1))] == ["w5_p0"]
    store.close()


class _OtherModel:
    model_id = "some-other-model"
    dimension = 384

    def embed(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("must not be called")


def test_a_store_written_by_another_embedding_model_is_refused(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    SqliteStore(tmp_path / "p.db", embedder=embedder).close()
    with pytest.raises(StoreIncompatible, match="embedding_model"):
        SqliteStore(tmp_path / "p.db", embedder=_OtherModel())


def test_failed_put_leaves_no_partial_rows(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """A conflict discovered inside the transaction rolls back every table."""
    store = SqliteStore(tmp_path / "p.db", embedder=embedder)
    store.put(policy("a"))
    batch = [policy("b"), policy("c"), Policy(**{**policy("a").__dict__, "source": "changed"})]
    with pytest.raises(Exception, match="already exists"):
        store.put_many(batch)
    conn = sqlite3.connect(tmp_path / "p.db")
    counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("policies", "vectors", "policies_fts", "policy_workloads", "status_changes")]
    conn.close()
    assert counts == [1, 1, 1, 1, 1]
    assert store.check_integrity() == []
    store.close()


def test_a_store_from_before_workload_keys_is_migrated_in_place(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.db"
    with SqliteStore(path, embedder=embedder) as store:
        store.put(policy("alpha"))
        store.record_outcome("alpha", "1", perf(1.2, "o1"))
    conn = sqlite3.connect(path)  # the performance table as older builds wrote it
    conn.execute("DROP INDEX performance_workload")
    conn.execute("ALTER TABLE performance DROP COLUMN workload_key")
    conn.commit()
    conn.close()
    key = workload_key(["make", "-j8"])
    with SqliteStore(path, embedder=embedder) as reopened:
        assert [r.workload_key for r in reopened.get("alpha").history] == [""]
        reopened.record_outcome("alpha", "1", replace(perf(1.3, "o2"), workload_key=key))
        assert [r.workload_key for r in reopened.get("alpha").history] == ["", key]
        assert reopened.check_integrity() == []
