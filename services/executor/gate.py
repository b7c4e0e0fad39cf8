"""The token gate: nothing is loaded without a valid verifier-signed token.

A deploy passes only with a signature from a trusted verifier key, an
artifact digest equal to the digest of the exact bytes about to be loaded, a
config digest equal to the digest of the tunables about to be applied, a
node selector that covers this node, a validity window that includes now,
and a nonce never seen before. Seen nonces are persisted, so a token cannot
be replayed across executor restarts either. Every refusal is audited.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from schedcp import tokens
from schedcp.digests import config_digest
from schedcp.v1 import verdict_pb2
from services.executor.audit import AuditLog


class PersistentNonceLedger:
    """Nonces of accepted tokens until they expire, kept in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        try:
            for line in path.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self._seen[entry["nonce"]] = float(entry["expires_at"])
        except FileNotFoundError:
            pass

    def seen(self, nonce: str, expires_at: float) -> bool:
        """Record ``nonce``; True when it was already recorded (a replay)."""
        with self._lock:
            now = time.time()
            if nonce in self._seen:
                return True
            self._seen[nonce] = expires_at
            live = {n: e for n, e in self._seen.items() if e > now - tokens.DEFAULT_LEEWAY_S}
            if len(live) < len(self._seen):
                # Compact: rewrite only the nonces that can still matter.
                self._seen = live
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text("".join(json.dumps({"nonce": n, "expires_at": e}) + "\n" for n, e in live.items()))
                os.replace(tmp, self.path)
            else:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, (json.dumps({"nonce": nonce, "expires_at": expires_at}) + "\n").encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return False


class TokenGate:
    def __init__(self, *, node: str, labels: Mapping[str, str], trusted_keys: Callable[[bool], Mapping[str, bytes]],
                 ledger: PersistentNonceLedger, audit: AuditLog, clock: Callable[[], float] = time.time) -> None:
        """``trusted_keys(refresh)`` returns the verifier keys; refresh=True re-fetches (rotation)."""
        self.node = node
        self.labels = dict(labels)
        self._keys = trusted_keys
        self._ledger = ledger
        self._audit = audit
        self._clock = clock

    def admit(self, token: verdict_pb2.DeploymentToken, *, artifact: bytes,
              tunables: Mapping[str, object]) -> verdict_pb2.TokenClaims:
        """The token's claims when everything checks out; raises TokenError (audited) otherwise."""
        cfg = config_digest(tunables)  # type: ignore[arg-type]
        token_id = _token_id(token)
        try:
            try:
                claims = self._verify(token, artifact, cfg, refresh=False)
            except tokens.UnknownKey:
                # The verifier may have rotated its key since we last looked.
                claims = self._verify(token, artifact, cfg, refresh=True)
        except tokens.TokenError as exc:
            self._audit.record(action="deploy", outcome="refused", node=self.node, token_id=token_id,
                               reason=str(exc), error=type(exc).__name__)
            raise
        self._audit.record(action="token", outcome="admitted", node=self.node, token_id=claims.token_id,
                           artifact_digest=claims.artifact_digest, config_digest=claims.config_digest,
                           key_id=claims.key_id)
        return claims

    def _verify(self, token: verdict_pb2.DeploymentToken, artifact: bytes, cfg: str,
                *, refresh: bool) -> verdict_pb2.TokenClaims:
        return tokens.verify_token(token, trusted_keys=self._keys(refresh), config_digest=cfg, node=self.node,
                                   artifact_bytes=artifact, node_labels=self.labels, now=self._clock(),
                                   seen_nonce=self._ledger.seen)


def _token_id(token: verdict_pb2.DeploymentToken) -> str:
    """The claimed token id, for the audit record of a refusal (not trusted)."""
    claims = verdict_pb2.TokenClaims()
    try:
        claims.ParseFromString(token.claims)
    except Exception:  # noqa: BLE001 - malformed tokens are audited with an empty id
        return ""
    return claims.token_id
