"""A persistent micro-VM node: one boot, many commands, separate results channel."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

from schedcp.settings import REPO_ROOT
from schedcp.substrate.kernel import Kernel
from schedcp.substrate.vm import VmNode

pytestmark = [pytest.mark.vm, pytest.mark.asyncio(loop_scope="session")]

HERE = Path(__file__).resolve()
HERE_HEAD = HERE.read_text()[:3]


async def test_guest_runs_the_sched_ext_kernel(node: VmNode, sched_ext_kernel: Kernel) -> None:
    res = await node.run(["uname", "-r"])
    assert res.ok and res.stdout.strip() == sched_ext_kernel.release
    state = (await node.read_file("/sys/kernel/sched_ext/state")).decode().strip()
    assert state == "disabled"  # present, and no scheduler loaded yet
    assert node.timings["boot_s"] > 0 and node.guest_info["kernel"] == sched_ext_kernel.release


async def test_host_userspace_is_visible_read_only(node: VmNode) -> None:
    # The very same path as on the host, through virtiofs.
    res = await node.run(["/usr/bin/python3", "-c", f"print(open({str(HERE)!r}).read()[:3])"])
    assert res.ok, res.stderr
    assert res.stdout.strip() == HERE_HEAD
    ro = await node.run(["sh", "-c", f"echo x > {HERE.parent}/should-not-exist"])
    assert ro.exit_code != 0 and "Read-only" in ro.stderr
    assert not await asyncio.to_thread((HERE.parent / "should-not-exist").exists)
    mounts = (await node.read_file("/proc/mounts")).decode()
    for fs in ("bpf /sys/fs/bpf", "tmpfs /tmp", "debugfs /sys/kernel/debug"):
        assert fs in mounts


async def test_host_edits_reach_a_persistent_guest_within_seconds(node: VmNode) -> None:
    """The default virtiofs mode keeps file pages across opens (cheap exec)
    yet must not serve a host file's old contents once it changed: rewritten
    in place (same or different size), replaced by rename, or newly created."""
    # Under the checkout: the guest's /tmp is its own tmpfs, not the host's.
    cache = REPO_ROOT / ".cache"
    cache.mkdir(exist_ok=True)
    d = Path(tempfile.mkdtemp(dir=cache, prefix="vm-edits-"))
    f = d / "f.txt"

    async def guest_sees(expected: str) -> None:
        for _ in range(30):  # revalidation is every ~1 s
            res = await node.run(["cat", str(f)])
            if res.ok and res.stdout == expected:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"guest still reads {res.stdout!r}, host wrote {expected!r}")

    try:
        f.write_text("one\n")
        await guest_sees("one\n")
        f.write_text("two, longer\n")  # in place, new size
        await guest_sees("two, longer\n")
        with open(f, "r+") as h:  # in place, same size: only the mtime tells
            h.write("TWO")
        await guest_sees("TWO, longer\n")
        tmp = d / "f.tmp"
        tmp.write_text("replaced\n")
        tmp.replace(f)
        await guest_sees("replaced\n")
    finally:
        shutil.rmtree(d, ignore_errors=True)


async def test_results_records_arrive_on_their_own_channel(node: VmNode) -> None:
    script = (
        "import json, os\n"
        "with open(os.environ['SCHEDCP_RESULTS'], 'w') as f:\n"
        "    for i in range(50):\n"
        "        f.write(json.dumps({'i': i, 'job': os.environ['SCHEDCP_JOB_ID']}) + '\\n')\n"
        "        f.flush()\n"
        "print('done')\n")
    res = await node.run(["/usr/bin/python3", "-c", script])
    assert res.ok, res.stderr
    assert res.stdout == "done\n"  # records never leak into stdout
    assert [r["i"] for r in res.records] == list(range(50))
    assert '"i": 49' not in node.console_tail(200)  # nor into the console
    sh = await node.run(["sh", "-c", 'echo \'{"a": 1}\' > "$SCHEDCP_RESULTS"; echo notjson > "$SCHEDCP_RESULTS"'])
    assert sh.records == [{"a": 1}] and "notjson" in sh.invalid_records


async def test_exit_code_stderr_env_cwd_stdin_and_files(node: VmNode) -> None:
    res = await node.run(["sh", "-c", "cat; pwd; echo $SCHEDCP_TEST $EXTRA; echo oops >&2; exit 5"],
                         env={"EXTRA": "x"}, cwd="/run", stdin="in\n")
    assert res.exit_code == 5 and not res.ok
    assert res.stdout == "in\n/run\nyes x\n" and res.stderr == "oops\n"
    hello = await node.run(["sh", "/run/schedcp/files/hello.sh"])
    assert hello.stdout == "hello from yes\n"
    missing = await node.run(["/no/such/binary"])
    assert missing.exit_code == 127 and "cannot start" in missing.stderr


async def test_command_timeout_kills_its_process_group(node: VmNode) -> None:
    res = await node.run(["sh", "-c", "sleep 100 & sleep 100"], timeout=1.5)
    assert res.timed_out and res.exit_code == -9
    ps = await node.run(["sh", "-c", "ps -eo comm | grep -c '^sleep$' || true"])
    assert ps.stdout.strip() == "0"


async def test_concurrent_requests_and_files(node: VmNode) -> None:
    await node.write_file("/tmp/data.txt", b"payload")
    slow = asyncio.create_task(node.run(["sh", "-c", "sleep 1; cat /tmp/data.txt"]))
    await asyncio.sleep(0.1)
    # The agent answers while the slow command runs.
    assert (await node.read_file("/tmp/data.txt")) == b"payload"
    assert (await slow).stdout == "payload"


async def test_boot_module_was_loaded(node: VmNode) -> None:
    assert "overlay" in (await node.read_file("/proc/filesystems")).decode()


async def test_vm_lifetime_is_a_hard_limit(sched_ext_kernel: Kernel) -> None:
    from schedcp.substrate import VmTimeout

    vm = VmNode(kernel=sched_ext_kernel, cpus=1, mem_mb=512, lifetime=120)
    await vm.start()
    vm.set_lifetime(3)  # counted from now, so a slow boot on a busy machine does not matter
    pids = list(vm._pgids)
    with pytest.raises(VmTimeout, match="lifetime"):
        await vm.run(["sleep", "100"], timeout=100)
    await vm.shutdown()
    for pid in pids:
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


