"""Stress and starvation suite, run INSIDE the micro-VM with the candidate loaded.

``python -m services.verifier.guest_suite --duration 6`` forks a mix of tasks
that each measure their own longest wait, so starvation is measured rather
than inferred from the kernel watchdog (30 s by default):

* CPU hogs (nice 0, one more than CPUs): longest gap between loop iterations;
* an interactive sleeper: wakeup lateness of 5 ms sleeps;
* niced spinners (nice 10 and nice -5): longest gap;
* pinned tasks (one CPU, spinner + sleeper): longest gap / lateness;
* many short tasks (bursty workers: 0.3 ms of work, 2 ms sleeps): lateness;
* sequential short-lived children and a fork/exit storm: judged on
  completion (their fork cost under TCG is not a scheduling wait).

Every task's wait includes its start: the time from its fork to its first
iteration (``start_delay_s``). A task starved from the outset (queued behind
the hogs until they exit) would otherwise measure only the quiet time after
them and look fine. A task that never reports back before the deadline was
never (or hardly ever) run: it is reported ``completed: false``. The parent samples
``/sys/kernel/sched_ext/state`` throughout. The report is one JSON line on
stdout. Only the standard library is used: this runs under host python in the
guest's chroot.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

STATE = Path("/sys/kernel/sched_ext/state")
WORK_NS = 300_000  # one "iteration" of spinning work


def _spin_once() -> None:
    end = time.perf_counter_ns() + WORK_NS
    while time.perf_counter_ns() < end:
        pass


def _started(forked_at: float) -> tuple[float, float]:
    """(now, delay since the parent forked this task): CLOCK_MONOTONIC is
    system-wide, so the parent's timestamp is comparable here."""
    now = time.monotonic()
    return now, max(now - forked_at, 0.0)


def _spinner(duration: float, forked_at: float) -> dict:
    """Spin; report the longest gap between two iterations beyond the work itself."""
    start, delay = _started(forked_at)
    last = start
    worst = delay
    iters = 0
    while last - start < duration:
        _spin_once()
        now = time.monotonic()
        worst = max(worst, now - last - WORK_NS / 1e9)
        last = now
        iters += 1
    return {"max_wait_s": max(worst, 0.0), "start_delay_s": delay, "iterations": iters}


def _sleeper(duration: float, forked_at: float, period: float = 0.005) -> dict:
    """Sleep ``period`` repeatedly; report the worst wakeup lateness."""
    start, delay = _started(forked_at)
    worst = delay
    n = 0
    while time.monotonic() - start < duration:
        t0 = time.monotonic()
        time.sleep(period)
        worst = max(worst, time.monotonic() - t0 - period)
        n += 1
    return {"max_wait_s": max(worst, 0.0), "start_delay_s": delay, "wakeups": n}


def _bursty(duration: float, forked_at: float, sleep_s: float = 0.002) -> dict:
    """Many short tasks: run ~0.3 ms, sleep 2 ms, repeat; report the worst lateness."""
    start, delay = _started(forked_at)
    worst = delay
    n = 0
    while time.monotonic() - start < duration:
        _spin_once()
        t0 = time.monotonic()
        time.sleep(sleep_s)
        worst = max(worst, time.monotonic() - t0 - sleep_s)
        n += 1
    return {"max_wait_s": max(worst, 0.0), "start_delay_s": delay, "bursts": n}


def _spawn_tasks(count: int, duration: float) -> dict:
    """Fork ``count`` short-lived children one after another.

    Judged on completion only: fork-to-reap under TCG is dominated by copying
    the interpreter's page tables, not by scheduling, so its time is reported
    (``spawn_worst_s``) but not held to the wait bound.
    """
    worst = 0.0
    deadline = time.monotonic() + duration * 2
    done = 0
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _spin_once()
            os._exit(0)
        os.waitpid(pid, 0)
        worst = max(worst, time.monotonic() - t0)
        done += 1
    return {"max_wait_s": 0.0, "spawn_worst_s": worst, "tasks": done, "judged": False}


def _fork_storm(count: int) -> dict:
    """Fork ``count`` children at once that exit immediately; reap them all."""
    t0 = time.monotonic()
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        pids.append(pid)
    worst = 0.0
    for pid in pids:
        os.waitpid(pid, 0)
        worst = max(worst, time.monotonic() - t0)
    # Throughput, not a per-task wait: judged by completing before the deadline.
    return {"max_wait_s": 0.0, "reap_all_s": worst, "forks": count, "judged": False}


def _launch(name: str, fn, *, nice: int = 0, cpu: int | None = None) -> tuple[int, int]:
    """Fork a task running ``fn(forked_at)``; its JSON result comes back on a pipe."""
    r, w = os.pipe()
    forked_at = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            if nice:
                os.nice(nice)
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})
            out = fn(forked_at)
            out["name"] = name
            out["completed"] = True
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    return pid, r


def read_state() -> str:
    try:
        return STATE.read_text().strip()
    except OSError:
        return "absent"


def run_suite(duration: float, short_tasks: int, forks: int) -> dict:
    ncpu = len(os.sched_getaffinity(0))
    last_cpu = max(os.sched_getaffinity(0))
    start_state = read_state()
    tasks: dict[str, tuple[int, int]] = {}
    for i in range(ncpu + 1):
        tasks[f"hog{i}"] = _launch(f"hog{i}", lambda t: _spinner(duration, t))
    tasks["interactive"] = _launch("interactive", lambda t: _sleeper(duration, t))
    tasks["nice10"] = _launch("nice10", lambda t: _spinner(duration, t), nice=10)
    tasks["nice-5"] = _launch("nice-5", lambda t: _spinner(duration, t), nice=-5)
    tasks["pinned_spin"] = _launch("pinned_spin", lambda t: _spinner(duration, t), cpu=last_cpu)
    tasks["pinned_sleep"] = _launch("pinned_sleep", lambda t: _sleeper(duration, t),
                                    cpu=last_cpu)
    for i in range(4):
        tasks[f"bursty{i}"] = _launch(f"bursty{i}", lambda t: _bursty(duration, t))
    tasks["spawn"] = _launch("spawn", lambda t: _spawn_tasks(short_tasks, duration))
    tasks["fork_storm"] = _launch("fork_storm", lambda t: _fork_storm(forks))

    launched = time.monotonic()
    # Spinners run for `duration` of their own wall time once started; a starved
    # one starts late, so the grace covers TCG slowness but not starvation.
    deadline = launched + duration * 2 + 5
    states = {start_state}
    results: dict[str, dict] = {}
    buffers = {name: b"" for name in tasks}
    pending = dict(tasks)
    while pending and time.monotonic() < deadline:
        states.add(read_state())
        for name, (pid, fd) in list(pending.items()):
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                while chunk := os.read(fd, 65536):
                    buffers[name] += chunk
                os.close(fd)
                del pending[name]
                try:
                    results[name] = json.loads(buffers[name] or b"{}")
                except ValueError:
                    results[name] = {}
        time.sleep(0.1)
    elapsed = time.monotonic() - launched
    for name, (pid, fd) in pending.items():
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
        results[name] = {"name": name, "completed": False, "max_wait_s": elapsed}
    report_tasks = []
    for name in tasks:
        r = results.get(name) or {"completed": False, "max_wait_s": elapsed}
        r["name"] = name
        r.setdefault("completed", False)
        r.setdefault("max_wait_s", elapsed)
        report_tasks.append(r)
    end_state = read_state()
    states.add(end_state)
    was_enabled = start_state == "enabled"
    return {
        "duration_s": duration,
        "elapsed_s": round(elapsed, 3),
        "cpus": ncpu,
        "sched_ext_start": start_state,
        "sched_ext_end": end_state,
        "sched_ext_left_enabled": (states == {"enabled"}) if was_enabled else None,
        "tasks": report_tasks,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--short-tasks", type=int, default=200)
    ap.add_argument("--forks", type=int, default=150)
    args = ap.parse_args(argv)
    report = run_suite(args.duration, args.short_tasks, args.forks)
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
