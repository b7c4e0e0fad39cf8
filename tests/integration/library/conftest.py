"""One sched_ext micro-VM per module: every library scheduler is loaded in it
in turn (boots are the expensive part under TCG)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def vm_node() -> Iterator[object]:
    from schedcp.substrate.nodes import boot_vm_node

    with boot_vm_node(cpus=2) as node:
        yield node


@pytest.fixture(scope="module")
def vm_builder(vm_node: object) -> object:
    from schedcp.substrate.build import BpfBuilder

    return BpfBuilder(btf=vm_node.btf_path())  # type: ignore[attr-defined]
