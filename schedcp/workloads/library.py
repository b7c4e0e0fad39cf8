"""The reference workloads: one per workload class schedcp optimises for.

Sizes are in kilo-iterations of a fixed CPU loop ("kiter"): 1000 kiter is
about 1 ms of CPU natively and about 2-3.5 ms in a 2-vCPU TCG micro-VM
(measured: 300000 kiter in 0.58 s, 50000 in 0.17 s). Starting a process costs
20-30 ms there (spawn and exec; it was 70-250 ms while the VM's virtiofs
dropped file pages on every open), so workloads that spawn keep their tasks'
work large against that. A job with a working set (``-m``, see cpuburn.c)
runs about 2.5-3x slower per kiter in the guest. The defaults make one run
take roughly 3-15 s inside the micro-VM; on a host a run is correspondingly
shorter (pass bigger sizes there for steadier numbers).
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping

from schedcp.workloads.native import ensure_native, native_alias
from schedcp.workloads.spec import MetricSpec, ParamSpec, WorkloadError, WorkloadSpec

KITER = 1000

# --------------------------------------------------------------------------
# helpers


def _run_native(name: str, args: list[str], timeout: float) -> dict[str, float]:
    binary = ensure_native(name, build=False)
    try:
        proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WorkloadError(f"{name} did not finish within {timeout:.0f} s",
                            hint="the scheduler may be starving it; try smaller parameters") from None
    if proc.returncode != 0:
        raise WorkloadError(f"{name} exited {proc.returncode}", hint=proc.stderr.strip()[-500:])
    try:
        return {k: float(v) for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    except (ValueError, IndexError) as exc:
        raise WorkloadError(f"{name} printed no JSON metrics: {proc.stdout[-300:]!r}") from exc


class _TaskPool:
    """Spawns cpuburn tasks and collects each one's own start/finish times.

    Every child writes "ID START_NS END_NS" to one shared pipe; its finish
    time is therefore the time its work ended, not when we reaped it. The
    pipe is drained after every reap: left until the end, a few thousand
    tasks fill its 64 KiB and the next child blocks in write() forever.
    """

    def __init__(self) -> None:
        self.binary = str(ensure_native("cpuburn", build=False))
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.running: dict[int, int] = {}  # pid -> task id
        self._buffer = b""
        self.finished: dict[int, tuple[int, int]] = {}
        self.ready = 0  # tasks waiting at their gate

    def spawn(self, task_id: int, kiter: int, *, gate_fd: int | None = None, mem_kib: int = 0,
              program: str | None = None) -> None:
        """Start one task; with ``gate_fd`` (a pipe's read end) it waits, spawned
        but idle, until the pipe's write end is closed (:meth:`open_gate`);
        with ``mem_kib`` it works over a working set of that size; with
        ``program`` it runs under that name (one of cpuburn's aliases)."""
        actions = [(os.POSIX_SPAWN_DUP2, self.write_fd, 1)]
        binary = str(native_alias("cpuburn", program, build=False)) if program else self.binary
        argv = [binary, *(["-m", str(mem_kib)] if mem_kib else []), str(kiter * KITER), str(task_id)]
        if gate_fd is not None:
            actions.append((os.POSIX_SPAWN_DUP2, gate_fd, 0))
            argv.append("gate")
        pid = os.posix_spawn(binary, argv, os.environ, file_actions=actions)
        self.running[pid] = task_id

    def wait_ready(self, count: int, timeout: float = 600.0) -> None:
        """Block until ``count`` gated tasks are loaded and waiting."""
        deadline = time.monotonic() + timeout
        while self.ready < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkloadError(f"only {self.ready} of {count} tasks reached their start gate "
                                    f"within {timeout:.0f} s")
            select.select([self.read_fd], [], [], min(left, 1.0))
            self._drain()
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid:  # a task exited before its gate opened: it cannot have worked
                raise WorkloadError(f"task {self.running.get(pid)} (cpuburn) exited before the start "
                                    f"(status {status})")

    @staticmethod
    def open_gate(write_fd: int) -> None:
        """Release every task waiting on this gate at once (they read EOF)."""
        os.close(write_fd)

    def wait_one(self) -> int:
        """Block until one task exits; returns its id."""
        pid, status = os.waitpid(-1, 0)
        task_id = self.running.pop(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            raise WorkloadError(f"task {task_id} (cpuburn) failed with status {status}")
        self._drain()
        return task_id

    def _drain(self) -> None:
        """Parse every complete line now in the pipe; keep a partial one."""
        while True:
            try:
                chunk = os.read(self.read_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"R "):
                self.ready += 1
            elif line.strip():
                task, start, end = (int(x) for x in line.split())
                self.finished[task] = (start, end)

    def close(self) -> dict[int, tuple[int, int]]:
        """Collect every reported (start_ns, end_ns) by task id."""
        os.close(self.write_fd)
        self._drain()
        os.close(self.read_fd)
        if self._buffer.strip():
            raise WorkloadError(f"a task's report was cut short: {self._buffer[:80]!r}")
        return self.finished


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# --------------------------------------------------------------------------
# wakeup-latency server


def _wakeup_server(p: Mapping[str, int]) -> dict[str, float]:
    out = _run_native("wakeup_server", [
        "-m", str(p["message_threads"]), "-w", str(p["workers"]), "-b", str(p["burst_kiter"] * KITER),
        "-r", str(p["runtime_s"]), "-W", str(p["warmup_s"]), "-H", str(p["hogs"]),
    ], timeout=p["runtime_s"] + p["warmup_s"] + 120)
    return out


WAKEUP_SERVER = WorkloadSpec(
    name="wakeup-server",
    workload_class="LATENCY_SERVER",
    summary="schbench-like: message threads post requests to more workers than CPUs; "
            "workers' wakeup latency and request rate.",
    metrics=(
        MetricSpec("requests_per_s", "req/s", True, "requests completed per second"),
        MetricSpec("wakeup_p50_us", "us", False, "median time from posting a request until its worker runs"),
        MetricSpec("wakeup_p99_us", "us", False, "99th percentile wakeup latency"),
        MetricSpec("wakeup_p999_us", "us", False, "99.9th percentile wakeup latency"),
    ),
    params=(
        ParamSpec("message_threads", 2, "message (dispatcher) threads", minimum=1, maximum=64),
        ParamSpec("workers", 4, "worker threads per message thread", minimum=1, maximum=256),
        ParamSpec("burst_kiter", 20, "CPU work per request, kiter", minimum=0),
        ParamSpec("runtime_s", 6, "measured seconds", minimum=1, maximum=3600),
        ParamSpec("warmup_s", 1, "unmeasured seconds before measuring", minimum=0, maximum=600),
        ParamSpec("hogs", 0, "CPU hog processes competing with the server", minimum=0, maximum=64),
    ),
    primary_metric="wakeup_p99_us",
    natives=("wakeup_server",),
    execute=_wakeup_server,
)

# --------------------------------------------------------------------------
# parallel build


def build_dag(p: Mapping[str, int]) -> list[tuple[int, list[int]]]:
    """A make-like job graph: (kiter, dependency indices) per job, in order.

    A short serial configure chain, then ``units`` compile jobs of skewed
    sizes (a few big translation units, many small), one link step per library
    over its group of units, and a final link over all libraries: the shape
    of a kernel or C++ build with its serial head and tail.
    """
    rng = random.Random(p["seed"])
    jobs: list[tuple[int, list[int]]] = []
    for i in range(p["configure_steps"]):
        jobs.append((p["link_kiter"], [i - 1] if i else []))
    head = [len(jobs) - 1] if jobs else []
    units = []
    for _ in range(p["units"]):
        size = int(p["unit_kiter"] * rng.lognormvariate(0, 0.8))
        units.append(len(jobs))
        jobs.append((max(1, size), list(head)))
    libs = []
    groups = max(1, p["libraries"])
    for g in range(groups):
        members = units[g::groups]
        libs.append(len(jobs))
        jobs.append((p["link_kiter"], members))
    jobs.append((p["link_kiter"] * 3, libs))
    return jobs


def build_programs(p: Mapping[str, int]) -> list[str]:
    """The program each job of :func:`build_dag` runs as, in the same order."""
    return (["configure"] * p["configure_steps"] + ["cc1"] * p["units"]
            + ["ar"] * max(1, p["libraries"]) + ["ld"])


def _parallel_build(p: Mapping[str, int]) -> dict[str, float]:
    jobs = build_dag(p)
    programs = build_programs(p)
    waiting = {i: set(deps) for i, (_, deps) in enumerate(jobs)}
    dependents: dict[int, list[int]] = {i: [] for i in range(len(jobs))}
    for i, (_, deps) in enumerate(jobs):
        for d in deps:
            dependents[d].append(i)
    ready = [i for i, deps in waiting.items() if not deps]
    pool = _TaskPool()
    t0 = time.monotonic_ns()
    done = 0
    # make -j: keep up to `jobs` children running, lowest-numbered ready first.
    while done < len(jobs):
        while ready and len(pool.running) < p["jobs"]:
            ready.sort()
            job = ready.pop(0)
            pool.spawn(job, jobs[job][0], mem_kib=p["job_mem_kib"], program=programs[job])
        finished = pool.wait_one()
        done += 1
        for nxt in dependents[finished]:
            waiting[nxt].discard(finished)
            if not waiting[nxt]:
                ready.append(nxt)
    times = pool.close()
    end = max(e for _, e in times.values())
    busy = sum(e - s for s, e in times.values())
    return {"makespan_s": (end - t0) / 1e9, "_jobs": float(len(jobs)),
            "_mean_job_wall_ms": busy / len(times) / 1e6}


PARALLEL_BUILD = WorkloadSpec(
    name="parallel-build",
    workload_class="PARALLEL_BUILD",
    summary="make -j over a dependency DAG of short compiler-like processes (fork/exec, each with "
            "a working set); makespan.",
    metrics=(MetricSpec("makespan_s", "s", False, "time from the first job's start to the last job's end"),),
    params=(
        ParamSpec("units", 32, "compile jobs", minimum=1, maximum=5000),
        ParamSpec("unit_kiter", 15000, "median compile job size, kiter (log-normal spread)", minimum=1),
        ParamSpec("libraries", 4, "link steps over groups of units", minimum=1, maximum=500),
        ParamSpec("link_kiter", 8000, "size of a configure or link step, kiter", minimum=1),
        ParamSpec("configure_steps", 2, "serial steps before compiling", minimum=0, maximum=50),
        ParamSpec("jobs", 4, "parallel jobs (make -j)", minimum=1, maximum=512),
        ParamSpec("seed", 1, "seed of the job sizes", minimum=0),
        # A compiler walks its data structures: with a working set, what a job
        # costs depends on whether the caches and TLB still hold it when it
        # runs again, i.e. on how often the scheduler switches between jobs.
        ParamSpec("job_mem_kib", 8192, "working set of each job, KiB (0: pure ALU work)", minimum=0,
                  maximum=1 << 20),
    ),
    primary_metric="makespan_s",
    natives=("cpuburn",),
    execute=_parallel_build,
)

# --------------------------------------------------------------------------
# batch long-tail


def batch_tasks(p: Mapping[str, int]) -> list[int]:
    """Task sizes (kiter) in launch order: shorts and longs, seeded shuffle."""
    sizes = [p["short_kiter"]] * p["short_tasks"] + [p["long_kiter"]] * p["long_tasks"]
    random.Random(p["seed"]).shuffle(sizes)
    return sizes


#: The hint map a size-aware scheduler exposes: tgid (u32) -> expected CPU ms (u64).
HINT_MAP = "ljf_hints"


def _publish_size_hints(sizes_by_pid: Mapping[int, int]) -> int:
    """Tell a loaded size-aware scheduler each task's expected CPU time, the
    way a batch system passes on its users' runtime estimates.

    One ``bpftool batch`` for all tasks (each exec costs a lot in a guest).
    Returns how many hints were written; 0 when no scheduler has the map
    (EEVDF, or a scheduler without hints), which is not an error.
    """
    bpftool = shutil.which("bpftool") or next(
        (c for c in ("/usr/sbin/bpftool", "/sbin/bpftool") if os.path.exists(c)), None)
    if not bpftool or not sizes_by_pid:
        return 0
    lines = []
    for pid, kiter in sizes_by_pid.items():
        key = " ".join(f"0x{b:02x}" for b in pid.to_bytes(4, "little"))
        value = " ".join(f"0x{b:02x}" for b in max(1, kiter // 1000).to_bytes(8, "little"))
        lines.append(f"map update name {HINT_MAP} key {key} value {value}")
    # A file, not /dev/stdin: a minimal guest has no /dev/stdin.
    with tempfile.NamedTemporaryFile("w", prefix="schedcp-hints-", suffix=".txt") as batch:
        batch.write("\n".join(lines) + "\n")
        batch.flush()
        proc = subprocess.run([bpftool, "batch", "file", batch.name], capture_output=True, text=True,
                              timeout=120)
    return len(lines) if proc.returncode == 0 else 0


def _batch_long_tail(p: Mapping[str, int]) -> dict[str, float]:
    sizes = batch_tasks(p)
    waves = max(1, p["waves"])
    per_wave = -(-len(sizes) // waves)
    wave_of = [i // per_wave for i in range(len(sizes))]
    pool = _TaskPool()
    hints = 0
    if p["together"]:
        # Every task is spawned first, waiting on its wave's gate; the batch
        # starts when the gate opens. Spawning costs tens of ms per task in a
        # TCG guest (about as much as a short task's work), so tasks started
        # as the launcher gets to them would measure the launcher instead.
        gates = [os.pipe() for _ in range(waves)]
        for task_id, size in enumerate(sizes):
            pool.spawn(task_id, size, gate_fd=gates[wave_of[task_id]][0])
        for read_fd, _ in gates:
            os.close(read_fd)
        # A spawned process still loads for a while (hundreds of ms under
        # TCG) before it reaches the gate: wait for all of them.
        pool.wait_ready(len(sizes))
        if p["hints"]:
            hints = _publish_size_hints({pid: sizes[tid] for pid, tid in pool.running.items()})
    t0 = time.monotonic_ns()
    launched = 0
    for w in range(waves):
        # Later waves arrive on a fixed clock, like jobs submitted over time.
        target = t0 + w * p["wave_gap_ms"] * 1_000_000
        delay = (target - time.monotonic_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        if p["together"]:
            pool.open_gate(gates[w][1])
            continue
        for task_id in range(launched, min(len(sizes), launched + per_wave)):
            pool.spawn(task_id, sizes[task_id])
        launched = min(len(sizes), launched + per_wave)
    spawned = time.monotonic_ns()
    while pool.running:
        pool.wait_one()
    times = pool.close()
    completion = [(times[i][1] - t0) / 1e9 for i in range(len(sizes))]
    short = [c for c, s in zip(completion, sizes, strict=True) if s == p["short_kiter"]]
    long_ = [c for c, s in zip(completion, sizes, strict=True) if s == p["long_kiter"]]
    return {
        "makespan_s": max(completion),
        "mean_completion_s": sum(completion) / len(completion),
        "_short_mean_completion_s": sum(short) / len(short) if short else 0.0,
        "_long_mean_completion_s": sum(long_) / len(long_) if long_ else 0.0,
        "_p95_completion_s": _percentile(completion, 95),
        # How long launching took (after the start when not `together`), and
        # when the last task began its work: a scheduler that starves the
        # launcher stretches the batch from the start.
        "_spawn_s": (spawned - t0) / 1e9,
        "_last_start_s": max((times[i][0] - t0) / 1e9 for i in range(len(sizes))),
        "_size_hints": float(hints),
    }


BATCH_LONG_TAIL = WorkloadSpec(
    name="batch-long-tail",
    workload_class="BATCH_LONG_TAIL",
    summary="many short tasks plus a few long ones started together (or in waves); "
            "makespan and mean completion time.",
    metrics=(
        MetricSpec("makespan_s", "s", False, "time until the last task finished"),
        MetricSpec("mean_completion_s", "s", False, "mean time from the batch start to each task's end"),
    ),
    params=(
        ParamSpec("short_tasks", 24, "short tasks", minimum=0, maximum=10000),
        ParamSpec("short_kiter", 20000, "work of a short task, kiter", minimum=1),
        ParamSpec("long_tasks", 3, "long tasks", minimum=0, maximum=1000),
        ParamSpec("long_kiter", 300000, "work of a long task, kiter", minimum=1),
        ParamSpec("waves", 1, "launch the tasks in this many waves", minimum=1, maximum=1000),
        ParamSpec("wave_gap_ms", 500, "time between waves, ms", minimum=0),
        ParamSpec("seed", 1, "seed of the launch order", minimum=0),
        ParamSpec("together", 1, "1: spawn every task first and start each wave at once; "
                  "0: each task starts as the launcher spawns it", minimum=0, maximum=1),
        ParamSpec("hints", 0, "1: before the start, write each task's size to a loaded scheduler's "
                  f"{HINT_MAP} map (needs together=1 and root)", minimum=0, maximum=1),
    ),
    primary_metric="makespan_s",
    natives=("cpuburn",),
    execute=_batch_long_tail,
)

# --------------------------------------------------------------------------
# interactive plus background


def _interactive(p: Mapping[str, int]) -> dict[str, float]:
    return _run_native("interactive", [
        "-p", str(p["period_us"]), "-b", str(p["burst_kiter"] * KITER), "-H", str(p["hogs"]),
        "-r", str(p["runtime_s"]), "-W", str(p["warmup_s"]),
    ], timeout=p["runtime_s"] + p["warmup_s"] + 120)


INTERACTIVE = WorkloadSpec(
    name="interactive",
    workload_class="INTERACTIVE_BACKGROUND",
    summary="a periodic foreground task (sleep, wake, tiny burst) under CPU hogs; "
            "its wakeup latency and the hogs' throughput.",
    metrics=(
        MetricSpec("fg_wakeup_p50_us", "us", False, "median lateness of the foreground wakeups"),
        MetricSpec("fg_wakeup_p99_us", "us", False, "99th percentile lateness of the foreground wakeups"),
        MetricSpec("hog_mops_per_s", "Miter/s", True, "CPU work the background hogs got done"),
    ),
    params=(
        ParamSpec("period_us", 10000, "foreground period, us", minimum=100),
        ParamSpec("burst_kiter", 20, "foreground work per wakeup, kiter", minimum=0),
        ParamSpec("hogs", 4, "background CPU hog processes", minimum=0, maximum=256),
        ParamSpec("runtime_s", 6, "measured seconds", minimum=1, maximum=3600),
        ParamSpec("warmup_s", 1, "unmeasured seconds first", minimum=0, maximum=600),
    ),
    primary_metric="fg_wakeup_p99_us",
    natives=("interactive",),
    execute=_interactive,
)

# --------------------------------------------------------------------------
# CPU throughput (hackbench)

_HACKBENCH_TIME = re.compile(r"^Time:\s*([0-9.]+)", re.MULTILINE)


def _hackbench(p: Mapping[str, int]) -> dict[str, float]:
    binary = shutil.which("hackbench")
    if binary is None:
        raise WorkloadError("hackbench is not installed", hint="install rt-tests (scripts/install-system.sh)")
    argv = [binary, "-g", str(p["groups"]), "-l", str(p["loops"]), "-f", str(p["fds"])]
    argv += ["-T"] if p["threads"] else ["-P"]
    if not p["sockets"]:
        argv.append("-p")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise WorkloadError("hackbench did not finish within 600 s") from None
    match = _HACKBENCH_TIME.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        raise WorkloadError(f"hackbench failed (exit {proc.returncode})", hint=(proc.stderr or proc.stdout)[-400:])
    runtime = float(match.group(1))
    messages = p["groups"] * p["fds"] * p["fds"] * p["loops"]
    return {"runtime_s": runtime, "messages_per_s": messages / runtime if runtime > 0 else 0.0}


HACKBENCH = WorkloadSpec(
    name="hackbench",
    workload_class="CPU_THROUGHPUT",
    summary="hackbench (rt-tests): groups of senders and receivers over pipes; messaging throughput.",
    metrics=(
        MetricSpec("runtime_s", "s", False, "time to pass all messages"),
        MetricSpec("messages_per_s", "msg/s", True, "messages passed per second"),
    ),
    params=(
        ParamSpec("groups", 4, "groups of senders/receivers", minimum=1, maximum=1000),
        ParamSpec("fds", 10, "senders (and receivers) per group", minimum=1, maximum=100),
        ParamSpec("loops", 200, "messages per sender and receiver", minimum=1),
        ParamSpec("threads", 0, "1: threads instead of processes", minimum=0, maximum=1),
        ParamSpec("sockets", 0, "1: UNIX sockets instead of pipes", minimum=0, maximum=1),
    ),
    primary_metric="runtime_s",
    natives=(),
    tools=("hackbench",),
    execute=_hackbench,
)

#: Every reference workload by name.
WORKLOADS: dict[str, WorkloadSpec] = {
    w.name: w for w in (WAKEUP_SERVER, PARALLEL_BUILD, BATCH_LONG_TAIL, INTERACTIVE, HACKBENCH)
}
