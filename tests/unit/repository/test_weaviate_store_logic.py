"""WeaviateStore's own logic against an in-memory imitation of the client (no server exists here).

These check what the backend decides (ids, idempotency, lifecycle, the filters
and properties it uses, ranking); whether it talks to a real server correctly
is checked by the contract suite's Weaviate leg wherever SCHEDCP_WEAVIATE_URL is set.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from schedcp.workload_key import workload_key
from services.repository.store import (
    Antipattern,
    IllegalTransition,
    InvalidPolicy,
    Limits,
    PerformanceRecord,
    Policy,
    PolicyMetadata,
    PolicyNotFound,
    PolicyStatus,
    PolicyVersionExists,
    SearchQuery,
    StoreIncompatible,
    TunableSpec,
    TunableType,
    WorkloadClass,
)
from services.repository.weaviate_store import WeaviateStore

from .fake_weaviate import FakeWeaviateClient, HashingEmbedder

S = PolicyStatus
W = WorkloadClass


def policy(name: str, version: str = "1", *, description: str = "", source: str = "",
           classes: tuple[WorkloadClass, ...] = (W.LATENCY_SERVER,), tags: tuple[str, ...] = ()) -> Policy:
    return Policy(name=name, version=version, source=source or f"/* {name}@{version} */\n",
                  metadata=PolicyMetadata(description=description or f"{name} scheduler", target_workloads=classes,
                                          tags=tags),
                  tunables=(TunableSpec("slice_us", TunableType.UINT, 5000, 100, 100000),))


@pytest.fixture
def client() -> FakeWeaviateClient:
    return FakeWeaviateClient()


@pytest.fixture
def store(client: FakeWeaviateClient) -> WeaviateStore:
    return WeaviateStore(client, embedder=HashingEmbedder(), limits=Limits(max_source_bytes=1000), prefix="T")


def test_put_get_and_immutability(store: WeaviateStore) -> None:
    stored = store.put(policy("edf"))
    assert store.get("edf", "1") == stored and stored.status is S.CANDIDATE
    assert store.put(policy("edf")) == stored
    with pytest.raises(PolicyVersionExists, match="edf@1 already exists"):
        store.put(policy("edf", source="/* other */\n"))
    with pytest.raises(InvalidPolicy, match="over the limit of 1000 bytes"):
        store.put(policy("big", source="x" * 1001))
    with pytest.raises(PolicyNotFound, match="known versions of edf: 1"):
        store.get("edf", "2")
    assert store.check_integrity() == []


def test_latest_list_and_source_digest(store: WeaviateStore) -> None:
    store.put(policy("edf"))
    store.put(policy("edf", "2"))
    store.put(policy("fifo", classes=(W.CPU_THROUGHPUT,)))
    assert store.get("edf").version == "2"
    assert [p.ref for p in store.list()] == ["edf@2", "fifo@1"]
    assert [p.ref for p in store.list(all_versions=True)] == ["edf@1", "edf@2", "fifo@1"]
    digest = store.get("fifo").source_digest
    assert store.find_by_source_digest(digest).ref == "fifo@1"  # type: ignore[union-attr]


def test_outcomes_once_per_event_and_lifecycle(store: WeaviateStore) -> None:
    store.put(policy("edf"))
    rec = PerformanceRecord(workload_class=W.LATENCY_SERVER, metric="p99", ratio=1.5, source="verdict",
                            source_id="v1")
    store.record_outcome("edf", "1", rec, event_id="perf:verdict:v1", workload_text="nginx p99 requests")
    store.record_outcome("edf", "1", rec, event_id="perf:verdict:v1", workload_text="nginx p99 requests")
    store.record_outcome("edf", "1", rec)  # same verdict from another caller
    assert len(store.get("edf").history) == 1
    with pytest.raises(IllegalTransition):
        store.set_status("edf", "1", S.PROMOTED)
    store.set_status("edf", "1", S.VERIFIED)
    store.set_status("edf", "1", S.PROMOTED)
    store.set_status("edf", "1", S.DEPRECATED, reason="old")
    with pytest.raises(IllegalTransition, match="needs a reason"):
        store.set_status("edf", "1", S.PROMOTED)
    assert [c.to_status for c in store.status_history("edf", "1")] == [
        S.CANDIDATE, S.VERIFIED, S.PROMOTED, S.DEPRECATED]


def test_antipatterns_once(store: WeaviateStore) -> None:
    ap = Antipattern(antipattern_id="verdict:v9", policy_name="edf", policy_version="1",
                     workload_class=W.LATENCY_SERVER, reason="stall", stage="dynamic")
    store.record_antipattern(ap, event_id="antipattern:verdict:v9")
    store.record_antipattern(ap, event_id="antipattern:verdict:v9")
    assert [a.antipattern_id for a in store.list_antipatterns(name="edf")] == ["verdict:v9"]
    assert store.list_antipatterns(workload_class=W.BATCH_LONG_TAIL) == []


def test_search_filters_history_and_passages(store: WeaviateStore) -> None:
    store.put(policy("edf", description="deadline scheduling for request latency", tags=("edf",)),
              status=S.PROMOTED)
    store.put(policy("ljf", description="longest job first batch makespan", classes=(W.BATCH_LONG_TAIL,)),
              status=S.PROMOTED)
    store.put(policy("old", description="deadline scheduling for request latency, older"), status=S.PROMOTED)
    store.set_status("old", "1", S.DEPRECATED, reason="superseded")
    hits = store.search(SearchQuery(text="request latency deadline"))
    assert [h.policy.name for h in hits][0] == "edf" and "old" not in [h.policy.name for h in hits]
    assert [h.policy.name for h in store.search(SearchQuery(text="deadline",
                                                            workload_classes=(W.BATCH_LONG_TAIL,)))] == ["ljf"]
    assert [h.policy.name for h in store.search(SearchQuery(text="x", keywords=("makespan",)))] == ["ljf"]
    assert [h.policy.name for h in store.search(SearchQuery(text="x", tags=("edf",)))] == ["edf"]
    # A workload text the policy served well makes it findable by that wording.
    rec = PerformanceRecord(workload_class=W.CPU_THROUGHPUT, metric="ops", ratio=2.0, source="deployment",
                            source_id="o1")
    store.record_outcome("ljf", "1", rec, event_id="perf:deployment:o1", workload_text="video transcoding farm")
    assert store.search(SearchQuery(text="video transcoding farm"))[0].policy.name == "ljf"
    got = store.search(SearchQuery(text="video transcoding", workload_classes=(W.CPU_THROUGHPUT,)))
    assert got[0].policy.name == "ljf" and got[0].historical_ratio == 2.0


def test_header_passages_are_searchable(store: WeaviateStore) -> None:
    src = "/*\n * quux: a scheduler.\n *\n * Where it fits: telescopes streaming frames to disk at night.\n */\n"
    store.put(policy("quux", source=src), status=S.PROMOTED)
    store.put(policy("other", description="something unrelated entirely"), status=S.PROMOTED)
    assert store.search(SearchQuery(text="telescopes streaming frames"))[0].policy.name == "quux"


def test_reopening_with_another_model_is_refused(client: FakeWeaviateClient) -> None:
    WeaviateStore(client, embedder=HashingEmbedder(), prefix="T")

    class Other(HashingEmbedder):
        model_id = "other"

    with pytest.raises(StoreIncompatible, match="embedding_model"):
        WeaviateStore(client, embedder=Other(), prefix="T")


def test_a_win_on_exactly_this_workload_passes_the_class_filter_and_ranks_first(store: WeaviateStore) -> None:
    store.put(policy("ljf", description="longest job first batch makespan", classes=(W.BATCH_LONG_TAIL,)),
              status=S.PROMOTED)
    store.put(policy("fifo", description="first in first out queue", classes=(W.CPU_THROUGHPUT,)),
              status=S.PROMOTED)
    key = workload_key(["python", "-m", "schedcp.workloads", "run", "batch-long-tail"])
    rec = PerformanceRecord(workload_class=W.CPU_THROUGHPUT, metric="makespan_s", ratio=1.3, source="verdict",
                            source_id="v1", workload_key=key)
    store.record_outcome("fifo", "1", rec, event_id="perf:verdict:v1")
    assert store.get("fifo").history[0].workload_key == key
    query = SearchQuery(text="batch makespan", workload_classes=(W.BATCH_LONG_TAIL,))
    assert [h.policy.name for h in store.search(query)] == ["ljf"]
    hits = store.search(replace(query, workload_key=key))
    assert [h.policy.name for h in hits] == ["fifo", "ljf"] and hits[0].historical_ratio == 1.3


def test_a_collection_created_before_workload_keys_gains_the_property(client: FakeWeaviateClient) -> None:
    WeaviateStore(client, embedder=HashingEmbedder(), prefix="T")
    performance = next(c for n, c in client.collections._all.items() if n.endswith("Performance"))
    performance.property_names.discard("workload_key")  # as created by an older build
    store = WeaviateStore(client, embedder=HashingEmbedder(), prefix="T")
    assert "workload_key" in performance.property_names
    store.put(policy("edf"))
    store.record_outcome("edf", "1", PerformanceRecord(workload_class=W.LATENCY_SERVER, metric="p99", ratio=1.1,
                                                       source="verdict", source_id="v1",
                                                       workload_key=workload_key(["srv"])))
    assert store.get("edf").history[0].workload_key == workload_key(["srv"])


def test_a_workload_winner_outside_the_vector_pool_is_still_found(store: WeaviateStore) -> None:
    for i in range(110):  # more close matches than the vector search pool holds
        store.put(policy(f"ljf{i}", description=f"longest job first batch makespan variant {i}",
                         classes=(W.BATCH_LONG_TAIL,)), status=S.PROMOTED)
    store.put(policy("fifo", description="an unrelated queue", classes=(W.CPU_THROUGHPUT,)), status=S.PROMOTED)
    key = workload_key(["sort", "-S", "1G", "/data/in"])
    store.record_outcome("fifo", "1", PerformanceRecord(workload_class=W.CPU_THROUGHPUT, metric="makespan_s",
                                                        ratio=1.2, source="verdict", source_id="v1",
                                                        workload_key=key))
    query = SearchQuery(text="longest job first batch makespan", workload_classes=(W.BATCH_LONG_TAIL,), limit=3)
    assert store.search(replace(query, workload_key=key))[0].policy.name == "fifo"
