"""A pool of micro-VM workers fed from an asyncio queue.

Each job gets a fresh VM (a scheduler under test can wedge or poison a
kernel, so VMs are never reused between jobs); the pool bounds how many run at
once. The default size is the number of cores: under TCG each vCPU is a host
thread, and more VMs than cores only stretches every job.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from schedcp.substrate import VmError
from schedcp.substrate.accel import Accel
from schedcp.substrate.kernel import Kernel, ensure_kernel
from schedcp.substrate.vm import Job, JobResult, default_accel, run_job


@dataclass
class PoolStats:
    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0


class VmPool:
    """``async with VmPool(size=2) as pool: res = await pool.run(Job(argv=[...]))``."""

    def __init__(self, *, size: int | None = None, kernel: Kernel | None = None,
                 accel: Accel | None = None, boot_timeout: float | None = None) -> None:
        self.size = size or os.cpu_count() or 1
        if self.size < 1:
            raise VmError(f"pool size {self.size} < 1", hint="use size=1 or more")
        self.kernel = kernel
        self.accel = accel
        self.boot_timeout = boot_timeout
        self.stats = PoolStats()
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[JobResult]]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._setup_lock = asyncio.Lock()
        self._closed = False

    async def _ensure_started(self) -> None:
        async with self._setup_lock:
            if self._workers:
                return
            # Resolve the kernel and accelerator once, not per VM.
            if self.kernel is None:
                self.kernel = await asyncio.to_thread(ensure_kernel)
            if self.accel is None:
                self.accel = await asyncio.to_thread(default_accel, self.kernel)
            self._workers = [asyncio.create_task(self._worker(i)) for i in range(self.size)]

    async def _worker(self, index: int) -> None:
        while True:
            job, fut = await self._queue.get()
            self.stats.queued -= 1
            if fut.cancelled():
                self._queue.task_done()
                continue
            self.stats.running += 1
            try:
                res = await run_job(job, kernel=self.kernel, accel=self.accel,
                                    boot_timeout=self.boot_timeout)
            except Exception as exc:  # the caller gets it; the worker carries on
                self.stats.failed += 1
                if not fut.done():
                    fut.set_exception(exc)
            else:
                self.stats.completed += 1
                if not fut.done():
                    fut.set_result(res)
            finally:
                self.stats.running -= 1
                self._queue.task_done()

    async def run(self, job: Job) -> JobResult:
        """Queue ``job``; returns when a VM has run it (FIFO order)."""
        if self._closed:
            raise VmError("the VM pool is closed")
        await self._ensure_started()
        fut: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        self.stats.queued += 1
        await self._queue.put((job, fut))
        return await fut

    async def close(self) -> None:
        """Stop the workers; VMs of cancelled jobs are torn down by run_job's finally."""
        self._closed = True
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def __aenter__(self) -> VmPool:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
