"""``schedcp vm run``: one-shot VMs, exit codes, timeouts, and no leaks when killed."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from schedcp.substrate.kernel import Kernel

pytestmark = pytest.mark.vm

CLI = [sys.executable, "-m", "schedcp.cli.main", "vm", "run"]


def _vm_processes(cli_pid: int) -> list[str]:
    """Live (non-zombie) qemu/virtiofsd of the VM started by ``cli_pid``.

    Their command lines name the work dir, which embeds the caller's pid."""
    marker = f"schedcp-vm-{cli_pid}-"
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{d}/stat") as fh:
                state = fh.read().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            out.append(cmd.split()[0])
    return out


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _run_cli(args: list[str], timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], int]:
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


def test_run_prints_output_propagates_exit_code_and_records(sched_ext_kernel: Kernel) -> None:
    cmd = 'echo out; echo err >&2; echo \'{"ok": true}\' > "$SCHEDCP_RESULTS"; ' \
          'cat /sys/kernel/sched_ext/state; exit 3'
    proc, pid = _run_cli(["--cpus", "1", "--json", "--", "sh", "-c", cmd])
    assert proc.returncode == 3, proc.stderr
    res = json.loads(proc.stdout)
    assert res["stdout"] == "out\ndisabled\n" and res["stderr"] == "err\n"
    assert res["records"] == [{"ok": True}]
    assert res["kernel"] == sched_ext_kernel.release
    assert "schedcp-init: ready" in res["console"]
    assert _vm_processes(pid) == []


def test_timeout_kills_the_vm() -> None:
    t0 = time.monotonic()
    proc, pid = _run_cli(["--cpus", "1", "--timeout", "2", "--", "sleep", "600"])
    assert proc.returncode == 124
    assert "timed out after 2s" in proc.stderr
    assert time.monotonic() - t0 < 120  # boot + 2 s + teardown, never the 600 s sleep
    assert _vm_processes(pid) == []


def test_sigkill_of_the_cli_leaves_no_qemu_or_virtiofsd() -> None:
    proc = subprocess.Popen([*CLI, "--cpus", "1", "--", "sleep", "600"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while sorted(os.path.basename(p) for p in _vm_processes(proc.pid)) != \
                ["qemu-system-x86_64", "virtiofsd"]:
            assert proc.poll() is None, "the CLI exited before its VM started"
            assert time.monotonic() < deadline, "VM processes never appeared"
            time.sleep(0.2)
        # Kill it once the guest is really up (init handed over to the agent),
        # not merely while qemu is starting.
        consoles = glob.glob(f"{tempfile.gettempdir()}/schedcp-vm-{proc.pid}-*/console.log")
        while not any("schedcp-init: ready" in _read(c) for c in consoles):
            assert proc.poll() is None, "the CLI exited before its guest was ready"
            assert time.monotonic() < deadline, "guest never became ready"
            time.sleep(0.2)
            consoles = glob.glob(f"{tempfile.gettempdir()}/schedcp-vm-{proc.pid}-*/console.log")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _vm_processes(proc.pid):
            assert time.monotonic() < deadline, f"leaked: {_vm_processes(proc.pid)}"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bad_usage_is_a_clear_error() -> None:
    proc, _ = _run_cli([], timeout=60)
    assert proc.returncode == 2 and "no command given" in proc.stderr
