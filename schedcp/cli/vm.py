"""``schedcp vm``: run a command in a fresh sched_ext micro-VM; show/fetch the kernel.

    schedcp vm run [--cpus N] [--mem MB] [--timeout S] [--env K=V]... [--cwd DIR]
                   [--module NAME]... [--json] [--console] -- CMD...
    schedcp vm kernel [--refresh] [--all] [--json]

``vm run`` prints the command's stdout/stderr as they were and exits with the
command's exit code (124 if it timed out); a VM that fails to boot or dies
exits 2 with the reason and the console tail. ``--json`` prints one JSON
document instead (exit code, output, result records, timings).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from schedcp.errors import InvalidArgument

EXIT_TIMED_OUT = 124


def register(subparsers: argparse._SubParsersAction) -> None:
    vm = subparsers.add_parser("vm", help="micro-VMs booting the sched_ext kernel",
                               description="Run commands in sched_ext micro-VMs; manage the kernel.")
    sub = vm.add_subparsers(dest="vm_command", metavar="SUBCOMMAND")
    sub.required = True

    run = sub.add_parser(
        "run", help="run a command in a fresh micro-VM",
        description="Boot a fresh micro-VM with the sched_ext kernel (host userspace read-only "
                    "inside), run CMD, print its output and exit with its exit code.")
    run.add_argument("--cpus", type=int, default=2, help="vCPUs (default 2)")
    run.add_argument("--mem", type=int, default=1024, metavar="MB", help="memory in MB (default 1024)")
    run.add_argument("--timeout", type=float, default=300.0, metavar="S",
                     help="seconds for the command; the VM is killed with it (default 300)")
    run.add_argument("--env", action="append", default=[], metavar="K=V", help="environment (repeatable)")
    run.add_argument("--cwd", help="working directory in the guest (default /tmp)")
    run.add_argument("--module", action="append", default=[], metavar="NAME",
                     help="kernel module to load at boot, e.g. overlay (repeatable)")
    run.add_argument("--json", action="store_true", help="print the result as one JSON document")
    run.add_argument("--console", action="store_true", help="also print the serial console log (stderr)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD...", help="command to run")
    run.set_defaults(func=cmd_run)

    kern = sub.add_parser("kernel", help="show (fetching if needed) the sched_ext kernel",
                          description="Fetch the sched_ext kernel into the cache (idempotent) and show it.")
    kern.add_argument("--refresh", action="store_true", help="re-read package lists and re-select")
    kern.add_argument("--all", action="store_true", help="also the older kernel used for its BTF")
    kern.add_argument("--json", action="store_true", help="print as JSON")
    kern.set_defaults(func=cmd_kernel)


def _env_pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--env {item!r} is not K=V", hint="e.g. --env OMP_NUM_THREADS=2")
        out[key] = value
    return out


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    from schedcp.substrate.vm import Job, run_job

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise InvalidArgument("no command given", hint="usage: schedcp vm run [OPTIONS] -- CMD...")
    if args.cpus < 1 or args.mem < 128 or args.timeout <= 0:
        raise InvalidArgument("--cpus must be >= 1, --mem >= 128 and --timeout > 0")
    job = Job(argv=cmd, env=_env_pairs(args.env), cwd=args.cwd, timeout=args.timeout,
              cpus=args.cpus, mem_mb=args.mem, modules=tuple(args.module))
    # SIGTERM tears the VM down through the same path as Ctrl-C (if we are
    # SIGKILLed instead, the children's parent-death signal does it).
    signal.signal(signal.SIGTERM, _raise_interrupt)
    res = asyncio.run(run_job(job))
    if args.console:
        sys.stderr.write(res.console)
    if args.json:
        print(json.dumps(res.to_json(), indent=2, default=str))
    else:
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        sys.stdout.flush()
    if res.timed_out:
        print(f"schedcp vm: command timed out after {args.timeout:g}s; VM killed", file=sys.stderr)
        return EXIT_TIMED_OUT
    code = res.exit_code if res.exit_code is not None else 2
    if code < 0:  # killed by a signal in the guest: shell convention
        code = 128 - code
    if not args.json:
        print(f"schedcp vm: exit {res.exit_code} (kernel {res.kernel}, {res.accel}, "
              f"boot {res.timings.get('boot_s', 0):.1f}s, run {res.duration_s:.1f}s)", file=sys.stderr)
    return code


def cmd_kernel(args: argparse.Namespace) -> int:
    from schedcp.substrate import kernel

    argv = []
    if args.refresh:
        argv.append("--refresh")
    if args.all:
        argv.append("--all")
    if args.json:
        argv.append("--json")
    return kernel.main(argv)
