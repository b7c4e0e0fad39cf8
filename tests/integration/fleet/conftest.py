"""Fixtures for fleet tests: hosts as network namespaces, a NATS cluster across them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import ClusterNode, start_cluster
from .netns import Fleet, netns_available


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    reason = netns_available()
    if reason:
        pytest.skip(reason)
    with Fleet(3) as hosts:
        yield hosts


@pytest.fixture
def nats_cluster(fleet: Fleet, tmp_path: Path) -> Iterator[list[ClusterNode]]:
    nodes = start_cluster(fleet, tmp_path / "nats")
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()
