"""Fixtures for the micro-VM tests: the (cached) kernel and one shared node."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from schedcp.substrate.kernel import Kernel, ensure_kernel
from schedcp.substrate.vm import VmNode


@pytest.fixture(scope="session")
def sched_ext_kernel() -> Kernel:
    return ensure_kernel()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def node(sched_ext_kernel: Kernel) -> AsyncIterator[VmNode]:
    """One persistent VM serves every check in a module (boots are the cost)."""
    n = VmNode(kernel=sched_ext_kernel, cpus=2, mem_mb=768, lifetime=300,
               modules=("overlay",), env={"SCHEDCP_TEST": "yes"},
               files={"hello.sh": b"#!/bin/sh\necho hello from $SCHEDCP_TEST\n"})
    await n.start()
    try:
        yield n
    finally:
        await n.shutdown()
