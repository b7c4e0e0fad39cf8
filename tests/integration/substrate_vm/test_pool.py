"""The VM pool runs queued jobs in fresh VMs, at most ``size`` at once."""

from __future__ import annotations

import asyncio

import pytest

from schedcp.substrate.kernel import Kernel
from schedcp.substrate.pool import VmPool
from schedcp.substrate.vm import Job

pytestmark = [pytest.mark.vm, pytest.mark.asyncio(loop_scope="session")]


async def test_pool_runs_jobs_in_fresh_vms(sched_ext_kernel: Kernel) -> None:
    # Each job sees a fresh /tmp: a marker written by one is absent in the next.
    job = Job(argv=["sh", "-c", "ls /tmp/marker 2>/dev/null; touch /tmp/marker; "
                                "cat /proc/sys/kernel/random/boot_id"], cpus=1, mem_mb=512, timeout=60)
    async with VmPool(size=2, kernel=sched_ext_kernel) as pool:
        results = await asyncio.gather(*(pool.run(job) for _ in range(2)))
        assert pool.stats.completed == 2 and pool.stats.running == 0
    assert all(r.ok and "/tmp/marker" not in r.stdout for r in results)
    assert len({r.stdout for r in results}) == 2  # two different boots
