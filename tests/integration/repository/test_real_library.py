"""The labelled workload descriptions against the real bpf/ library, as it exists today.

Each real scheduler that matches a fixture kind (by name or tags) replaces
that fixture policy; fixture policies of kinds bpf/ does not have (yet) stay
in as distractors, so "in the top 3" keeps meaning something.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.repository.seed import policy_from_metadata, seed_from_library
from services.repository.sqlite_store import SqliteStore
from services.repository.store import PolicyStatus, SearchQuery

from .library import FIXTURE_LIBRARY, KIND_WORDS, LABELLED_QUERIES

BPF = Path(__file__).resolve().parents[3] / "bpf"


def _kind_of(meta: dict) -> str | None:
    words = {meta["name"].lower(), *(t.lower() for t in meta.get("tags", []))}
    for kind, keys in KIND_WORDS.items():
        if any(k in w for k in keys for w in words):
            return kind
    return None


def test_labelled_queries_find_the_real_library_policy(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    metas = [json.loads(p.read_text()) for p in sorted(BPF.glob("*.json")) if p.with_suffix(".bpf.c").exists()]
    real = {}
    for meta in metas:
        kind = _kind_of(meta)
        if kind and kind not in real:
            real[kind] = meta["name"]
    if not real:
        pytest.skip(f"no scheduler in {BPF} matches a labelled kind yet")
    store = SqliteStore(tmp_path / "p.db", embedder=embedder)
    report = seed_from_library(store, BPF)
    invalid = [s for s in report.skipped if "no metadata file" not in s[1]]
    assert not invalid, f"library metadata the repository refuses: {invalid}"
    real_names = {p.name for p in store.list()}
    for name, meta in FIXTURE_LIBRARY.items():
        if name not in real and name not in real_names:
            store.put(policy_from_metadata({"name": name, **meta}, f"/* {name} */\n"), status=PolicyStatus.PROMOTED)
    misses = []
    checked = 0
    for text, kind in LABELLED_QUERIES:
        if kind not in real:
            continue
        checked += 1
        names = [h.policy.name for h in store.search(SearchQuery(text=text, limit=3))]
        if real[kind] not in names:
            misses.append((text, real[kind], names))
    store.close()
    assert checked > 0
    # The labels were written for the fixture library; the real metadata
    # sometimes disagrees (it targets PARALLEL_BUILD with `locality`, not `las`)
    # and negations ("no fairness needed") defeat sentence embeddings. So the
    # bar here is two thirds, not all; the misses are printed for review.
    assert len(misses) <= checked // 3, \
        f"real library policy not in the top 3 for {len(misses)}/{checked} queries: {misses}"
    print(f"real library: {checked - len(misses)}/{checked} in the top 3; misses: {misses}")
