"""``schedcp observe``: profile a workload and print its WorkloadProfile.

    schedcp observe --pid PID [--deep] [--window S] [--json]
    schedcp observe --cgroup PATH [--deep] [--window S] [--json]
    schedcp observe [--deep] [--window S] [--node vm] -- CMD ARGS...

Runs the Observation agent in-process (no service needed). ``-- CMD`` launches
the command in its own process group and observes it until it exits or the
window ends (then it is stopped). ``--node vm`` does the same inside a
sched_ext micro-VM (the substrate's VmNode), with the probes built on the host
for the guest's kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import json_format

from schedcp.errors import InvalidArgument, NotFound
from schedcp.v1 import common_pb2, profile_pb2

DEFAULT_WINDOW = 5.0
#: With ``-- CMD`` and no --window: observe until the command exits, at most this long.
CMD_MAX_WINDOW = 600.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "observe", help="profile a workload (pid, cgroup or command) and print its WorkloadProfile",
        description="Profile a workload with the tiered Workload Analysis Engine.")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--pid", type=int, help="observe this process and its descendants")
    target.add_argument("--cgroup", help="observe this cgroup v2 directory (absolute or relative to the mount)")
    target.add_argument("--whole-node", action="store_true", help="observe the whole node")
    p.add_argument("--deep", action="store_true",
                   help="add tier 2: perf counters and eBPF probes (root); default: only if tier 1 is unsure")
    p.add_argument("--summary-only", action="store_true", help="never go beyond tier 1")
    p.add_argument("--window", type=float, default=None,
                   help=f"observation window in seconds (default {DEFAULT_WINDOW:g}; with -- CMD: until it exits)")
    p.add_argument("--probes", default="", help="comma-separated probes for --deep (default: all)")
    p.add_argument("--max-overhead", type=float, default=None, help="probe overhead bound, percent of node CPU")
    p.add_argument("--node", choices=("host", "vm"), default="host",
                   help="observe on this host, or inside a sched_ext micro-VM (with -- CMD)")
    p.add_argument("--llm", default="none", help="LLM endpoint: none (default), local, or an http(s) URL")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: launch and observe a command")
    p.set_defaults(func=run)


def _command(args: argparse.Namespace) -> list[str]:
    cmd = list(args.command or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    return cmd


def run(args: argparse.Namespace) -> int:
    cmd = _command(args)
    chosen = sum([args.pid is not None, args.cgroup is not None, bool(args.whole_node), bool(cmd)])
    if chosen != 1:
        raise InvalidArgument("choose exactly one of --pid PID, --cgroup PATH, --whole-node or -- CMD...",
                              hint="e.g. schedcp observe -- make -j2")
    if args.deep and args.summary_only:
        raise InvalidArgument("--deep and --summary-only contradict each other", hint="pick one")
    if args.window is not None and not (0.1 <= args.window <= 3600):
        raise InvalidArgument(f"--window {args.window} is out of range", hint="use 0.1 to 3600 seconds")
    if args.node == "vm":
        if not cmd:
            raise InvalidArgument("--node vm needs a command to run in the VM (-- CMD...)",
                                  hint="a pid or cgroup of this host does not exist inside the VM")
        out = asyncio.run(_observe_in_vm(args, cmd))
        print(out, end="" if out.endswith("\n") else "\n")
        return 0
    profile = asyncio.run(_observe_here(args, cmd))
    if args.json:
        print(json.dumps(json_format.MessageToDict(profile, preserving_proto_field_name=True), indent=2))
    else:
        print(render(profile))
    return 0


async def _observe_here(args: argparse.Namespace, cmd: list[str]) -> profile_pb2.WorkloadProfile:
    from services.observer.agent import ObservationAgent
    from services.observer.tier1 import Target
    from services.observer.tier2 import ProbeLimits, Tier2Profiler

    deep: bool | None = True if args.deep else (False if args.summary_only else None)
    tier2 = Tier2Profiler(limits=ProbeLimits()) if os.geteuid() == 0 else None
    probes = tuple(p.strip() for p in args.probes.split(",") if p.strip())
    node = os.environ.get("SCHEDCP_NODE") or os.uname().nodename
    async with _llm(args.llm) as llm:
        agent = ObservationAgent(node=node, tier2=tier2, llm=llm)
        if not cmd:
            target = (Target(pid=args.pid) if args.pid is not None else
                      Target(cgroup=args.cgroup) if args.cgroup is not None else Target(node=True))
            return await agent.observe(target, window=args.window or DEFAULT_WINDOW, deep=deep, probes=probes,
                                       max_overhead_pct=args.max_overhead)
        try:
            # Popen only forks and execs; waiting happens in the sampler thread.
            # The command's stdout goes to our stderr: stdout carries the profile.
            proc = subprocess.Popen(cmd, start_new_session=True, stdout=2)  # noqa: ASYNC220
        except OSError as exc:
            raise NotFound(f"cannot start {cmd[0]!r}: {exc.strerror}", hint="check the command and PATH") from exc
        try:
            window = args.window or CMD_MAX_WINDOW
            # With --deep, tier 1 takes the first half and the probes the second.
            t1_window = window / 2 if deep and args.window else window
            return await agent.observe(Target(pid=proc.pid), window=t1_window, deep=deep, probes=probes,
                                       max_overhead_pct=args.max_overhead,
                                       stop=lambda: proc.poll() is not None,
                                       deep_window=(window - t1_window) if deep and args.window else None)
        finally:
            _stop(proc)


@contextlib.asynccontextmanager
async def _llm(url: str) -> AsyncIterator[Any]:
    """The LLM client for --llm, or None; the openai stack is imported only when asked for."""
    if not url or url == "none":
        yield None
        return
    from schedcp.llm.settings import load_llm_settings, open_llm

    async with open_llm(load_llm_settings({"SCHEDCP_LLM_URL": url})) as llm:
        yield llm


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the launched command's whole process group (it ran only to be observed)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=3)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


async def _observe_in_vm(args: argparse.Namespace, cmd: list[str]) -> str:
    """Run this same command inside a micro-VM and return what it printed."""
    from schedcp.substrate.build import default_cache_dir
    from schedcp.substrate.kernel import ensure_kernel
    from schedcp.substrate.vm import VmNode
    from services.observer.tier2 import PREBUILT_ENV, ProbeBuilder

    kernel = await asyncio.to_thread(ensure_kernel)
    env = {"SCHEDCP_NODE": "vm", "SCHEDCP_CACHE_DIR": "/tmp/schedcp-cache", "PYTHONPATH": _repo_root()}
    if args.deep or not args.summary_only:
        # The guest sees the host's files read-only: build the probes here for its kernel.
        dest = default_cache_dir() / "probes" / f"guest-{kernel.release}"
        await asyncio.to_thread(ProbeBuilder(btf=kernel.vmlinux).prebuild, dest)
        env[PREBUILT_ENV] = str(dest)
    # This module's own entry point: the full CLI would import every area (slow under TCG).
    argv = [sys.executable, "-m", "schedcp.cli.observe", "--node", "host"]
    if args.deep:
        argv.append("--deep")
    if args.summary_only:
        argv.append("--summary-only")
    if args.window is not None:
        argv += ["--window", str(args.window)]
    if args.probes:
        argv += ["--probes", args.probes]
    if args.max_overhead is not None:
        argv += ["--max-overhead", str(args.max_overhead)]
    if args.json:
        argv.append("--json")
    argv += ["--", *cmd]
    # Python starts ~16x slower under TCG, and the host may be busy: generous, but bounded.
    timeout = (args.window or CMD_MAX_WINDOW) * 4 + 300
    async with VmNode(kernel=kernel, cpus=2, lifetime=timeout + 60) as node:
        res = await node.run(argv, env=env, cwd=_repo_root(), timeout=timeout)
    if res.exit_code != 0:
        raise NotFound(f"observation inside the micro-VM failed (exit {res.exit_code}): "
                       f"{(res.stderr or res.stdout).strip()[-800:]}",
                       hint="see the error above; the guest runs the same CLI with --node host")
    return res.stdout


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def render(p: profile_pb2.WorkloadProfile) -> str:
    """A readable multi-line view of a profile."""
    f = p.features
    wc = common_pb2.WorkloadClass.Name(p.workload_class)
    lines = [
        f"workload   {p.workload.name}",
        f"node       {p.node}    window {p.window_seconds:.1f} s    trigger {p.trigger}",
        f"class      {wc}  (confidence {p.class_confidence:.2f}, tier {profile_pb2.AnalysisTier.Name(p.tier)})",
        f"goal       {common_pb2.GoalKind.Name(p.goal.kind)} on {p.goal.metric}",
    ]
    for c in p.goal.constraints:
        lines.append(f"           - {c}")
    lines += [
        "",
        f"cpu        {f.cpu_utilization:.2f} of {f.node_cpus} CPUs ({f.cpu_seconds:.2f} CPU-s), "
        f"{f.thread_count} threads / {f.process_count} processes",
        f"switches   {f.voluntary_ctx_switches_per_s:.0f}/s voluntary, {f.involuntary_ctx_switches_per_s:.0f}/s "
        f"involuntary, burst {f.run_burst_us_mean:.0f} us",
        f"run queue  wait {f.runqueue_wait_us_mean:.0f} us mean, {f.runqueue_wait_fraction:.1%} of runnable time",
        f"tasks      {f.task_births_per_s:.1f} births/s, {f.task_exits_per_s:.1f} exits/s, lifetime p50 "
        f"{f.task_lifetime_ms_p50:.0f} ms p99 {f.task_lifetime_ms_p99:.0f} ms ({f.completed_tasks} completed)",
        f"shape      {f.cpu_bound_threads} CPU-bound, {f.interactive_threads} interactive threads, "
        f"{f.distinct_comms} distinct programs, short-task CPU share {f.short_task_cpu_fraction:.0%}",
        f"node       load {f.load_avg_1m:.2f}, memory {f.memory_used_fraction:.0%}, PSI some cpu "
        f"{f.psi_cpu_some_avg10:.1f} io {f.psi_io_some_avg10:.1f} mem {f.psi_memory_some_avg10:.1f}, "
        f"io wait {f.io_wait_fraction:.1%}",
    ]
    for name, label in (("runqueue_latency", "rq latency"), ("timeslice", "time slice"),
                        ("task_lifetime", "lifetime")):
        h = getattr(f, name)
        if h.samples:
            lines.append(f"{label:<10} {h.samples} samples, p50 {h.p50:.0f} {h.unit}, p99 {h.p99:.0f} {h.unit}, "
                         f"p99.9 {h.p999:.0f} {h.unit}")
    if f.wakeup_graph:
        lines.append("wakeups    " + ", ".join(f"{json.dumps(e.waker)}->{json.dumps(e.wakee)} x{e.count}"
                                             for e in f.wakeup_graph[:5]))
    if f.perf_counters:
        lines.append("perf       " + ", ".join(f"{k}={v:.0f}" for k, v in sorted(f.perf_counters.items())))
    lines.append("")
    for c in p.costs:
        lines.append(f"cost       {profile_pb2.AnalysisTier.Name(c.tier)}: {c.wall_seconds:.2f} s wall, "
                     f"{c.cpu_seconds:.3f} s CPU, {c.memory_bytes} bytes, overhead {c.overhead_pct:.2f}%"
                     + (f", {c.llm_tokens} LLM tokens" if c.llm_tokens else "")
                     + f" [{', '.join(c.tools)}]")
    for c in p.probe_costs:
        lines.append(f"  probe    {', '.join(c.tools)}: {c.cpu_seconds * 1e3:.1f} ms in kernel, "
                     f"{c.memory_bytes} bytes of maps, overhead {c.overhead_pct:.3f}%")
    lines += ["", p.description]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m schedcp.cli.observe``: just this command (used inside micro-VMs)."""
    from schedcp.errors import SchedcpError

    parser = argparse.ArgumentParser(prog="schedcp")
    register(parser.add_subparsers(dest="command_name"))
    args = parser.parse_args(["observe", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except SchedcpError as exc:
        print(f"schedcp: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
