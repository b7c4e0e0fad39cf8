"""A NATS cluster with JetStream, one server per fleet host."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from schedcp.natsserver import find_nats_server

from .netns import Fleet, Host

CLIENT_PORT = 4222
CLUSTER_PORT = 6222


@dataclass
class ClusterNode:
    host: Host
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"nats://{self.host.address}:{CLIENT_PORT}"

    def kill(self) -> None:
        """SIGKILL: no chance to hand leadership over or flush; the hard case."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_cluster(fleet: Fleet, base: Path, *, name: str = "schedcp", timeout: float = 60.0) -> list[ClusterNode]:
    """One JetStream nats-server per host, routed to all the others; returns once every one is ready."""
    binary = find_nats_server()
    nodes: list[ClusterNode] = []
    routes = [f"nats://{h.address}:{CLUSTER_PORT}" for h in fleet.hosts]
    for host in fleet.hosts:
        store = base / host.name
        store.mkdir(parents=True, exist_ok=True)
        log = store / "nats-server.log"
        args = [binary, "-js", "-n", host.name, "-a", host.address, "-p", str(CLIENT_PORT), "-sd", str(store),
                "-l", str(log), "--cluster_name", name, "--cluster", f"nats://{host.address}:{CLUSTER_PORT}",
                "--routes", ",".join(r for r in routes if host.address not in r)]
        proc = subprocess.Popen(host.command(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        nodes.append(ClusterNode(host=host, process=proc, log=log))
    deadline = time.monotonic() + timeout
    try:
        for node in nodes:
            while True:
                text = node.log.read_text(errors="replace") if node.log.exists() else ""
                if "Server is ready" in text:
                    break
                if node.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server on {node.host.name} did not start:\n{text[-2000:]}")
                time.sleep(0.1)
    except BaseException:
        for node in nodes:
            node.kill()
        raise
    return nodes
