"""What a node runs and what is known to be good, kept across restarts.

The state file is written atomically (temp file, fsync, rename) before an
action is reported. An operation in progress is written down first as an
*intent*; after a crash, reconciliation finds the intent, compares it with
the kernel's own view (/sys/kernel/sched_ext) and either confirms the new
scheduler or rolls back to the known-good one, so a restart never leaves the
node in an unknown state.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from schedcp.errors import SchedcpError


@dataclass
class Deployed:
    """A scheduler as deployed on a node: enough to load it again."""

    name: str  # the struct_ops name the kernel reports in root/ops
    policy: str
    version: str
    artifact: str  # path of the exact object (kept in the state dir)
    artifact_digest: str
    config_digest: str
    tunables: dict[str, Any]
    token_id: str
    since: float = field(default_factory=time.time)


@dataclass
class Intent:
    """An operation started but not yet confirmed."""

    op: str  # "deploy" | "rollback"
    rollout_id: str
    target: Deployed | None
    started: float = field(default_factory=time.time)


@dataclass
class NodeState:
    running: Deployed | None = None
    known_good: Deployed | None = None  # None means EEVDF
    intent: Intent | None = None
    bad_artifacts: list[str] = field(default_factory=list)


def _deployed(raw: dict[str, Any] | None) -> Deployed | None:
    return Deployed(**raw) if raw else None


class NodeStateStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def load(self) -> NodeState:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return NodeState()
        except (OSError, ValueError) as exc:
            raise SchedcpError(f"executor state {self.path} is unreadable: {exc}",
                               hint="inspect it; moving it away makes the executor start from the kernel's view") from exc
        intent = raw.get("intent")
        return NodeState(
            running=_deployed(raw.get("running")),
            known_good=_deployed(raw.get("known_good")),
            intent=Intent(op=intent["op"], rollout_id=intent["rollout_id"], target=_deployed(intent.get("target")),
                          started=intent.get("started", 0.0)) if intent else None,
            bad_artifacts=list(raw.get("bad_artifacts", [])),
        )

    def save(self, state: NodeState) -> None:
        data = json.dumps(asdict(state), indent=2, sort_keys=True).encode()
        with self._lock:
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
