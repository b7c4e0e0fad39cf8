"""The executor's audit log: every privileged action, append-only.

One JSON object per line, written with O_APPEND and fsynced before the
action is reported, so a crash never loses a record of something that
happened. The log is never rewritten or truncated by schedcp.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, *, action: str, outcome: str, node: str, token_id: str = "", **details: Any) -> dict[str, Any]:
        """Append one record: what, when, which token, and the outcome."""
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "action": action,
            "outcome": outcome,
            "node": node,
            "token_id": token_id,
        }
        entry.update({k: v for k, v in details.items() if v is not None})
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]
