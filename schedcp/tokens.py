"""Deployment tokens: the verifier's Ed25519 signature over a passed verdict.

A :class:`~schedcp.v1.verdict_pb2.DeploymentToken` carries the serialized
``TokenClaims`` bytes and an Ed25519 signature over exactly those bytes, so a
verifier never depends on protobuf re-serialisation being stable.

Two halves live here:

* the issuing half (:class:`KeyRing`, :func:`issue_token`), used only by the
  verifier service: a key ring on disk (private keys 0600), key ids derived
  from the public key, rotation that keeps old keys valid for verification
  until they are retired, and an export of the public keys for executors;
* the checking half (:func:`verify_token`, :func:`load_trusted_keys`,
  :class:`NonceLedger`), used by executors: it returns the claims or raises a
  :class:`TokenError` subclass that names the precise reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from google.protobuf.message import DecodeError

from schedcp.errors import SchedcpError
from schedcp.v1 import common_pb2, verdict_pb2

ALGORITHM = "Ed25519"
#: Default validity of a token: long enough for a canary + bake, short enough
#: that a leaked token is soon useless.
DEFAULT_TTL_S = 3600.0
#: Clock skew tolerated between the verifier and an executor.
DEFAULT_LEEWAY_S = 30.0

# ------------------------------------------------------------------ errors


class TokenError(SchedcpError):
    """A deployment token was refused; the subclass says why."""

    code = "permission_denied"
    #: Short machine-readable reason, stable across versions.
    reason = "invalid"


class MalformedToken(TokenError):
    reason = "malformed"


class UnknownKey(TokenError):
    reason = "unknown_key"


class BadSignature(TokenError):
    reason = "bad_signature"


class TokenExpired(TokenError):
    reason = "expired"


class TokenNotYetValid(TokenError):
    reason = "not_yet_valid"


class DigestMismatch(TokenError):
    reason = "digest_mismatch"


class WrongNode(TokenError):
    reason = "wrong_node"


class ReplayedNonce(TokenError):
    reason = "replayed_nonce"


class KeyRingError(SchedcpError):
    """The on-disk key ring is unreadable or inconsistent."""

    code = "internal"


# ------------------------------------------------------------------ helpers


def sha256_hex_digest(data: bytes) -> str:
    """``"sha256:<hex>"`` of ``data`` (the digest form used in every contract)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def key_id_for(public_key: bytes) -> str:
    """Derive a key id from a raw 32-byte Ed25519 public key.

    Deriving it (instead of naming keys freely) means a key id can never be
    reused for different key material.
    """
    if len(public_key) != 32:
        raise MalformedToken(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return "ed25519-" + hashlib.sha256(public_key).hexdigest()[:16]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _as_public_key(value: bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(value, Ed25519PublicKey):
        return value
    return Ed25519PublicKey.from_public_bytes(bytes(value))


def _atomic_write(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ key ring


@dataclass(frozen=True)
class PublicKeyInfo:
    """One key of the ring as executors see it."""

    key_id: str
    public_key: bytes
    active: bool
    created_at: float
    retired: bool = False


class KeyRing:
    """Ed25519 signing keys on disk, with one active key and rotation.

    Layout of ``directory``: ``<key_id>.pem`` (PKCS#8 private key, mode 0600)
    and ``ring.json`` (active key id, creation times, retired ids). Retired keys
    stay on disk for audit but are no longer exported as trusted.
    """

    _STATE = "ring.json"

    def __init__(self, directory: Path | str) -> None:
        self._dir = Path(directory)
        self._lock = threading.Lock()
        self._dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)
        self._keys: dict[str, Ed25519PrivateKey] = {}
        self._state: dict = {"active": None, "keys": {}}
        self._load()
        if self._state["active"] is None:
            self.rotate()

    # -- persistence
    def _load(self) -> None:
        state_path = self._dir / self._STATE
        if state_path.exists():
            try:
                self._state = json.loads(state_path.read_text())
            except (OSError, ValueError) as exc:
                raise KeyRingError(
                    f"cannot read key ring state {state_path}: {exc}",
                    hint="restore it from backup or move the directory away to start a new ring",
                ) from exc
        for key_id in self._state.get("keys", {}):
            pem = self._dir / f"{key_id}.pem"
            try:
                key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
            except (OSError, ValueError) as exc:
                raise KeyRingError(f"cannot read signing key {pem}: {exc}") from exc
            if not isinstance(key, Ed25519PrivateKey):
                raise KeyRingError(f"{pem} is not an Ed25519 private key")
            if key_id_for(_raw_public(key.public_key())) != key_id:
                raise KeyRingError(f"{pem} does not match its key id {key_id}")
            self._keys[key_id] = key

    def _save(self) -> None:
        data = json.dumps(self._state, indent=2, sort_keys=True).encode()
        _atomic_write(self._dir / self._STATE, data, mode=0o600)

    # -- operations
    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def active_key_id(self) -> str:
        return str(self._state["active"])

    def rotate(self) -> str:
        """Create a new key and make it the active signer; returns its id.

        The previous keys stay trusted for verification until :meth:`retire`,
        so tokens already issued remain usable through a rotation.
        """
        with self._lock:
            key = Ed25519PrivateKey.generate()
            key_id = key_id_for(_raw_public(key.public_key()))
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _atomic_write(self._dir / f"{key_id}.pem", pem, mode=0o600)
            self._keys[key_id] = key
            self._state.setdefault("keys", {})[key_id] = {
                "created_at": time.time(),
                "retired": False,
            }
            self._state["active"] = key_id
            self._save()
            return key_id

    def retire(self, key_id: str) -> None:
        """Stop trusting ``key_id``: tokens it signed will be refused.

        The active key cannot be retired; rotate first.
        """
        with self._lock:
            if key_id not in self._keys:
                raise KeyRingError(f"no key {key_id!r} in {self._dir}")
            if key_id == self._state["active"]:
                raise KeyRingError(
                    f"{key_id} is the active signing key", hint="rotate() first, then retire it"
                )
            self._state["keys"][key_id]["retired"] = True
            self._save()

    def public_keys(self, *, include_retired: bool = False) -> list[PublicKeyInfo]:
        """The ring's public keys, active first."""
        out = []
        for key_id, meta in self._state["keys"].items():
            if meta.get("retired") and not include_retired:
                continue
            out.append(
                PublicKeyInfo(
                    key_id=key_id,
                    public_key=_raw_public(self._keys[key_id].public_key()),
                    active=key_id == self._state["active"],
                    created_at=float(meta.get("created_at", 0.0)),
                    retired=bool(meta.get("retired")),
                )
            )
        out.sort(key=lambda k: (not k.active, -k.created_at))
        return out

    def trusted_keys(self) -> dict[str, bytes]:
        """``{key_id: raw public key}`` of every non-retired key."""
        return {k.key_id: k.public_key for k in self.public_keys()}

    def export_public(self, path: Path | str) -> Path:
        """Write the trusted public keys as JSON for executors; returns the path.

        Format: ``{"algorithm": "Ed25519", "keys": [{"key_id", "public_key"
        (base64), "active"}]}`` — read back with :func:`load_trusted_keys`.
        """
        path = Path(path)
        doc = {
            "algorithm": ALGORITHM,
            "keys": [
                {
                    "key_id": k.key_id,
                    "public_key": base64.b64encode(k.public_key).decode(),
                    "active": k.active,
                }
                for k in self.public_keys()
            ],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, json.dumps(doc, indent=2).encode(), mode=0o644)
        return path

    def sign(self, claims: verdict_pb2.TokenClaims) -> verdict_pb2.DeploymentToken:
        """Sign ``claims`` with the active key (``claims.key_id`` is set to it)."""
        with self._lock:
            key_id = self._state["active"]
            key = self._keys[key_id]
        claims.key_id = key_id
        body = claims.SerializeToString(deterministic=True)
        return verdict_pb2.DeploymentToken(
            claims=body, signature=key.sign(body), key_id=key_id, algorithm=ALGORITHM
        )


def load_trusted_keys(path: Path | str) -> dict[str, bytes]:
    """Read a public-key export (see :meth:`KeyRing.export_public`).

    Each key id is re-derived from its key so a tampered file cannot map a
    trusted id to another key.
    """
    try:
        doc = json.loads(Path(path).read_text())
        keys = {}
        for entry in doc["keys"]:
            raw = base64.b64decode(entry["public_key"])
            if key_id_for(raw) != entry["key_id"]:
                raise KeyRingError(f"{path}: key id {entry['key_id']} does not match its key")
            keys[entry["key_id"]] = raw
        return keys
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyRingError(
            f"cannot read trusted keys from {path}: {exc}",
            hint="export them again with `KeyRing.export_public` or the PublicKeys RPC",
        ) from exc


# ------------------------------------------------------------------ issuing


def issue_token(
    keyring: KeyRing,
    *,
    artifact_digest: str,
    config_digest: str,
    node_selector: common_pb2.NodeSelector,
    verdict_id: str,
    policy: common_pb2.PolicyRef | None = None,
    ttl_s: float = DEFAULT_TTL_S,
    now: float | None = None,
) -> verdict_pb2.DeploymentToken:
    """Sign a token allowing ``artifact_digest`` with ``config_digest`` on the selected nodes."""
    if not artifact_digest.startswith("sha256:") or not config_digest.startswith("sha256:"):
        raise SchedcpError(
            "token digests must be 'sha256:<hex>'",
            hint="use schedcp.digests.sha256_digest / config_digest",
        )
    now = time.time() if now is None else now
    claims = verdict_pb2.TokenClaims(
        token_id=str(uuid.uuid4()),
        artifact_digest=artifact_digest,
        config_digest=config_digest,
        nonce=secrets.token_hex(16),
        verdict_id=verdict_id,
    )
    claims.node_selector.CopyFrom(node_selector)
    if policy is not None:
        claims.policy.CopyFrom(policy)
    claims.not_before.FromNanoseconds(int(now * 1e9))
    claims.expires_at.FromNanoseconds(int((now + ttl_s) * 1e9))
    return keyring.sign(claims)


# ------------------------------------------------------------------ checking


class NonceLedger:
    """Remembers token nonces until their tokens expire, to refuse replays.

    Use ``ledger.seen`` as the ``seen_nonce`` argument of :func:`verify_token`.
    Persist it (e.g. in the executor's state dir) when replays across restarts
    matter; this class keeps it in memory.
    """

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, nonce: str, expires_at: float) -> bool:
        """Record ``nonce``; True when it had already been recorded."""
        now = time.time()
        with self._lock:
            for n, exp in list(self._seen.items()):
                if exp < now - DEFAULT_LEEWAY_S:
                    del self._seen[n]
            if nonce in self._seen:
                return True
            self._seen[nonce] = expires_at
            return False


def node_matches(
    selector: common_pb2.NodeSelector, node: str, labels: Mapping[str, str] | None = None
) -> bool:
    """Whether ``node`` (with ``labels``) is covered by ``selector``.

    An empty selector selects nothing: deployment scope must be explicit.
    """
    if selector.all_nodes:
        named = True
    elif selector.nodes:
        named = node in selector.nodes
    else:
        named = bool(selector.labels)
    if not named:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.labels.items())


def verify_token(
    token: verdict_pb2.DeploymentToken | bytes,
    *,
    trusted_keys: Mapping[str, bytes | Ed25519PublicKey],
    config_digest: str,
    node: str,
    artifact_bytes: bytes | None = None,
    artifact_digest: str | None = None,
    node_labels: Mapping[str, str] | None = None,
    now: float | None = None,
    seen_nonce: Callable[[str, float], bool] | None = None,
    leeway_s: float = DEFAULT_LEEWAY_S,
) -> verdict_pb2.TokenClaims:
    """Check a deployment token and return its claims.

    The executor passes the exact artifact it is about to load
    (``artifact_bytes``; or its digest when it has already hashed it), the
    config digest of the tunables it will apply and its own node name. The
    checks run signature first, so nothing in unsigned bytes is trusted.

    ``seen_nonce(nonce, expires_at)`` must record the nonce and return True
    when it was already recorded (see :class:`NonceLedger`); pass None only
    where replay is harmless (e.g. dry runs).

    Raises a :class:`TokenError` subclass: MalformedToken, UnknownKey,
    BadSignature, TokenNotYetValid, TokenExpired, DigestMismatch, WrongNode or
    ReplayedNonce.
    """
    if isinstance(token, bytes | bytearray):
        parsed = verdict_pb2.DeploymentToken()
        try:
            parsed.ParseFromString(bytes(token))
        except DecodeError as exc:
            raise MalformedToken(f"token bytes do not parse: {exc}") from exc
        token = parsed
    if token.algorithm and token.algorithm != ALGORITHM:
        raise MalformedToken(f"unsupported token algorithm {token.algorithm!r}; expected Ed25519")
    if not token.claims or not token.signature:
        raise MalformedToken("token has no claims or no signature")
    if token.key_id not in trusted_keys:
        raise UnknownKey(
            f"token signed by key {token.key_id!r}, which is not trusted here",
            hint="refresh the verifier's public keys (PublicKeys RPC); the key may be retired",
        )
    try:
        _as_public_key(trusted_keys[token.key_id]).verify(token.signature, token.claims)
    except (InvalidSignature, ValueError) as exc:
        raise BadSignature(
            f"signature does not verify with key {token.key_id}",
            hint="the token was altered or not issued by this verifier",
        ) from exc
    claims = verdict_pb2.TokenClaims()
    try:
        claims.ParseFromString(token.claims)
    except DecodeError as exc:
        raise MalformedToken(f"signed claims do not parse: {exc}") from exc
    if claims.key_id != token.key_id:
        raise MalformedToken(
            f"claims name key {claims.key_id!r} but the envelope says {token.key_id!r}"
        )

    now = time.time() if now is None else now
    not_before = claims.not_before.ToNanoseconds() / 1e9
    expires_at = claims.expires_at.ToNanoseconds() / 1e9
    if now + leeway_s < not_before:
        raise TokenNotYetValid(
            f"token {claims.token_id} is valid from {not_before:.0f}, now is {now:.0f}",
            hint="check the clocks of verifier and node (NTP)",
        )
    if now - leeway_s >= expires_at:
        raise TokenExpired(
            f"token {claims.token_id} expired at {expires_at:.0f}, now is {now:.0f}",
            hint="verify the candidate again to get a fresh token",
        )

    if artifact_bytes is not None:
        actual = sha256_hex_digest(artifact_bytes)
        if artifact_digest is not None and artifact_digest != actual:
            raise DigestMismatch("artifact_bytes and artifact_digest disagree")
        artifact_digest = actual
    if artifact_digest is None:
        raise SchedcpError("verify_token needs artifact_bytes or artifact_digest")
    if claims.artifact_digest != artifact_digest:
        raise DigestMismatch(
            f"artifact {artifact_digest} is not the one verified ({claims.artifact_digest})",
            hint="deploy the exact object from the verdict",
        )
    if claims.config_digest != config_digest:
        raise DigestMismatch(
            f"tunables digest {config_digest} differs from the verified {claims.config_digest}",
            hint="deploy with the tunables that were verified, or verify the new ones",
        )
    if not node_matches(claims.node_selector, node, node_labels):
        raise WrongNode(
            f"token {claims.token_id} does not cover node {node!r}",
            hint="request a verdict whose node selector includes this node",
        )
    if seen_nonce is not None and seen_nonce(claims.nonce, expires_at):
        raise ReplayedNonce(f"token {claims.token_id} (nonce {claims.nonce}) was already used")
    return claims


def public_keys_from_pairs(pairs: Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
    """Build a trusted-key map from (key_id, raw key) pairs, checking each id."""
    out = {}
    for key_id, raw in pairs:
        if key_id_for(raw) != key_id:
            raise KeyRingError(f"key id {key_id} does not match its public key")
        out[key_id] = raw
    return out
