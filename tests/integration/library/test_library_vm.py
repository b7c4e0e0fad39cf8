"""Every scheduler in bpf/ loads on the micro-VM kernel, keeps the machine
running through a short mixed workload (messaging, CPU hogs next to a
periodic sleeper, fork/exit churn), is still the enabled scheduler afterwards,
and unloads cleanly. Parametrised over bpf/*.bpf.c, so a new library
scheduler is covered without touching this file. One VM serves all of them.
"""

from __future__ import annotations

import time

import pytest

from schedcp.substrate.build import BPF_DIR
from schedcp.substrate.sched_metadata import load_metadata

pytestmark = pytest.mark.vm

LIBRARY = sorted(p.name.removesuffix(".bpf.c") for p in BPF_DIR.glob("*.bpf.c")
                 if (BPF_DIR / p.name.replace(".bpf.c", ".json")).exists())

# Two CPU hogs that spin until they are killed, a burst of short-lived
# children, then a periodic sleeper (30 x 10 ms) that has to get CPU time
# while both hogs compete for it; prints the ticks it completed.
MIXED = r"""
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the guest agent may ignore it
hogs = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        while True:
            pass
    hogs.append(pid)
try:
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    ticks = 0
    for _ in range(30):
        time.sleep(0.01)
        ticks += 1
finally:
    for pid in hogs:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
print(ticks)
"""


def _assert_idle(node: object) -> None:
    deadline = time.monotonic() + 10
    st = node.state()  # type: ignore[attr-defined]
    while st.sched_ext_state == "disabling" and time.monotonic() < deadline:
        time.sleep(0.2)
        st = node.state()  # type: ignore[attr-defined]
    assert st.sched_ext_state == "disabled" and st.root_ops == "", st


def test_library_is_not_empty() -> None:
    # The issue asks for the two references plus at least six more.
    assert len(LIBRARY) >= 8, LIBRARY


@pytest.mark.parametrize("name", LIBRARY)
def test_library_scheduler_loads_runs_and_unloads(vm_node, vm_builder, name: str) -> None:
    _assert_idle(vm_node)
    meta = load_metadata(BPF_DIR / f"{name}.json")
    assert meta.name == name
    built = vm_builder.build_file(BPF_DIR / f"{name}.bpf.c")
    res = vm_node.load(built.object_path, metadata_path=BPF_DIR / f"{name}.json")
    try:
        assert res.state == "enabled", res
        st = vm_node.state(name)
        assert st.enabled and st.root_ops == name and not st.ejected

        run = vm_node.run(["hackbench", "-g", "2", "-l", "100"], timeout_s=120)
        assert run.returncode == 0, run.stderr
        assert "Time:" in run.stdout
        # Host paths are the same in the guest (read-only virtiofs root).
        venv_py = BPF_DIR.parent / ".venv" / "bin" / "python"
        py = str(venv_py) if venv_py.exists() else "python3"
        run = vm_node.run([py, "-c", MIXED], timeout_s=120)
        assert run.returncode == 0, run.stderr
        # The sleeper completed every tick while both hogs spun: not starved.
        assert int(run.stdout.split()[-1]) == 30, run.stdout

        st = vm_node.state(name)
        assert st.enabled and not st.ejected, st.exit
    finally:
        # Leave the shared VM clean for the next scheduler even on failure.
        final = vm_node.unload(name)
    # The loader returns once root/ops is cleared; the kernel may still be
    # finishing ("disabling") for a moment under a loaded TCG host.
    assert final.sched_ext_state in ("disabled", "disabling") and not final.enabled, final
    assert final.exit is not None and final.exit.kind == 64, final.exit  # SCX_EXIT_UNREG
    _assert_idle(vm_node)


# Two hogs in each of two cgroups with cpu.weight 100 and 400 on 2 CPUs; prints
# the CPU ticks each cgroup got. (Not pinned: with pinning the other CPU runs
# later keys and the clamp against the global clock evens out the two groups.)
# Needs cgroup2 with the cpu controller (mounted here if the guest has not).
CGROUP_SPLIT = r"""
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_DFL)
root = "/sys/fs/cgroup"
if not os.path.exists(f"{root}/cgroup.controllers"):
    os.system(f"mount -t cgroup2 none {root}")
with open(f"{root}/cgroup.subtree_control", "w") as f:
    f.write("+cpu")
pids = []
for name, weight in (("light", 100), ("heavy", 400)):
    path = f"{root}/{name}"
    os.makedirs(path, exist_ok=True)
    with open(f"{path}/cpu.weight", "w") as f:
        f.write(str(weight))
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            with open(f"{path}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
            while True:
                pass
        pids.append(pid)
time.sleep(4)
ticks = []
for pid in pids:
    with open(f"/proc/{pid}/stat") as f:
        ticks.append(int(f.read().rsplit(")", 1)[1].split()[11]))
ticks = [ticks[0] + ticks[1], ticks[2] + ticks[3]]
for pid in pids:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
for name in ("light", "heavy"):
    os.rmdir(f"{root}/{name}")
print(ticks[0], ticks[1])
"""


def test_cgfair_splits_cpu_by_cgroup_weight(vm_node, vm_builder) -> None:
    """cgfair splits the CPU by cpu.weight: two cgroups weighted 100 and 400,
    two hogs each, on 2 CPUs: the heavy group gets clearly more than the light."""
    _assert_idle(vm_node)
    built = vm_builder.build_file(BPF_DIR / "cgfair.bpf.c")
    vm_node.load(built.object_path, metadata_path=BPF_DIR / "cgfair.json")
    try:
        venv_py = BPF_DIR.parent / ".venv" / "bin" / "python"
        run = vm_node.run([str(venv_py), "-c", CGROUP_SPLIT], timeout_s=120)
        assert run.returncode == 0, run.stderr
        light, heavy = (int(x) for x in run.stdout.split()[-2:])
        st = vm_node.state("cgfair")
        assert st.enabled and not st.ejected, st.exit
    finally:
        vm_node.unload("cgfair")
    # The weights ask for 4:1. A cgroup-blind policy gives 1:1; a cgfair that
    # let every slice expiry hand the CPU to the queue's head measured 1.15-2.0
    # (CI failed on 1.24). The current one measured 3.86-4.02, also with a
    # busy host; the bound leaves room for TCG noise (see docs/library.md).
    assert light > 0 and heavy / light > 2.5, (light, heavy)
    _assert_idle(vm_node)


# Two CPU hogs at nice 0 and two at nice 5 on 2 CPUs; prints the CPU ticks
# each pair got. Weights 1024 vs 335 ask for ~3:1, which EEVDF gives.
NICE_SPLIT = r"""
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_DFL)
pids = []
for nice in (0, 0, 5, 5):
    pid = os.fork()
    if pid == 0:
        os.nice(nice)
        while True:
            pass
    pids.append(pid)
time.sleep(4)
ticks = []
for pid in pids:
    with open(f"/proc/{pid}/stat") as f:
        ticks.append(int(f.read().rsplit(")", 1)[1].split()[11]))
for pid in pids:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print(ticks[0] + ticks[1], ticks[2] + ticks[3])
"""


def test_wvtime_shares_cpu_by_nice(vm_node, vm_builder) -> None:
    """wvtime's weights hold between CPU-bound tasks, not only at wakeups."""
    _assert_idle(vm_node)
    built = vm_builder.build_file(BPF_DIR / "wvtime.bpf.c")
    vm_node.load(built.object_path, metadata_path=BPF_DIR / "wvtime.json")
    try:
        venv_py = BPF_DIR.parent / ".venv" / "bin" / "python"
        run = vm_node.run([str(venv_py), "-c", NICE_SPLIT], timeout_s=120)
        assert run.returncode == 0, run.stderr
        nice0, nice5 = (int(x) for x in run.stdout.split()[-2:])
        st = vm_node.state("wvtime")
        assert st.enabled and not st.ejected, st.exit
    finally:
        vm_node.unload("wvtime")
    # EEVDF measured 2.93-3.12; wvtime 1.31-1.53 while every slice expiry
    # handed the CPU to the queue's head, 2.88-2.95 since it keeps prev.
    assert nice5 > 0 and nice0 / nice5 > 2.2, (nice0, nice5)
    _assert_idle(vm_node)
