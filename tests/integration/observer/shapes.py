"""Small real workloads of each shape the classifier separates (test helpers).

Each is a real process tree started with subprocess; the caller kills the
process group. They are lean on purpose (2-core CI machine) and imitate the
reference workloads: fork-heavy "build", long-tail "batch", request/response
"server", CPU "throughput" hogs, and hogs plus an interactive sleeper.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import textwrap

PY = sys.executable

_SPIN = "import sys,time\nend=time.monotonic()+float(sys.argv[1])\nwhile time.monotonic()<end: pass\n"

SCRIPTS = {
    # Two parallel "compile" lanes, each running short jobs of varying programs.
    "build": textwrap.dedent("""
        set -e
        lane() {
          for i in $(seq 1 2000); do
            case $((i % 4)) in
              0) head -c 2000000 /dev/urandom | gzip -1 > /dev/null ;;
              1) head -c 15000000 /dev/zero | sha256sum > /dev/null ;;
              2) head -c 20000000 /dev/zero | md5sum > /dev/null ;;
              3) head -c 15000000 /dev/zero | cksum > /dev/null ;;
            esac
          done
        }
        lane & lane & wait
    """),
    # One long CPU-bound job plus a stream of short jobs of the same program.
    "batch": textwrap.dedent(f"""
        {PY} -c '{_SPIN}' 60 &
        for i in $(seq 1 600); do {PY} -c '{_SPIN}' 0.08; done &
        wait
    """),
    # Server: request/response over a socketpair, short work per request.
    "server": "exec " + PY + " -c " + shlex.quote(textwrap.dedent("""
        import os, socket, time
        a, b = socket.socketpair()
        if os.fork() == 0:
            while True:
                req = b.recv(64)
                x = 0
                for i in range(300): x += i
                b.send(req)
        while True:
            a.send(b"ping"); a.recv(64); time.sleep(0.002)
    """)),
    "throughput": f"{PY} -c '{_SPIN}' 60 & {PY} -c '{_SPIN}' 60 & wait",
    # Two CPU hogs and an interactive thread that wakes every 5 ms.
    "interactive": f"{PY} -c '{_SPIN}' 60 & {PY} -c '{_SPIN}' 60 & exec " + PY + " -c "
    + shlex.quote("import time\nwhile True:\n    time.sleep(0.005)\n    sum(range(200))\n"),
}


def start(shape: str) -> subprocess.Popen[bytes]:
    """Start a workload of ``shape`` in its own process group."""
    return subprocess.Popen(["bash", "-c", SCRIPTS[shape]], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the workload's whole process group and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
