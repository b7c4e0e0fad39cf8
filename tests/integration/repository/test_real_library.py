"""The labelled workload descriptions against the real bpf/ library, as it exists today.

Each real scheduler that matches a fixture kind (by name or tags) replaces
that fixture policy; the fixture policies of the other kinds stay in as
distractors, so "in the top 3" keeps meaning something while bpf/ is small.
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
    text = " ".join(words)
    for kind, keys in KIND_WORDS.items():
        if meta["name"].lower() == kind or any(k in text for k in keys):
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
    assert not misses, f"real library policy not in the top 3 for {len(misses)}/{checked} queries: {misses}"
