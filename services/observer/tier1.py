"""Tier 1 of the Workload Analysis Engine: cheap summaries from /proc and /sys.

A workload is a process tree (rooted at a pid), a cgroup v2 directory, or the
whole node. ``Tier1Sampler.observe`` polls it over a window and turns counter
deltas into rates: CPU time, context switches, run-queue wait (schedstat
``run_delay``), task births/exits and lifetimes, PSI, load and memory.

Why polling and not one snapshot: births, exits and lifetimes only exist as
differences between polls, and per-task counters vanish with the task, so the
last value seen is the best estimate of its contribution. Tasks exit between
listing and reading all the time; every read tolerates that (it is normal, not
an error). Tasks that live shorter than the poll interval are not seen at all:
tier 2's lifetime probe counts them exactly.

The sampler measures its own cost (wall, CPU, bytes read) and adapts its poll
interval so it stays within a CPU budget.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from schedcp.errors import InvalidArgument, NotFound, PermissionDenied
from schedcp.v1 import profile_pb2
from services.observer.untrusted import clean_argv, clean_text

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Tasks whose (run + wait) share of their observed time is at least this want a CPU all the time.
CPU_BOUND_SHARE = 0.8
#: Interactive: on CPU less than this share, waking at least INTERACTIVE_WAKEUPS_PER_S.
INTERACTIVE_SHARE = 0.3
INTERACTIVE_WAKEUPS_PER_S = 10.0
MAX_COMMS = 256
MAX_IDENTITY_PIDS = 64
#: Bytes of a cmdline read at most: argv can be megabytes, and it is untrusted.
CMDLINE_READ_LIMIT = 1 << 16


# --------------------------------------------------------------------- parsing
# Pure functions over file contents, so they are unit-tested without /proc.


@dataclass(frozen=True)
class StatLine:
    """The fields of /proc/<pid>/stat the observer uses."""

    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    utime: int
    stime: int
    num_threads: int
    starttime: int
    blkio_ticks: int
    cutime: int = 0
    cstime: int = 0


def parse_stat(text: str) -> StatLine:
    """Parse /proc/<pid>[/task/<tid>]/stat; comm may hold spaces and parentheses."""
    lpar = text.index("(")
    rpar = text.rindex(")")
    pid = int(text[:lpar])
    comm = text[lpar + 1 : rpar]
    rest = text[rpar + 2 :].split()
    # rest[0] is field 3 (state); field N is rest[N - 3].
    blkio = int(rest[39]) if len(rest) > 39 else 0
    return StatLine(
        pid=pid,
        comm=comm,
        state=rest[0],
        ppid=int(rest[1]),
        pgrp=int(rest[2]),
        utime=int(rest[11]),
        stime=int(rest[12]),
        num_threads=int(rest[17]),
        starttime=int(rest[19]),
        blkio_ticks=blkio,
        cutime=int(rest[13]),
        cstime=int(rest[14]),
    )


def parse_schedstat(text: str) -> tuple[int, int, int]:
    """(run_ns, run_delay_ns, timeslices) from /proc/<pid>/schedstat."""
    a, b, c = text.split()[:3]
    return int(a), int(b), int(c)


def parse_ctxt(text: str) -> tuple[int, int]:
    """(voluntary, involuntary) context switches from /proc/<pid>/status."""
    vol = invol = 0
    for line in text.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            vol = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            invol = int(line.split()[1])
    return vol, invol


def parse_psi(text: str) -> dict[str, float]:
    """{"some_avg10": .., "some_total_us": .., "full_avg10": ..} from a pressure file."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        kind = parts[0]
        for kv in parts[1:]:
            k, _, v = kv.partition("=")
            key = f"{kind}_{k}" if k != "total" else f"{kind}_total_us"
            out[key] = float(v)
    return out


def parse_meminfo(text: str) -> dict[str, int]:
    """kB values of /proc/meminfo by name."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields:
            out[name] = int(fields[0])
    return out


@dataclass(frozen=True)
class ProcStat:
    """Node-wide counters from /proc/stat."""

    cpu_ticks: tuple[int, ...]  # user nice system idle iowait irq softirq steal
    ctxt: int
    processes: int
    procs_running: int


def parse_proc_stat(text: str) -> ProcStat:
    cpu: tuple[int, ...] = ()
    ctxt = processes = running = 0
    for line in text.splitlines():
        if line.startswith("cpu "):
            cpu = tuple(int(x) for x in line.split()[1:9])
        elif line.startswith("ctxt "):
            ctxt = int(line.split()[1])
        elif line.startswith("processes "):
            processes = int(line.split()[1])
        elif line.startswith("procs_running "):
            running = int(line.split()[1])
    return ProcStat(cpu, ctxt, processes, running)


def parse_cpu_stat(text: str) -> dict[str, int]:
    """A cgroup v2 cpu.stat as a dict (usage_usec, nr_throttled, ...)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[idx]


# --------------------------------------------------------------------- reading


class CountingReader:
    """Reads small pseudo-files, counting bytes; a vanished file reads as None."""

    def __init__(self) -> None:
        self.bytes_read = 0
        self.files_read = 0

    def read(self, path: str) -> str | None:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", errors="surrogateescape")

    def read_bytes(self, path: str, limit: int = 65536) -> bytes | None:
        try:
            with open(path, "rb", buffering=0) as f:
                data = f.read(limit)
        except (FileNotFoundError, ProcessLookupError):
            return None
        except OSError as exc:
            # ESRCH from a task dying mid-read, EACCES on other users' files.
            if exc.errno in (3, 13, 1):
                return None
            raise
        self.bytes_read += len(data)
        self.files_read += 1
        return data


# --------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """What to observe: exactly one of a pid tree, a cgroup, or the node."""

    pid: int | None = None
    cgroup: str | None = None
    node: bool = False

    def __post_init__(self) -> None:
        chosen = sum([self.pid is not None, self.cgroup is not None, self.node])
        if chosen != 1:
            raise InvalidArgument(
                "choose exactly one of a pid, a cgroup or the node to observe",
                hint="pass --pid PID, --cgroup PATH or -- CMD...",
            )
        if self.pid is not None and self.pid <= 0:
            raise InvalidArgument(f"pid {self.pid} is not a valid process id", hint="use a positive pid")

    def describe(self) -> str:
        if self.pid is not None:
            return f"pid {self.pid}"
        if self.cgroup is not None:
            return f"cgroup {clean_text(self.cgroup)}"
        return "node"


def cgroup2_mount(mountinfo: str | None = None) -> Path:
    """Where the cgroup v2 hierarchy is mounted (hybrid hosts use .../unified)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            mountinfo = ""
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split()[4])
    return Path("/sys/fs/cgroup")


def resolve_cgroup(path: str, *, mount: Path | None = None) -> Path:
    """Turn a user-given cgroup (absolute dir, or relative to the v2 mount) into a checked dir."""
    if not path or len(path) > 4096 or "\0" in path:
        raise InvalidArgument("the cgroup path is empty, too long or contains NUL",
                              hint="pass a cgroup v2 directory such as /sys/fs/cgroup/system.slice")
    mount = mount or cgroup2_mount()
    p = Path(path)
    if not p.is_absolute() or not str(p).startswith(str(mount)):
        p = mount / path.lstrip("/")
    try:
        resolved = p.resolve(strict=True)
    except FileNotFoundError:
        raise NotFound(f"cgroup {clean_text(path)} does not exist under {mount}",
                       hint="list existing cgroups with `ls` under the cgroup v2 mount") from None
    except OSError as exc:
        raise PermissionDenied(f"cgroup {clean_text(path)} cannot be opened: {exc.strerror}",
                               hint="run the observer as root or pick a readable cgroup") from None
    if not str(resolved).startswith(str(mount.resolve())):
        raise InvalidArgument(f"cgroup {clean_text(path)} resolves outside the cgroup v2 mount {mount}",
                              hint="pass a directory inside the cgroup v2 hierarchy")
    try:
        (resolved / "cgroup.procs").read_bytes()
    except PermissionError:
        raise PermissionDenied(f"cgroup {clean_text(path)} is not readable",
                               hint="run the observer as root or pick a readable cgroup") from None
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"{clean_text(str(resolved))} is not a cgroup v2 directory (no cgroup.procs)",
                       hint=f"cgroup v2 is mounted at {mount}") from None
    return resolved


# --------------------------------------------------------------------- samples


@dataclass
class TaskSample:
    tgid: int
    tid: int
    comm: str
    state: str
    starttime: int
    cpu_ticks: int
    run_ns: int
    delay_ns: int
    slices: int
    vol: int
    invol: int
    #: cutime + cstime of the process (same in every thread's stat): CPU of
    #: the children it has reaped, in clock ticks.
    reaped_ticks: int = 0


@dataclass
class TaskTrack:
    """What the sampler remembers about one task across polls."""

    first: TaskSample
    last: TaskSample
    first_seen: float
    last_seen: float
    present_at_start: bool
    samples: int = 1
    d_state_samples: int = 0
    exited_at: float | None = None


@dataclass
class Tier1Result:
    """A tier-1 observation: features, identity, what it cost, and the pids seen."""

    features: profile_pb2.WorkloadFeatures
    identity: profile_pb2.WorkloadIdentity
    cost: profile_pb2.AnalysisCost
    window_seconds: float
    tgids: set[int] = field(default_factory=set)
    cgroup_dir: Path | None = None
    polls: int = 0
    comms: dict[str, float] = field(default_factory=dict)


Clock = Callable[[], float]


class Tier1Sampler:
    """Polls /proc and /sys for one target over a window and summarises it as rates."""

    def __init__(self, *, proc: str = "/proc", poll_interval: float = 0.1,
                 cpu_budget: float = 0.05, exclude_self: bool = True,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._proc = proc
        self._poll = poll_interval
        self._budget = cpu_budget
        self._exclude = {os.getpid()} if exclude_self else set()
        self._sleep = sleep

    # -- enumeration -------------------------------------------------------

    def _all_stats(self, r: CountingReader) -> dict[int, StatLine]:
        out: dict[int, StatLine] = {}
        for name in os.listdir(self._proc):
            if not name.isdigit():
                continue
            text = r.read(f"{self._proc}/{name}/stat")
            if text:
                try:
                    out[int(name)] = parse_stat(text)
                except (ValueError, IndexError):
                    continue
        return out

    def _tree_tgids(self, r: CountingReader, root: int, known: dict[int, int]) -> set[int]:
        """Descendants of ``root`` plus previously seen members still alive (reparented orphans)."""
        stats = self._all_stats(r)
        children: dict[int, list[int]] = {}
        for pid, st in stats.items():
            children.setdefault(st.ppid, []).append(pid)
        members: set[int] = set()
        seeds = [root] + [p for p, start in known.items() if p in stats and stats[p].starttime == start]
        stack = [p for p in seeds if p in stats]
        while stack:
            pid = stack.pop()
            if pid in members:
                continue
            members.add(pid)
            stack.extend(children.get(pid, ()))
        for pid in members:
            known.setdefault(pid, stats[pid].starttime)
        return members

    def _cgroup_tgids(self, r: CountingReader, cg: Path) -> set[int]:
        out: set[int] = set()
        for dirpath, _dirs, _files in os.walk(cg):
            text = r.read(os.path.join(dirpath, "cgroup.procs"))
            if text:
                out.update(int(x) for x in text.split() if x.isdigit())
        return out

    def _node_tgids(self, r: CountingReader) -> set[int]:
        stats = self._all_stats(r)
        # Kernel threads (children of kthreadd, pid 2) are not a workload.
        return {p for p, st in stats.items() if p != 2 and st.ppid != 2}

    def _read_tasks(self, r: CountingReader, tgid: int) -> list[TaskSample]:
        base = f"{self._proc}/{tgid}/task"
        try:
            tids = os.listdir(base)
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            return []
        except PermissionError:
            return []
        out: list[TaskSample] = []
        for name in tids:
            stat = r.read(f"{base}/{name}/stat")
            sched = r.read(f"{base}/{name}/schedstat")
            status = r.read(f"{base}/{name}/status")
            if not stat or not sched or not status:
                continue  # exited between listing and reading
            try:
                st = parse_stat(stat)
                run, delay, slices = parse_schedstat(sched)
                vol, invol = parse_ctxt(status)
            except (ValueError, IndexError):
                continue
            if st.state in ("Z", "X"):
                continue  # dead, just not reaped yet: it has exited
            out.append(TaskSample(tgid, st.pid, st.comm, st.state, st.starttime,
                                  st.utime + st.stime, run, delay, slices, vol, invol,
                                  st.cutime + st.cstime))
        return out

    # -- main loop ---------------------------------------------------------

    def observe(self, target: Target, window: float, *, stop: Callable[[], bool] | None = None,
                max_tasks: int = 20000) -> Tier1Result:
        """Poll ``target`` for ``window`` seconds (or until ``stop()``), return its summary.

        Raises NotFound when the pid or cgroup does not exist at the start, and
        PermissionDenied when it cannot be read. A workload that ends during
        the window is not an error: the summary covers the time it lived.
        """
        if not (0.05 <= window <= 3600):
            raise InvalidArgument(f"window {window} s is out of range",
                                  hint="use a window between 0.05 and 3600 seconds")
        r = CountingReader()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.monotonic()
        cg_dir: Path | None = None
        identity = profile_pb2.WorkloadIdentity()
        if target.cgroup is not None:
            cg_dir = resolve_cgroup(target.cgroup)
            identity.cgroup = clean_text(str(cg_dir))
            identity.name = clean_text(cg_dir.name or "/")
        elif target.pid is not None:
            st = r.read(f"{self._proc}/{target.pid}/stat")
            if st is None:
                raise NotFound(f"process {target.pid} does not exist (it may have exited)",
                               hint="check the pid with `ps -p PID` and observe a running process")
            self._fill_identity(r, target.pid, identity)
        else:
            identity.name = "node"

        known: dict[int, int] = {}

        def members() -> set[int]:
            if cg_dir is not None:
                return self._cgroup_tgids(r, cg_dir)
            if target.pid is not None:
                return self._tree_tgids(r, target.pid, known)
            return self._node_tgids(r)

        node0 = self._node_counters(r)
        cg0 = self._cgroup_counters(r, cg_dir)
        tracks: dict[tuple[int, int], TaskTrack] = {}
        all_tgids: set[int] = set()
        comms: dict[str, float] = {}
        max_threads = max_procs = 0
        polls = 0
        empty_polls = 0
        start = time.monotonic()
        boot_offset = time.clock_gettime(time.CLOCK_BOOTTIME) - start
        deadline = start + window
        interval = self._poll
        while True:
            t_poll = time.monotonic()
            cpu_poll = time.thread_time()
            tgids = members() - self._exclude
            seen: set[tuple[int, int]] = set()
            nthreads = 0
            for tgid in sorted(tgids):
                for s in self._read_tasks(r, tgid):
                    key = (s.tid, s.starttime)
                    seen.add(key)
                    nthreads += 1
                    tr = tracks.get(key)
                    if tr is None:
                        if len(tracks) >= max_tasks:
                            continue
                        tracks[key] = tr = TaskTrack(first=s, last=s, first_seen=t_poll, last_seen=t_poll,
                                                     present_at_start=(polls == 0))
                    else:
                        tr.last = s
                        tr.last_seen = t_poll
                        tr.samples += 1
                    if s.state == "D":
                        tr.d_state_samples += 1
                    if len(comms) < MAX_COMMS or s.comm in comms:
                        comms[s.comm] = comms.get(s.comm, 0.0)
            for key, tr in tracks.items():
                if tr.exited_at is None and key not in seen:
                    # Died between the previous poll and this one: take the midpoint.
                    tr.exited_at = (tr.last_seen + t_poll) / 2
            all_tgids |= tgids
            max_threads = max(max_threads, nthreads)
            max_procs = max(max_procs, len(tgids))
            polls += 1
            now = time.monotonic()
            cost = now - t_poll
            # Keep the sampler's own CPU share near the budget on big trees. CPU
            # time, not wall: on a busy node a poll waits for a CPU too.
            cpu_cost = time.thread_time() - cpu_poll
            interval = max(self._poll, cpu_cost / self._budget if self._budget > 0 else self._poll)
            # The tree is gone once two polls in a row find nothing (one empty
            # read can be a transient race, e.g. during exec).
            empty_polls = empty_polls + 1 if not seen else 0
            if now >= deadline or (stop is not None and stop()) or (
                    target.pid is not None and empty_polls >= 2):
                break
            self._sleep(max(0.0, min(interval - cost, deadline - now)))
        end = time.monotonic()
        elapsed = max(end - start, 1e-3)
        node1 = self._node_counters(r)
        cg1 = self._cgroup_counters(r, cg_dir)
        if target.pid is not None and not tracks:
            raise NotFound(f"process {target.pid} exited before it could be observed",
                           hint="observe a longer-running process, or launch it with `schedcp observe -- CMD`")

        feats = self._features(tracks, elapsed, start, boot_offset, node0, node1, cg0, cg1,
                               target, max_threads, max_procs, comms)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cost = profile_pb2.AnalysisCost(
            tier=profile_pb2.TIER_SUMMARY,
            wall_seconds=time.monotonic() - wall0,
            cpu_seconds=(ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
            memory_bytes=r.bytes_read,
            tools=["procfs", "cgroupfs" if cg_dir else "procfs-tree"] if target.node is False else ["procfs"],
        )
        cost.overhead_pct = 100.0 * cost.cpu_seconds / (elapsed * max(1, feats.node_cpus))
        for pid in sorted(all_tgids)[:MAX_IDENTITY_PIDS]:
            identity.pids.append(pid)
        # Each comm's CPU share, for descriptions and triggers.
        for tr in tracks.values():
            c = tr.last.comm
            if c in comms:
                comms[c] += self._delta_run(tr) / 1e9
        return Tier1Result(features=feats, identity=identity, cost=cost, window_seconds=elapsed,
                           tgids=all_tgids, cgroup_dir=cg_dir, polls=polls, comms=comms)

    # -- helpers -----------------------------------------------------------

    def _fill_identity(self, r: CountingReader, pid: int, identity: profile_pb2.WorkloadIdentity) -> None:
        raw = r.read_bytes(f"{self._proc}/{pid}/cmdline", limit=CMDLINE_READ_LIMIT + 1) or b""
        identity.cmdline.extend(clean_argv(raw[:CMDLINE_READ_LIMIT]))
        if len(raw) > CMDLINE_READ_LIMIT:
            identity.cmdline.append(f"…(cmdline longer than {CMDLINE_READ_LIMIT} bytes, truncated)")
        comm = r.read_bytes(f"{self._proc}/{pid}/comm") or b""
        identity.comm = clean_text(comm.rstrip(b"\n"), limit=64)
        cg = r.read_bytes(f"{self._proc}/{pid}/cgroup") or b""
        for line in cg.split(b"\n"):
            if line.startswith(b"0::"):
                identity.cgroup = clean_text(line[3:])
        label = " ".join(identity.cmdline[:4]) or identity.comm
        identity.name = clean_text(label, limit=80)

    def _node_counters(self, r: CountingReader) -> ProcStat | None:
        text = r.read(f"{self._proc}/stat")
        return parse_proc_stat(text) if text else None

    def _cgroup_counters(self, r: CountingReader, cg: Path | None) -> dict[str, int] | None:
        if cg is None:
            return None
        text = r.read(str(cg / "cpu.stat"))
        return parse_cpu_stat(text) if text else None

    @staticmethod
    def _delta_run(tr: TaskTrack) -> int:
        base = tr.first.run_ns if tr.present_at_start else 0
        return max(0, tr.last.run_ns - base)

    def _features(self, tracks: dict[tuple[int, int], TaskTrack], elapsed: float, start: float,
                  boot_offset: float, node0: ProcStat | None, node1: ProcStat | None,
                  cg0: dict[str, int] | None, cg1: dict[str, int] | None, target: Target,
                  max_threads: int, max_procs: int, comms: dict[str, float]) -> profile_pb2.WorkloadFeatures:
        f = profile_pb2.WorkloadFeatures()
        ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        try:
            ncpu = os.cpu_count() or ncpu
        except Exception:  # noqa: BLE001 - cpu_count never matters enough to fail
            pass
        f.node_cpus = ncpu
        run = delay = slices = vol = invol = 0
        short_cpu = 0
        births = exits = 0
        lifetimes: list[float] = []
        d_samples = total_samples = 0
        cpu_bound = interactive = 0
        for tr in tracks.values():
            born = not tr.present_at_start
            b = tr.first
            d_run = self._delta_run(tr)
            d_delay = tr.last.delay_ns - (b.delay_ns if not born else 0)
            d_slices = tr.last.slices - (b.slices if not born else 0)
            d_vol = tr.last.vol - (b.vol if not born else 0)
            d_invol = tr.last.invol - (b.invol if not born else 0)
            run += d_run
            delay += max(0, d_delay)
            slices += max(0, d_slices)
            vol += max(0, d_vol)
            invol += max(0, d_invol)
            if born:
                births += 1
                short_cpu += d_run
            if tr.exited_at is not None:
                exits += 1
                if born:
                    # starttime is in clock ticks since boot; align it to monotonic time.
                    started = tr.first.starttime / CLK_TCK - boot_offset
                    lifetimes.append(max(0.0, (tr.exited_at - max(started, start - 1.0)) * 1e3))
            d_samples += tr.d_state_samples
            total_samples += tr.samples
            # Per-thread shape over the time this task was observed.
            t0 = tr.first_seen if not born else max(start, tr.first.starttime / CLK_TCK - boot_offset)
            t1 = tr.exited_at if tr.exited_at is not None else tr.last_seen
            observed = max(t1 - t0, 0.0)
            if observed >= min(0.5, elapsed / 2):
                share_run = d_run / 1e9 / observed
                share_want = (d_run + max(0, d_delay)) / 1e9 / observed
                if share_want >= CPU_BOUND_SHARE:
                    cpu_bound += 1
                elif share_run < INTERACTIVE_SHARE and d_vol / observed >= INTERACTIVE_WAKEUPS_PER_S:
                    interactive += 1
        cpu_s = run / 1e9
        # Children that live for less than a poll interval (a batch of short
        # jobs, compiler processes) are never sampled, but a process that
        # reaps them accumulates their CPU in cutime/cstime: the CPU of live
        # tasks plus what the workload's processes reaped is a second,
        # poll-independent estimate (capped at what the CPUs could give).
        alive_run = sum(self._delta_run(tr) for tr in tracks.values() if tr.exited_at is None)
        reaped = sum(tr.last.reaped_ticks - (tr.first.reaped_ticks if tr.present_at_start else 0)
                     for tr in tracks.values() if tr.first.tid == tr.first.tgid and tr.exited_at is None)
        cpu_s = max(cpu_s, min(alive_run / 1e9 + max(0, reaped) / CLK_TCK, elapsed * max(1, ncpu)))
        if cg0 and cg1 and "usage_usec" in cg0 and "usage_usec" in cg1:
            # The cgroup counter also covers tasks too short-lived to be polled.
            cpu_s = max(cpu_s, (cg1["usage_usec"] - cg0["usage_usec"]) / 1e6)
        f.cpu_seconds = cpu_s
        f.cpu_utilization = cpu_s / elapsed
        f.thread_count = max_threads
        f.process_count = max_procs
        f.runqueue_wait_us_mean = (delay / 1e3 / slices) if slices else 0.0
        f.runqueue_wait_fraction = delay / (delay + run) if (delay + run) else 0.0
        f.voluntary_ctx_switches_per_s = vol / elapsed
        f.involuntary_ctx_switches_per_s = invol / elapsed
        # Every voluntary sleep ends in a wakeup; each new task is woken once too.
        f.wakeups_per_s = (vol + births) / elapsed
        if target.node and node0 and node1:
            f.task_births_per_s = (node1.processes - node0.processes) / elapsed
            f.voluntary_ctx_switches_per_s = max(f.voluntary_ctx_switches_per_s, 0.0)
        else:
            f.task_births_per_s = births / elapsed
        f.task_exits_per_s = exits / elapsed
        lifetimes.sort()
        if lifetimes:
            f.task_lifetime_ms_mean = sum(lifetimes) / len(lifetimes)
            f.task_lifetime_ms_p50 = percentile(lifetimes, 0.5)
            f.task_lifetime_ms_p99 = percentile(lifetimes, 0.99)
        f.completed_tasks = len(lifetimes)
        if target.node and node0 and node1 and node0.cpu_ticks and node1.cpu_ticks:
            d = [b - a for a, b in zip(node0.cpu_ticks, node1.cpu_ticks, strict=False)]
            tot = sum(d) or 1
            f.io_wait_fraction = d[4] / tot
            f.cpu_utilization = (tot - d[3] - d[4]) / tot * ncpu
            f.cpu_seconds = f.cpu_utilization * elapsed
        else:
            f.io_wait_fraction = d_samples / total_samples if total_samples else 0.0
        f.cpu_bound_threads = cpu_bound
        f.interactive_threads = interactive
        f.distinct_comms = len(comms)
        f.run_burst_us_mean = cpu_s * 1e6 / max(1, vol + exits)
        f.short_task_cpu_fraction = (short_cpu / run) if run else 0.0
        self._fill_node(f, target)
        return f

    def _fill_node(self, f: profile_pb2.WorkloadFeatures, target: Target) -> None:
        r = CountingReader()
        psi_dir = "/proc/pressure"
        cg = None
        if target.cgroup is not None:
            try:
                cg = resolve_cgroup(target.cgroup)
            except Exception:  # noqa: BLE001 - the cgroup may be gone by now; fall back to node PSI
                cg = None
        for res, attr in (("cpu", "psi_cpu_some_avg10"), ("io", "psi_io_some_avg10"),
                          ("memory", "psi_memory_some_avg10")):
            text = r.read(str(cg / f"{res}.pressure")) if cg is not None else None
            if text is None:
                text = r.read(f"{psi_dir}/{res}")
            if text:
                setattr(f, attr, parse_psi(text).get("some_avg10", 0.0))
        la = r.read(f"{self._proc}/loadavg")
        if la:
            f.load_avg_1m = float(la.split()[0])
        mi = r.read(f"{self._proc}/meminfo")
        if mi:
            m = parse_meminfo(mi)
            total = m.get("MemTotal", 0)
            if total:
                f.memory_used_fraction = 1.0 - m.get("MemAvailable", total) / total
