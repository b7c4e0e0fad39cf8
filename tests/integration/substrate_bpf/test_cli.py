"""``schedcp sched load`` end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "schedcp.cli.main", "sched", "load"]


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def test_bad_tunable_fails_before_any_vm_boots() -> None:
    p = _cli("fifo", "--set", "slice_us=5", "--json", timeout=60)
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["error"]["code"] == "invalid_tunable"
    assert "below its minimum 100" in doc["error"]["message"]
    assert [e["state"] for e in doc["events"]] == ["failed"]


def test_host_without_sched_ext_is_refused_clearly() -> None:
    if Path("/sys/kernel/sched_ext").is_dir():
        pytest.skip("this host has sched_ext")
    p = _cli("fifo", "--node", "host", timeout=60)
    assert p.returncode == 1
    assert "this kernel has no sched_ext" in p.stderr and "--node vm" in p.stderr


def test_build_error_is_reported_with_diagnostics_before_any_vm_boots(tmp_path: Path) -> None:
    src = (REPO / "bpf" / "fifo.bpf.c").read_text().replace("slice_us * SC_NSEC_PER_USEC, enq",
                                                            "slice_usec * SC_NSEC_PER_USEC, enq")
    bad = tmp_path / "broken.bpf.c"
    bad.write_text(src)
    line = next(i for i, ln in enumerate(src.splitlines(), 1) if "slice_usec" in ln)
    p = _cli(str(bad), "--json", timeout=120)
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert [e["state"] for e in doc["events"]] == ["building", "build-failed"]
    err = doc["error"]
    assert err["code"] == "build"
    first = next(d for d in err["diagnostics"] if d["severity"] == "error")
    assert first["line"] == line and "slice_usec" in first["message"]


@pytest.mark.vm
def test_verifier_rejection_fails_the_cli_with_the_log() -> None:
    prog = Path(__file__).parent / "progs" / "reject_null_deref.bpf.c"
    p = _cli(str(prog))
    assert p.returncode == 1
    assert "refused to load reject" in p.stderr
    assert "| R0 invalid mem access 'map_value_or_null'" in p.stderr  # the log tail
    assert " enabled " not in p.stdout and " rejected " in p.stdout


@pytest.mark.vm
def test_load_with_set_runs_a_command_and_reports_every_transition() -> None:
    p = _cli("fifo", "--set", "slice_us=3000", "--json", "--run", "--",
             "cat", "/sys/kernel/sched_ext/root/ops", "/sys/kernel/sched_ext/state")
    assert p.returncode == 0, p.stderr + p.stdout
    doc = json.loads(p.stdout)
    states = [e["state"] for e in doc["events"]]
    assert states == ["building", "built", "booting", "booted", "loading", "enabled",
                      "running", "ran", "unloaded"], states
    ts = [e["t"] for e in doc["events"]]
    assert ts == sorted(ts)
    assert doc["load"]["tunables"] == {"slice_us": 3000}
    assert doc["run"]["stdout"].split() == ["fifo", "enabled"]  # seen from inside the run
    assert doc["unload"]["sched_ext_state"] == "disabled"
    assert doc["build"]["digest"].startswith("sha256:")


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.vm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killing_the_cli_mid_run_leaves_no_process_behind(sig: signal.Signals) -> None:
    proc = subprocess.Popen([*CLI, "fifo", "--run", "--", "sleep", "300"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        deadline = time.monotonic() + 400
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if " running " in line:
                break
            assert time.monotonic() < deadline, "".join(seen)
        else:
            pytest.fail("the CLI ended before running:\n" + "".join(seen))
        kids = _descendants(proc.pid)
        names = {open(f"/proc/{k}/comm").read().strip() for k in kids if _alive(k)}
        assert any("qemu" in n for n in names), names  # we really caught a VM mid-run
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)
        rest = proc.stdout.read()
        if sig == signal.SIGTERM:
            assert rc == 130 and "interrupted" in rest, rest
        # qemu and virtiofsd die with their parent (PDEATHSIG) or in cleanup.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(k) for k in kids):
            time.sleep(0.2)
        left = [k for k in kids if _alive(k)]
        assert not left, [open(f"/proc/{k}/cmdline").read()[:80] for k in left]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
