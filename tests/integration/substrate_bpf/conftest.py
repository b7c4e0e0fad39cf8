"""Fixtures for the BPF substrate: ONE micro-VM per module serves every
load/unload check (boots are the expensive part under TCG)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

PROGS = Path(__file__).parent / "progs"


@pytest.fixture(scope="module")
def vm_node() -> Iterator[object]:
    from schedcp.substrate.nodes import boot_vm_node

    with boot_vm_node(cpus=2) as node:
        yield node


@pytest.fixture
def fresh_vm_node() -> Iterator[object]:
    """A VM of its own. The 7.3.4 guest kernel has oopsed in the scheduler
    core (__schedule/__hrtick_start, from an IPI) after several sched_ext
    enable/disable cycles in one boot, so no VM does more than a few."""
    from schedcp.substrate.nodes import boot_vm_node

    with boot_vm_node(cpus=2) as node:
        yield node


@pytest.fixture(scope="module")
def vm_builder(vm_node: object) -> object:
    from schedcp.substrate.build import BpfBuilder

    return BpfBuilder(btf=vm_node.btf_path())  # type: ignore[attr-defined]
