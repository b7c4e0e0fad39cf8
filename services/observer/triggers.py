"""Triggers: notice new workloads and phase changes, and publish their profiles.

Workloads are found without configuration, cheaply (one pass over
/proc/*/stat and the cgroup v2 tree's cpu.stat per scan):

- process trees, grouped by process group (a shell job, ``make -j``, a
  service's main process and its workers share one);
- cgroups (containers, systemd units) below the cgroup v2 root.

A candidate becomes a *new workload* once its CPU use stays at or above
``cpu_threshold`` CPUs for ``confirm_scans`` consecutive scans (one busy
scan is noise). Tracked workloads are re-profiled every ``recheck_seconds``;
a *phase change* is a shift of the key features beyond ``enter_distance``
for ``confirm_changes`` consecutive re-checks, and the streak only resets
once the distance falls below ``exit_distance`` (hysteresis: a workload
hovering at the threshold does not flap).

The decision logic (``TriggerEngine``) is pure and unit-tested; the loop
(``TriggerLoop``) does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from schedcp.errors import SchedcpError
from schedcp.v1 import profile_pb2
from services.observer.tier1 import (
    CLK_TCK,
    CountingReader,
    Target,
    cgroup2_mount,
    parse_cpu_stat,
    parse_stat,
)

log = logging.getLogger(__name__)

#: Features compared for phase changes, with the floor below which differences are noise.
PHASE_FEATURES: dict[str, float] = {
    "cpu_utilization": 0.1,
    "voluntary_ctx_switches_per_s": 20.0,
    "involuntary_ctx_switches_per_s": 20.0,
    "task_births_per_s": 1.0,
    "runqueue_wait_fraction": 0.05,
    "thread_count": 2.0,
}


@dataclass(frozen=True)
class TriggerConfig:
    cpu_threshold: float = 0.2
    confirm_scans: int = 2
    enter_distance: float = 0.5
    exit_distance: float = 0.25
    confirm_changes: int = 2
    max_tracked: int = 8


def feature_distance(a: profile_pb2.WorkloadFeatures, b: profile_pb2.WorkloadFeatures,
                     class_a: int = 0, class_b: int = 0) -> float:
    """Largest relative change over the phase features (0 same, 1 completely different)."""
    if class_a and class_b and class_a != class_b:
        return 1.0
    worst = 0.0
    for name, floor in PHASE_FEATURES.items():
        x, y = float(getattr(a, name)), float(getattr(b, name))
        worst = max(worst, abs(x - y) / max(abs(x), abs(y), floor))
    return worst


@dataclass
class _Candidate:
    last_cpu: float
    last_t: float
    busy_streak: int = 0


@dataclass
class _Tracked:
    reference: profile_pb2.WorkloadFeatures
    reference_class: int
    streak: int = 0
    last_check: float = 0.0


@dataclass
class TriggerEngine:
    """Pure decisions: which candidates are new workloads, which profiles mark a phase change."""

    config: TriggerConfig = field(default_factory=TriggerConfig)
    candidates: dict[str, _Candidate] = field(default_factory=dict)
    tracked: dict[str, _Tracked] = field(default_factory=dict)

    def on_scan(self, now: float, usage: dict[str, float]) -> list[str]:
        """Feed cumulative CPU seconds per candidate key; returns keys that just qualified as new."""
        fresh: list[str] = []
        for key in list(self.candidates):
            if key not in usage:
                del self.candidates[key]
                self.tracked.pop(key, None)
        for key, cpu in usage.items():
            c = self.candidates.get(key)
            if c is None:
                self.candidates[key] = _Candidate(cpu, now)
                continue
            dt = now - c.last_t
            rate = (cpu - c.last_cpu) / dt if dt > 0 else 0.0
            c.last_cpu, c.last_t = cpu, now
            c.busy_streak = c.busy_streak + 1 if rate >= self.config.cpu_threshold else 0
            if (c.busy_streak >= self.config.confirm_scans and key not in self.tracked
                    and len(self.tracked) < self.config.max_tracked):
                fresh.append(key)
        return fresh

    def start_tracking(self, key: str, profile: profile_pb2.WorkloadProfile, now: float) -> None:
        ref = profile_pb2.WorkloadFeatures()
        ref.CopyFrom(profile.features)
        self.tracked[key] = _Tracked(ref, profile.workload_class, last_check=now)

    def on_profile(self, key: str, profile: profile_pb2.WorkloadProfile, now: float) -> bool:
        """Feed a fresh profile of a tracked workload; True when it marks a phase change."""
        t = self.tracked.get(key)
        if t is None:
            return False
        t.last_check = now
        d = feature_distance(t.reference, profile.features, t.reference_class, profile.workload_class)
        if d >= self.config.enter_distance:
            t.streak += 1
        elif d < self.config.exit_distance:
            t.streak = 0
        if t.streak >= self.config.confirm_changes:
            t.reference.CopyFrom(profile.features)
            t.reference_class = profile.workload_class
            t.streak = 0
            return True
        return False

    def due(self, now: float, every: float) -> list[str]:
        return [k for k, t in self.tracked.items() if now - t.last_check >= every]


class WorkloadScanner:
    """Finds candidate workloads: process groups and cgroup v2 directories, with cumulative CPU."""

    def __init__(self, *, proc: str = "/proc", cgroup_root: Path | None = None, include_cgroups: bool = True,
                 exclude_pgids: set[int] | None = None) -> None:
        self.proc = proc
        self.cgroup_root = cgroup_root or cgroup2_mount()
        self.include_cgroups = include_cgroups
        self.exclude = exclude_pgids if exclude_pgids is not None else {os.getpgrp()}

    def scan(self) -> dict[str, tuple[Target, float]]:
        r = CountingReader()
        groups: dict[int, float] = {}
        leaders: dict[int, int] = {}
        for name in os.listdir(self.proc):
            if not name.isdigit():
                continue
            text = r.read(f"{self.proc}/{name}/stat")
            if not text:
                continue
            try:
                st = parse_stat(text)
            except (ValueError, IndexError):
                continue
            if st.pid == 2 or st.ppid == 2 or st.pgrp in self.exclude or st.pgrp <= 1:
                continue
            # cutime/cstime: CPU of reaped children, so short-lived tasks count too.
            groups[st.pgrp] = groups.get(st.pgrp, 0.0) + (st.utime + st.stime + st.cutime + st.cstime) / CLK_TCK
            if st.pid == st.pgrp:
                leaders[st.pgrp] = st.starttime
        out: dict[str, tuple[Target, float]] = {}
        for pgid, cpu in groups.items():
            if pgid in leaders:  # observe through the leader's tree
                out[f"pgid:{pgid}:{leaders[pgid]}"] = (Target(pid=pgid), cpu)
        if self.include_cgroups:
            for dirpath, _dirs, _files in os.walk(self.cgroup_root):
                if dirpath == str(self.cgroup_root):
                    continue
                text = r.read(os.path.join(dirpath, "cpu.stat"))
                if text:
                    usage = parse_cpu_stat(text).get("usage_usec")
                    if usage is not None:
                        out[f"cgroup:{dirpath}"] = (Target(cgroup=dirpath), usage / 1e6)
        return out


ProfileFn = Callable[[Target, str], Awaitable[profile_pb2.WorkloadProfile]]
PublishFn = Callable[[profile_pb2.WorkloadProfile], Awaitable[None]]


class TriggerLoop:
    """Scans, profiles new workloads, re-checks tracked ones, publishes on triggers."""

    def __init__(self, *, scanner: WorkloadScanner, profile: ProfileFn, publish: PublishFn,
                 engine: TriggerEngine | None = None, scan_seconds: float = 2.0,
                 recheck_seconds: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.scanner = scanner
        self.profile = profile
        self.publish = publish
        self.engine = engine or TriggerEngine()
        self.scan_seconds = scan_seconds
        self.recheck_seconds = recheck_seconds
        self.clock = clock
        self.published: list[tuple[str, str]] = []  # (key, trigger), for status and tests

    async def step(self) -> None:
        """One scan: publish new workloads, then re-check tracked ones that are due."""
        scanned = await asyncio.to_thread(self.scanner.scan)
        now = self.clock()
        usage = {k: cpu for k, (_, cpu) in scanned.items()}
        for key in self.engine.on_scan(now, usage):
            target = scanned[key][0]
            prof = await self._profile(target, "new-workload")
            if prof is None:
                continue
            self.engine.start_tracking(key, prof, self.clock())
            await self.publish(prof)
            self.published.append((key, "new-workload"))
        for key in self.engine.due(self.clock(), self.recheck_seconds):
            if key not in scanned:
                continue
            prof = await self._profile(scanned[key][0], "phase-change")
            if prof is not None and self.engine.on_profile(key, prof, self.clock()):
                await self.publish(prof)
                self.published.append((key, "phase-change"))

    async def _profile(self, target: Target, trigger: str) -> profile_pb2.WorkloadProfile | None:
        try:
            return await self.profile(target, trigger)
        except SchedcpError as exc:
            # Workloads end between the scan and the profile all the time.
            log.info("could not profile %s for %s: %s", target.describe(), trigger, exc)
            return None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
            except Exception:  # noqa: BLE001 - one bad scan must not end the trigger loop
                log.exception("trigger scan failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.scan_seconds)
            except TimeoutError:
                pass
