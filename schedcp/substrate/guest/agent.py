"""The guest agent of a schedcp micro-VM (stdlib only: it runs under the host's
python inside the guest's chroot, without the virtualenv).

Protocol, JSON lines on the virtio-serial port ``schedcp.control``:

- agent -> host, once: ``{"event": "ready", "uptime_s": ..., "kernel": ...}``
- host -> agent: ``{"id": N, "op": "run", "argv": [...], "env": {...},
  "cwd": "/", "timeout": 60, "stdin": "..."}``; ``{"id": N, "op": "read_file",
  "path": ..., "max_bytes": ...}``; ``{"id": N, "op": "write_file", "path": ...,
  "data_b64": ..., "mode": 420}``; ``{"id": N, "op": "ping"}``;
  ``{"id": N, "op": "shutdown"}``.
- agent -> host: ``{"id": N, "ok": true, ...}`` or ``{"id": N, "ok": false,
  "error": "..."}``. Requests are served concurrently, one thread each.

Structured results go out on a second port, ``schedcp.results``, which only the
agent holds open (a virtio port can be opened by one process at a time).
Commands write JSON lines to the FIFO named by ``$SCHEDCP_RESULTS`` (one
``write`` per line, at most 4 KiB, so concurrent writers never interleave); the
agent forwards them. After a command exits the agent pushes an end marker
``{"schedcp_end": N}`` through the same FIFO, so the host knows every record
the command wrote has arrived before it sees the marker.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time

RUN = "/run/schedcp"
CONTROL = "/dev/virtio-ports/schedcp.control"
RESULTS = "/dev/virtio-ports/schedcp.results"
FIFO = RUN + "/results.fifo"
MAX_OUTPUT = 16 * 1024 * 1024


class Agent:
    def __init__(self) -> None:
        with open(RUN + "/job.json") as fh:
            self.config = json.load(fh)
        self.base_env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "SCHEDCP_GUEST": "1",
            "SCHEDCP_RESULTS": FIFO,
        }
        self.base_env.update(self.config.get("env") or {})
        self.ctl = open(CONTROL, "r+b", buffering=0)
        self.ctl_lock = threading.Lock()
        os.mkfifo(FIFO, 0o666)
        # Held open read-write so the reader never sees EOF between writers.
        self.fifo_fd = os.open(FIFO, os.O_RDWR)
        self.fifo_lock = threading.Lock()
        self.res_fd = os.open(RESULTS, os.O_WRONLY)

    # -- channels ---------------------------------------------------------

    def send(self, msg: dict) -> None:
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        with self.ctl_lock:
            view = memoryview(data)
            while view:
                n = self.ctl.write(view)
                view = view[n or 0:]

    def forward_results(self) -> None:
        """Copy the FIFO to the results port, whole lines only."""
        buf = b""
        while True:
            chunk = os.read(self.fifo_fd, 65536)
            if not chunk:
                continue
            buf += chunk
            *lines, buf = buf.split(b"\n")
            out = b"".join(line + b"\n" for line in lines if line.strip())
            view = memoryview(out)
            while view:
                view = view[os.write(self.res_fd, view):]

    def end_marker(self, req_id: object) -> None:
        line = b"\n" + json.dumps({"schedcp_end": req_id}).encode() + b"\n"
        with self.fifo_lock:
            os.write(self.fifo_fd, line)

    # -- operations -------------------------------------------------------

    def op_run(self, req: dict) -> dict:
        env = dict(self.base_env)
        env.update(req.get("env") or {})
        env["SCHEDCP_JOB_ID"] = str(req.get("id"))
        timeout = req.get("timeout")
        stdin = req.get("stdin")
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                req["argv"], cwd=req.get("cwd") or "/tmp", env=env,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            self.end_marker(req.get("id"))
            return {"ok": False, "error": f"cannot start {req['argv'][0]!r}: {exc}",
                    "exit_code": 127}
        timed_out = False
        try:
            out, err = proc.communicate(
                input=stdin.encode() if stdin is not None else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
        # Leftover background children of the command die with it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.end_marker(req.get("id"))
        return {
            "ok": True,
            "exit_code": proc.returncode,
            "timed_out": timed_out,
            "duration_s": round(time.monotonic() - t0, 6),
            "stdout": out[:MAX_OUTPUT].decode("utf-8", "replace"),
            "stderr": err[:MAX_OUTPUT].decode("utf-8", "replace"),
            "truncated": len(out) > MAX_OUTPUT or len(err) > MAX_OUTPUT,
        }

    def op_read_file(self, req: dict) -> dict:
        limit = int(req.get("max_bytes") or MAX_OUTPUT)
        with open(req["path"], "rb") as fh:
            data = fh.read(limit + 1)
        return {"ok": True, "data_b64": base64.b64encode(data[:limit]).decode(),
                "truncated": len(data) > limit}

    def op_write_file(self, req: dict) -> dict:
        path = req["path"]
        data = base64.b64decode(req.get("data_b64", ""))
        with open(path, "wb") as fh:
            fh.write(data)
        os.chmod(path, int(req.get("mode", 0o644)))
        return {"ok": True, "bytes": len(data)}

    def handle(self, req: dict) -> None:
        op = req.get("op")
        try:
            if op == "run":
                reply = self.op_run(req)
            elif op == "read_file":
                reply = self.op_read_file(req)
            elif op == "write_file":
                reply = self.op_write_file(req)
            elif op == "ping":
                reply = {"ok": True, "uptime_s": _uptime()}
            elif op == "shutdown":
                self.send({"id": req.get("id"), "ok": True})
                os.sync()
                os._exit(0)  # init then reboots, which ends qemu
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as exc:  # report, never kill the agent
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        reply["id"] = req.get("id")
        self.send(reply)

    def serve(self) -> None:
        threading.Thread(target=self.forward_results, daemon=True).start()
        try:
            with open(RUN + "/init_uptime") as fh:
                init_uptime = float(fh.read())
        except (OSError, ValueError):
            init_uptime = None
        self.send({"event": "ready", "uptime_s": _uptime(), "init_uptime_s": init_uptime,
                   "kernel": os.uname().release, "python": sys.version.split()[0]})
        buf = b""
        while True:
            chunk = self.ctl.read(65536)
            if not chunk:
                # Host side not connected (yet/any more): the port reads EOF.
                time.sleep(0.05)
                continue
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                try:
                    req = json.loads(line)
                except ValueError:
                    self.send({"id": None, "ok": False, "error": "bad JSON request"})
                    continue
                threading.Thread(target=self.handle, args=(req,), daemon=True).start()


def _uptime() -> float:
    with open("/proc/uptime") as fh:
        return float(fh.read().split()[0])


if __name__ == "__main__":
    Agent().serve()
