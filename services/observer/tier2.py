"""Tier 2 of the Workload Analysis Engine: deep, bounded, read-only profiling.

On request only. Two sources, run over the same window:

- ``perf stat`` counters for the workload's processes (or the whole node);
  hardware counters are often "not supported" in VMs, and that is reported,
  not an error.
- eBPF tracing probes from ``bpf/probes/`` (runqlat, timeslice, wakegraph,
  lifetime), compiled with the substrate's build chain against the running
  kernel's BTF, loaded through libbpf in this process, attached for at most
  ``window`` seconds and always detached in ``finally``. Nothing is pinned.

Every probe has three bounds: time (the window, capped by ``max_window``),
memory (its maps' fixed sizes, checked against ``max_memory_bytes`` before
loading) and overhead (the probes' own run time from the kernel's BPF stats,
as a share of the node's CPU time; above ``max_overhead_pct`` the probes are
detached early). Each probe reports what it cost.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from schedcp.errors import InvalidArgument, PermissionDenied, SchedcpError, Unavailable
from schedcp.v1 import profile_pb2
from services.observer.libbpf import BpfObject, ProbeError, enable_run_time_stats, prog_stats
from services.observer.untrusted import clean_text

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBES_DIR = REPO_ROOT / "bpf" / "probes"
PROBES = ("runqlat", "timeslice", "wakegraph", "lifetime")
HIST_SLOTS = 40
PERF_EVENTS = ("task-clock", "context-switches", "cpu-migrations", "page-faults",
               "cycles", "instructions", "cache-misses", "branch-misses")
MAX_PERF_PIDS = 256
#: A directory of probe objects built for this kernel elsewhere (set for micro-VM guests).
PREBUILT_ENV = "SCHEDCP_OBSERVER_PROBES_PREBUILT"


@dataclass(frozen=True)
class ProbeLimits:
    """Bounds every deep profile respects."""

    max_window: float = 30.0
    max_memory_bytes: int = 8 << 20
    max_overhead_pct: float = 5.0
    top_edges: int = 20


@dataclass
class ProbeReport:
    """What one probe measured and what it cost."""

    name: str
    events: int = 0
    dropped: int = 0
    forks: int = 0
    run_time_ns: int = 0
    run_count: int = 0
    map_bytes_bound: int = 0
    attached_seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Tier2Result:
    """Histograms, wakeup graph, perf counters, the per-probe reports and the total cost."""

    runqueue_latency: profile_pb2.Histogram | None = None
    timeslice: profile_pb2.Histogram | None = None
    task_lifetime: profile_pb2.Histogram | None = None
    wakeup_graph: list[profile_pb2.WakeupEdge] = field(default_factory=list)
    perf_counters: dict[str, float] = field(default_factory=dict)
    perf_unsupported: list[str] = field(default_factory=list)
    probes: list[ProbeReport] = field(default_factory=list)
    cost: profile_pb2.AnalysisCost = field(default_factory=profile_pb2.AnalysisCost)
    stopped_early: str = ""
    births: int = 0
    window_seconds: float = 0.0

    def probe_costs(self) -> list[profile_pb2.AnalysisCost]:
        """One AnalysisCost per probe: its kernel run time, map bound and share of node CPU."""
        ncpu = os.cpu_count() or 1
        win = max(self.window_seconds, 1e-3)
        return [profile_pb2.AnalysisCost(
            tier=profile_pb2.TIER_DEEP, wall_seconds=r.attached_seconds, cpu_seconds=r.run_time_ns / 1e9,
            memory_bytes=r.map_bytes_bound, tools=[f"ebpf:{r.name}"],
            overhead_pct=100.0 * r.run_time_ns / (win * 1e9 * ncpu)) for r in self.probes]

    def apply(self, f: profile_pb2.WorkloadFeatures) -> None:
        """Copy the deep results into a profile's features."""
        for name in ("runqueue_latency", "timeslice", "task_lifetime"):
            h = getattr(self, name)
            if h is not None:
                getattr(f, name).CopyFrom(h)
        del f.wakeup_graph[:]
        f.wakeup_graph.extend(self.wakeup_graph)
        for k, v in self.perf_counters.items():
            f.perf_counters[k] = v


# ------------------------------------------------------------------ pure helpers


def histogram_from_slots(counts: Sequence[int], unit: str = "us") -> profile_pb2.Histogram:
    """A log2 histogram (bucket i = [2^(i-1), 2^i) us) as a profile Histogram with percentiles.

    ``bounds`` are the upper bounds of all but the last bucket; the last count
    is the +Inf bucket. Percentiles are the upper bound of the bucket that
    holds them (a conservative estimate, never below the true value).
    """
    counts = list(counts)
    bounds = [float(1 << i) for i in range(len(counts) - 1)]
    h = profile_pb2.Histogram(bounds=bounds, counts=counts, unit=unit, samples=sum(counts))
    total = h.samples
    if total:
        def pct(q: float) -> float:
            need = q * total
            acc = 0
            for i, c in enumerate(counts):
                acc += c
                if acc >= need and c:
                    return bounds[i] if i < len(bounds) else bounds[-1] * 2
            return bounds[-1] * 2
        h.p50, h.p99, h.p999 = pct(0.5), pct(0.99), pct(0.999)
    return h


def top_edges(edges: dict[tuple[str, str], int], n: int) -> list[profile_pb2.WakeupEdge]:
    """The ``n`` most frequent wakeup edges, comms cleaned (they are untrusted)."""
    ranked = sorted(edges.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [profile_pb2.WakeupEdge(waker=clean_text(a, limit=32), wakee=clean_text(b, limit=32), count=c)
            for (a, b), c in ranked]


def parse_perf_csv(text: str) -> tuple[dict[str, float], list[str]]:
    """Parse ``perf stat -x,`` output: (supported counters, names not supported)."""
    values: dict[str, float] = {}
    unsupported: list[str] = []
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) < 3 or line.startswith("#"):
            continue
        raw, _unit, event = parts[0], parts[1], parts[2]
        event = event.split(":")[0].strip()
        if not event:
            continue
        if raw.startswith("<"):
            unsupported.append(event)
            continue
        try:
            values[event] = float(raw)
        except ValueError:
            continue
    return values, unsupported


# ------------------------------------------------------------------ building


class ProbeBuilder:
    """Compiles the probes for the running kernel, once per (source, BTF) digest."""

    def __init__(self, *, btf: Path = Path("/sys/kernel/btf/vmlinux"), cache_dir: Path | None = None,
                 prebuilt: Path | None = None) -> None:
        self.btf = btf
        self.cache_dir = cache_dir
        # Objects built on the host for a guest kernel (a TCG guest compiles slowly).
        env = os.environ.get(PREBUILT_ENV)
        self.prebuilt = prebuilt or (Path(env) if env else None)

    def object_for(self, name: str) -> Path:
        if name not in PROBES:
            raise InvalidArgument(f"unknown probe {clean_text(name, limit=40)!r}",
                                  hint=f"choose from: {', '.join(PROBES)}")
        if self.prebuilt is not None and (self.prebuilt / f"{name}.bpf.o").is_file():
            return self.prebuilt / f"{name}.bpf.o"
        if not self.btf.exists():
            raise Unavailable(f"kernel BTF {self.btf} is missing: eBPF probes need CONFIG_DEBUG_INFO_BTF",
                              hint="tier 2 perf counters still work; run probes inside the micro-VM")
        from schedcp.substrate.build import BpfBuilder, BuildError, default_cache_dir

        builder = BpfBuilder(btf=self.btf, cache_dir=self.cache_dir)
        src = PROBES_DIR / f"{name}.bpf.c"
        h = hashlib.sha256(src.read_bytes() + (PROBES_DIR / "probe_common.h").read_bytes())
        root = self.cache_dir or default_cache_dir()
        out = root / "probes" / f"{name}-{h.hexdigest()[:16]}-{builder.btf_digest[7:19]}.bpf.o"
        if out.exists():
            return out
        try:
            return builder.build_file(src, out=out).object_path
        except BuildError as exc:
            raise ProbeError(f"probe {name} does not compile: {exc}", hint="see the build diagnostics") from exc

    def prebuild(self, dest: Path, names: Sequence[str] = PROBES) -> Path:
        """Build every probe for ``self.btf`` into ``dest`` as ``<name>.bpf.o`` (for a guest)."""
        dest.mkdir(parents=True, exist_ok=True)
        for n in names:
            obj = self.object_for(n)
            target = dest / f"{n}.bpf.o"
            if not target.exists() or target.read_bytes() != obj.read_bytes():
                shutil.copyfile(obj, target)
        return dest


# ------------------------------------------------------------------ running


class _PerfRun:
    """``perf stat`` over the window, started before and stopped after the probes."""

    def __init__(self, tgids: Sequence[int] | None, window: float) -> None:
        self.proc: subprocess.Popen[str] | None = None
        perf = shutil.which("perf")
        if perf is None:
            return
        cmd = [perf, "stat", "-x,", "-e", ",".join(PERF_EVENTS)]
        if tgids:
            cmd += ["-p", ",".join(str(p) for p in list(tgids)[:MAX_PERF_PIDS])]
        else:
            cmd += ["-a"]
        cmd += ["--", "sleep", f"{window:.3f}"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def finish(self, timeout: float) -> tuple[dict[str, float], list[str], str]:
        if self.proc is None:
            return {}, [], "perf not installed"
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        values, unsupported = parse_perf_csv(err or "")
        note = "" if values else clean_text((err or "").strip().splitlines()[-1] if err and err.strip() else "no output")
        return values, unsupported, note

    def stop_now(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGINT makes perf print what it counted so far.
            self.proc.send_signal(2)


def _cgroup_ids(cg: Path) -> list[int]:
    """cgroup v2 ids of a cgroup and its descendants (the kernfs inode numbers)."""
    ids = []
    for dirpath, _dirs, _files in os.walk(cg):
        try:
            ids.append(os.stat(dirpath).st_ino)
        except OSError:
            continue
    return ids


def _cgroup_pids(cg: Path) -> list[int]:
    """Processes in a cgroup and its descendants (for perf's -p)."""
    pids: list[int] = []
    for dirpath, _dirs, _files in os.walk(cg):
        try:
            pids += [int(x) for x in Path(dirpath, "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            continue
    return pids


class Tier2Profiler:
    """Runs perf and the eBPF probes for one workload for a bounded window."""

    def __init__(self, *, builder: ProbeBuilder | None = None, limits: ProbeLimits | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.builder = builder or ProbeBuilder()
        self.limits = limits or ProbeLimits()
        self._clock = clock
        self._sleep = sleep

    def profile(self, *, tgids: set[int] | None, cgroup: Path | None, window: float,
                probes: Sequence[str] = (), max_overhead_pct: float | None = None,
                perf: bool = True) -> Tier2Result:
        """Profile the workload (tgids, or a cgroup dir, or the node when both are None)."""
        if window <= 0:
            raise InvalidArgument(f"window {window} s must be positive", hint="use e.g. --window 5")
        window = min(window, self.limits.max_window)
        overhead_cap = min(max_overhead_pct or self.limits.max_overhead_pct, self.limits.max_overhead_pct)
        names = list(dict.fromkeys(probes)) or list(PROBES)
        for n in names:
            if n not in PROBES:
                raise InvalidArgument(f"unknown probe {clean_text(n, limit=40)!r}",
                                      hint=f"choose from: {', '.join(PROBES)}")
        if os.geteuid() != 0:
            raise PermissionDenied("eBPF probes need root (CAP_BPF and CAP_PERFMON)",
                                   hint="run the observer service as root, or ask for tier 1 only")
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = self._clock()
        result = Tier2Result()
        result.cost.tier = profile_pb2.TIER_DEEP
        objs: list[tuple[str, BpfObject]] = []
        stats_fd = -1
        perf_run: _PerfRun | None = None
        try:
            paths = {n: self.builder.object_for(n) for n in names}
            for n in names:
                obj = BpfObject(paths[n])
                objs.append((n, obj))
                maps = obj.maps()
                bound = sum(m.bytes_bound for m in maps.values())
                if bound > self.limits.max_memory_bytes:
                    raise ProbeError(f"probe {n} could use {bound} bytes of maps, over the "
                                     f"{self.limits.max_memory_bytes}-byte bound")
                self._configure(maps, tgids, cgroup)
                result.probes.append(ProbeReport(name=n, map_bytes_bound=bound))
            stats_fd = enable_run_time_stats()
            if perf:
                # perf counts processes, not cgroups: take the cgroup's members now.
                perf_pids = sorted(tgids) if tgids else (_cgroup_pids(cgroup) if cgroup is not None else None)
                if perf_pids == []:
                    result.perf_unsupported.append("perf: the cgroup has no processes")
                else:
                    perf_run = _PerfRun(perf_pids, window)
            t_attach = self._clock()
            for _, obj in objs:
                obj.attach()
            deadline = t_attach + window
            ncpu = os.cpu_count() or 1
            while True:
                now = self._clock()
                if now >= deadline:
                    break
                self._sleep(min(0.25, deadline - now))
                elapsed = self._clock() - t_attach
                run_ns = sum(prog_stats(fd)[1] for _, o in objs for _, fd in o.programs())
                if elapsed > 0.5 and 100.0 * run_ns / (elapsed * 1e9 * ncpu) > overhead_cap:
                    result.stopped_early = (f"probe overhead {100.0 * run_ns / (elapsed * 1e9 * ncpu):.2f}% "
                                            f"exceeded the {overhead_cap}% bound after {elapsed:.1f} s")
                    break
            for _, obj in objs:
                obj.detach()
            attached = self._clock() - t_attach
            result.window_seconds = attached
            if perf_run is not None and result.stopped_early:
                perf_run.stop_now()
            for (n, obj), rep in zip(objs, result.probes, strict=True):
                self._collect(n, obj, rep, result)
                rep.attached_seconds = attached
            result.births = max((r.forks for r in result.probes), default=0)
            if perf_run is not None:
                values, unsupported, note = perf_run.finish(timeout=window + 10)
                result.perf_counters = values
                result.perf_unsupported = unsupported
                if note and not values:
                    result.perf_unsupported.append(f"perf: {note}")
        except SchedcpError:
            raise
        except OSError as exc:
            raise ProbeError(f"deep profiling failed: {exc}", hint="check that bpffs/tracefs and BTF are usable") from exc
        finally:
            for _, obj in objs:
                obj.close()
            if stats_fd >= 0:
                os.close(stats_fd)
            if perf_run is not None and perf_run.proc is not None and perf_run.proc.poll() is None:
                perf_run.proc.kill()
                perf_run.proc.wait()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        ncpu = os.cpu_count() or 1
        probe_ns = sum(r.run_time_ns for r in result.probes)
        c = result.cost
        c.wall_seconds = self._clock() - wall0
        c.cpu_seconds = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime) + probe_ns / 1e9
        c.memory_bytes = sum(r.map_bytes_bound for r in result.probes)
        c.tools.extend(["ebpf:" + r.name for r in result.probes])
        if perf:
            c.tools.append("perf-stat")
        win = max(result.window_seconds, 1e-3)
        c.overhead_pct = 100.0 * probe_ns / (win * 1e9 * ncpu)
        return result

    @staticmethod
    def _configure(maps: dict, tgids: set[int] | None, cgroup: Path | None) -> None:
        mode = 0
        if cgroup is not None:
            mode = 2
            for cgid in _cgroup_ids(cgroup)[: maps["cgids"].max_entries]:
                maps["cgids"].update(struct.pack("<Q", cgid), b"\x01")
        elif tgids:
            mode = 1
            for t in sorted(tgids)[: maps["tgids"].max_entries]:
                maps["tgids"].update(struct.pack("<I", t), b"\x01")
        maps["cfg"].update(struct.pack("<I", 0), struct.pack("<II", mode, 0))

    def _collect(self, name: str, obj: BpfObject, rep: ProbeReport, result: Tier2Result) -> None:
        maps = obj.maps()
        st = maps["stats"].array_u64()
        rep.events, rep.dropped, rep.forks = st[0], st[1], st[2]
        for _, fd in obj.programs():
            _, run_ns, cnt = prog_stats(fd)
            rep.run_time_ns += run_ns
            rep.run_count += cnt
        if name == "runqlat":
            result.runqueue_latency = histogram_from_slots(maps["hist"].array_u64())
        elif name == "timeslice":
            result.timeslice = histogram_from_slots(maps["hist"].array_u64())
            ends = maps["ends"].array_u64()
            rep.extra = {"preempted": float(ends[0]), "blocked": float(ends[1])}
        elif name == "lifetime":
            result.task_lifetime = histogram_from_slots(maps["hist"].array_u64())
            tot = maps["totals"].array_u64()
            rep.extra = {"lifetime_us_sum": float(tot[0]), "exits": float(tot[1])}
        elif name == "wakegraph":
            edges: dict[tuple[str, str], int] = {}
            for k, v in maps["edges"].items(limit=4096):
                waker = k[:16].split(b"\0", 1)[0]
                wakee = k[16:32].split(b"\0", 1)[0]
                key = (waker.decode("utf-8", "backslashreplace"), wakee.decode("utf-8", "backslashreplace"))
                edges[key] = edges.get(key, 0) + struct.unpack("<Q", v[:8])[0]
            result.wakeup_graph = top_edges(edges, self.limits.top_edges)
            rep.extra = {"distinct_edges": float(len(edges))}
