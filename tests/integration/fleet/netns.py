"""Several hosts on one machine: network namespaces on a private bridge.

Each host is a network namespace with its own loopback and one veth into a
bridge in the root namespace; the root namespace (the test process) gets an
address on the bridge too, so it can reach every host. Nothing is routed
outside: the subnet is private to this bridge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def netns_available() -> str | None:
    """None when namespaces can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = f"schedcp-probe-{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    name: str
    netns: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this host's network namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass
class Fleet:
    """``count`` hosts on subnet 10.<a>.<b>.0/24 (from the run id), cleaned up by ``close``."""

    count: int
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    hosts: list[Host] = field(default_factory=list)
    bridge: str = ""
    host_address: str = ""
    _forward_rules: list[list[str]] = field(default_factory=list)

    def open(self) -> Fleet:
        n = int(self.run_id, 16)
        subnet = f"10.{200 + n % 50}.{(n >> 8) % 250}"
        self.bridge = f"scbr{self.run_id}"
        self.host_address = f"{subnet}.254"
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.host_address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(self.count):
                ns = f"schedcp-{self.run_id}-{i}"
                outer, inner = f"scv{self.run_id}{i}", f"sci{self.run_id}{i}"
                _ip("netns", "add", ns)
                _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
                _ip("link", "set", inner, "netns", ns)
                _ip("link", "set", outer, "master", self.bridge)
                _ip("link", "set", outer, "up")
                address = f"{subnet}.{i + 1}"
                _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inner)
                _ip("-n", ns, "link", "set", inner, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                self.hosts.append(Host(name=f"node{i}", netns=ns, address=address))
            self._accept_forwarding()
        except BaseException:
            self.close()
            raise
        return self

    def _accept_forwarding(self) -> None:
        # dockerd sets the FORWARD policy to DROP; with br_netfilter loaded
        # that would also drop traffic between ports of our bridge.
        if shutil.which("iptables") is None:
            return
        for direction in ("-i", "-o"):
            rule = ["FORWARD", direction, self.bridge, "-j", "ACCEPT"]
            if subprocess.run(["iptables", "-I", *rule], capture_output=True, timeout=20).returncode == 0:
                self._forward_rules.append(rule)

    def close(self) -> None:
        for rule in self._forward_rules:
            subprocess.run(["iptables", "-D", *rule], capture_output=True, timeout=20)
        self._forward_rules.clear()
        for host in self.hosts:
            # Any process still inside would keep the namespace's network alive.
            pids = _ip("netns", "pids", host.netns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            _ip("netns", "del", host.netns, check=False)
        for i in range(self.count):
            _ip("link", "del", f"scv{self.run_id}{i}", check=False)
        if self.bridge:
            _ip("link", "del", self.bridge, check=False)
        self.hosts.clear()

    def __enter__(self) -> Fleet:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
