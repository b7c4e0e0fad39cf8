"""Fixtures for the observer's integration tests: real processes, real cgroups, root for BPF."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from services.observer.tier1 import cgroup2_mount  # noqa: E402

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="eBPF probes and cgroup creation need root")


@pytest.fixture
def spawn() -> Iterator[object]:
    """Start real processes in their own process groups; all are killed after the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def _spawn(argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        procs.append(p)
        return p

    yield _spawn
    for p in procs:
        try:
            os.killpg(p.pid, 9)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A fresh cgroup v2 directory (removed after; its processes must be gone by then)."""
    if os.geteuid() != 0:
        pytest.skip("creating a cgroup needs root")
    path = cgroup2_mount() / f"schedcp-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    procs = (path / "cgroup.procs").read_text().split()
    for pid in procs:
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass
    for _ in range(50):
        try:
            path.rmdir()
            break
        except OSError:
            import time

            time.sleep(0.1)


SPIN = "import time\nend=time.monotonic()+60\nwhile time.monotonic()<end: pass\n"


def spin_argv() -> list[str]:
    return [sys.executable, "-c", SPIN]


def bpftool_progs() -> list[dict]:
    import json

    out = subprocess.run([shutil.which("bpftool") or "bpftool", "prog", "show", "-j"], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out or "[]")
