"""Micro-VM numbers: boot to ready, VMs per minute through the pool, RSS per VM.

    .venv/bin/python bench/substrate_vm.py [--boots 7] [--pool-jobs 12] [--pool-size 2] [--json]

Prints a markdown table (or JSON) for docs/benchmarks-substrate.md. The host's
load average is recorded with the numbers: on a shared 2-core machine other
work changes them a lot, so read them together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schedcp.substrate.kernel import ensure_kernel  # noqa: E402
from schedcp.substrate.pool import VmPool  # noqa: E402
from schedcp.substrate.vm import Job, VmNode, default_accel, run_job  # noqa: E402


def _kb(pid: int, field: str, path: str = "status") -> int:
    with open(f"/proc/{pid}/{path}") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _loadavg() -> float:
    return os.getloadavg()[0]


def _stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "n": len(xs)}


async def bench_boot(kernel, accel, n: int, cpus: int) -> dict:
    """Sequential boots of a persistent node: qemu spawn -> guest agent ready."""
    boot, init_up, ready_up, oneshot = [], [], [], []
    for _ in range(n):
        node = VmNode(kernel=kernel, accel=accel, cpus=cpus, mem_mb=1024, lifetime=300)
        await node.start()
        boot.append(node.timings["boot_s"])
        ready_up.append(node.timings["guest_uptime_at_ready_s"])
        init_up.append(node.timings.get("guest_uptime_at_init_s", float("nan")))
        await node.shutdown()
    for _ in range(max(1, n // 2)):
        t0 = time.monotonic()
        await run_job(Job(argv=["true"], cpus=cpus, timeout=60), kernel=kernel, accel=accel)
        oneshot.append(time.monotonic() - t0)
    return {
        "boot_to_ready_s": _stats(boot),
        "guest_uptime_at_init_s": _stats(init_up),
        "guest_uptime_at_ready_s": _stats(ready_up),
        "oneshot_true_total_s": _stats(oneshot),
    }


async def bench_pool(kernel, accel, jobs: int, size: int) -> dict:
    """Throughput of one-shot VMs (each runs `true`) through VmPool(size)."""
    async with VmPool(size=size, kernel=kernel, accel=accel) as pool:
        # Warm the initramfs cache etc. outside the timed part.
        await pool.run(Job(argv=["true"], cpus=1, timeout=60))
        t0 = time.monotonic()
        res = await asyncio.gather(
            *(pool.run(Job(argv=["true"], cpus=1, mem_mb=512, timeout=60)) for _ in range(jobs))
        )
        dt = time.monotonic() - t0
    assert all(r.ok for r in res)
    return {"jobs": jobs, "size": size, "seconds": dt, "vms_per_minute": jobs / dt * 60}


async def bench_rss(kernel, accel) -> dict:
    """RSS/PSS of qemu and virtiofsd for a booted 2-vCPU, 1 GiB VM after running host python."""
    node = VmNode(kernel=kernel, accel=accel, cpus=2, mem_mb=1024, lifetime=300)
    await node.start()
    try:
        await node.run(["/usr/bin/python3", "-c", "import json, subprocess; print(1)"])
        assert node._qemu is not None and node._fsd is not None
        out = {}
        for name, pid in (("qemu", node._qemu.pid), ("virtiofsd", node._fsd.pid)):
            out[name] = {
                "rss_mib": _kb(pid, "VmRSS") / 1024,
                "pss_mib": _kb(pid, "Pss", "smaps_rollup") / 1024,
            }
        out["total_rss_mib"] = out["qemu"]["rss_mib"] + out["virtiofsd"]["rss_mib"]
        out["total_pss_mib"] = out["qemu"]["pss_mib"] + out["virtiofsd"]["pss_mib"]
        return out
    finally:
        await node.shutdown()


async def main_async(args: argparse.Namespace) -> dict:
    kernel = await asyncio.to_thread(ensure_kernel)
    accel = await asyncio.to_thread(default_accel, kernel)
    result: dict = {
        "kernel": kernel.release,
        "accel": accel.name,
        "host_cpus": os.cpu_count(),
        "load_before": _loadavg(),
    }
    result["boot"] = await bench_boot(kernel, accel, args.boots, cpus=2)
    result["pool"] = await bench_pool(kernel, accel, args.pool_jobs, args.pool_size)
    result["rss"] = await bench_rss(kernel, accel)
    result["load_after"] = _loadavg()
    return result


def to_markdown(r: dict) -> str:
    b, p, m = r["boot"], r["pool"], r["rss"]
    lines = [
        f"kernel {r['kernel']}, accel {r['accel']}, {r['host_cpus']} host cores, "
        f"load average {r['load_before']:.1f} before / {r['load_after']:.1f} after",
        "",
        "| metric | median | min | max | n |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("boot_to_ready_s", "boot to ready (qemu spawn -> agent ready), s"),
        ("guest_uptime_at_init_s", "guest uptime when init hands over, s"),
        ("guest_uptime_at_ready_s", "guest uptime when agent ready, s"),
        ("oneshot_true_total_s", "one-shot `true` end to end, s"),
    ):
        s = b[key]
        lines.append(
            f"| {label} | {s['median']:.2f} | {s['min']:.2f} | {s['max']:.2f} | {s['n']} |"
        )
    lines += [
        "",
        f"- pool: {p['jobs']} one-shot VMs through `VmPool(size={p['size']})` in {p['seconds']:.1f} s "
        f"= **{p['vms_per_minute']:.1f} VMs/minute**",
        f"- RSS per VM (2 vCPU, 1 GiB, after host python ran): qemu {m['qemu']['rss_mib']:.0f} MiB "
        f"(PSS {m['qemu']['pss_mib']:.0f}), virtiofsd {m['virtiofsd']['rss_mib']:.0f} MiB "
        f"(PSS {m['virtiofsd']['pss_mib']:.0f}); total RSS **{m['total_rss_mib']:.0f} MiB**",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=7)
    ap.add_argument("--pool-jobs", type=int, default=12)
    ap.add_argument("--pool-size", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = asyncio.run(main_async(args))
    print(json.dumps(r, indent=2) if args.json else to_markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
