"""Load, run, watch and unload real schedulers in one sched_ext micro-VM.

Every check shares the module's VM (see conftest.py); each leaves sched_ext
disabled again, which the next one relies on and asserts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schedcp.substrate.build import BPF_DIR
from schedcp.substrate.loader import VerifierRejected
from schedcp.substrate.sched_metadata import load_metadata

PROGS = Path(__file__).parent / "progs"
pytestmark = pytest.mark.vm

# Two CPU hogs pinned to CPU 0 for a fixed time; report how often each was
# preempted (involuntary context switches), straight from the kernel.
HOGS = r"""
import json, os, sys, time
secs = float(sys.argv[1])
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {0})
        end = time.monotonic() + secs
        while time.monotonic() < end:
            pass
        os._exit(0)
    pids.append(pid)
time.sleep(secs * 0.8)
def nivcsw(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("nonvoluntary_ctxt_switches"):
            return int(line.split()[1])
counts = [nivcsw(p) for p in pids]
for p in pids:
    os.waitpid(p, 0)
print(json.dumps({"nivcsw": counts}))
"""


def _assert_idle(node: object) -> None:
    st = node.state()  # type: ignore[attr-defined]
    assert st.sched_ext_state == "disabled" and st.root_ops == "", st


@pytest.mark.parametrize(("name", "tunables"), [("fifo", {"slice_us": 5000}),
                                                ("wvtime", {"slice_us": 2000,
                                                            "max_lag_slices": 2})])
def test_scheduler_loads_runs_a_workload_and_unloads(vm_node, vm_builder, name: str,
                                                     tunables: dict) -> None:
    _assert_idle(vm_node)
    built = vm_builder.build_file(BPF_DIR / f"{name}.bpf.c")
    res = vm_node.load(built.object_path, tunables=tunables,
                       metadata_path=BPF_DIR / f"{name}.json")
    assert res.name == name and res.state == "enabled"
    assert res.tunables == tunables
    st = vm_node.state(name)
    assert st.enabled and st.root_ops == name and st.pinned and not st.ejected

    run = vm_node.run(["hackbench", "-g", "1", "-l", "50"], timeout_s=120)
    assert run.returncode == 0, run.stderr
    assert "Time:" in run.stdout
    st = vm_node.state(name)
    assert st.enabled and not st.ejected, st.exit  # still ours after the workload

    final = vm_node.unload(name)
    assert final.sched_ext_state == "disabled" and not final.enabled
    assert final.exit is not None and final.exit.kind == 64  # SCX_EXIT_UNREG
    assert "unregistered" in final.exit.reason
    _assert_idle(vm_node)


def test_verifier_rejection_is_reported_with_its_log(vm_node, vm_builder) -> None:
    _assert_idle(vm_node)
    built = vm_builder.build_file(PROGS / "reject_null_deref.bpf.c")
    with pytest.raises(VerifierRejected) as ei:
        vm_node.load(built.object_path)
    assert "map_value_or_null" in ei.value.message
    log = str(ei.value.details["log"])
    assert "BEGIN PROG LOAD LOG" in log and "R0 invalid mem access 'map_value_or_null'" in log
    assert "reject_null_deref.bpf.c:23" in log  # the source line, via BTF line info
    _assert_idle(vm_node)


def test_a_stalling_scheduler_is_reported_ejected_with_the_kernels_reason(vm_node,
                                                                          vm_builder) -> None:
    _assert_idle(vm_node)
    built = vm_builder.build_file(PROGS / "stall.bpf.c")
    res = vm_node.load(built.object_path, ops_overrides={"timeout_ms": 1500})
    assert res.state == "enabled" and res.ops_overrides == {"timeout_ms": 1500}
    # A task named "stallme" is never dispatched by this scheduler. It is
    # backgrounded in its own session with its output detached so the command
    # returns at once and the agent does not reap it; it
    # ends by itself once the kernel has ejected the scheduler.
    victim = ("(echo stallme > /proc/self/comm; i=0; "
              "while [ $i -lt 300000 ]; do i=$((i+1)); done) >/dev/null 2>&1 &")
    assert vm_node.run(["setsid", "sh", "-c", victim], timeout_s=30).returncode == 0
    st = vm_node.watch("stall", duration_s=30)
    # The kernel reports "disabling" until its teardown work has run.
    assert st.ejected and not st.enabled and st.sched_ext_state in ("disabling", "disabled")
    assert st.exit is not None and st.exit.recorded
    assert st.exit.kind == 1026 and st.exit.reason == "runnable task stall"
    assert "stallme" in st.exit.msg
    assert any('BPF scheduler "stall" disabled (runnable task stall)' in ln
               for ln in st.exit.kernel_log)
    final = vm_node.unload("stall")
    assert final.ejected and final.exit.kind == 1026
    _assert_idle(vm_node)


def test_slice_tunable_changes_preemption_rate(fresh_vm_node, vm_builder) -> None:
    """slice_us=1000 vs 100000 under fifo: two hogs sharing one CPU are
    preempted far more often with the short slice (the kernel's own count).
    Runs in its own VM (see conftest.fresh_vm_node)."""
    vm_node = fresh_vm_node
    _assert_idle(vm_node)
    meta = load_metadata(BPF_DIR / "fifo.json")
    built = vm_builder.build_file(BPF_DIR / "fifo.bpf.c")
    switches = {}
    for slice_us in (100000, 1000):
        vm_node.load(built.object_path, tunables=meta.resolve({"slice_us": slice_us}))
        try:
            run = vm_node.run(["python3", "-c", HOGS, "2"], timeout_s=120)
            assert run.returncode == 0, run.stderr
            switches[slice_us] = sum(json.loads(run.stdout.strip().splitlines()[-1])["nivcsw"])
            assert vm_node.state("fifo").enabled
        finally:
            vm_node.unload("fifo")
    # 1.6 s of contention: ~16 switches at 100 ms slices, hundreds at 1 ms
    # (bounded by the tick). Demand a wide margin, not a number.
    assert switches[1000] > 4 * max(switches[100000], 1), switches
