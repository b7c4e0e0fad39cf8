"""Deployment tokens: signing, every refusal reason, rotation and key export."""

from __future__ import annotations

import os
import stat

import pytest

from schedcp import tokens
from schedcp.v1 import common_pb2, verdict_pb2

ART = b"\x7fELF fake object bytes"
CFG = "sha256:" + "c" * 64
NOW = 1_800_000_000.0


def _issue(ring, **kw):
    args = dict(
        artifact_digest=tokens.sha256_hex_digest(ART),
        config_digest=CFG,
        node_selector=common_pb2.NodeSelector(nodes=["node-a"]),
        verdict_id="v1",
        ttl_s=600,
        now=NOW,
    )
    args.update(kw)
    return tokens.issue_token(ring, **args)


def _verify(tok, ring, **kw):
    args = dict(
        trusted_keys=ring.trusted_keys(),
        artifact_bytes=ART,
        config_digest=CFG,
        node="node-a",
        now=NOW + 1,
        seen_nonce=tokens.NonceLedger().seen,
    )
    args.update(kw)
    return tokens.verify_token(tok, **args)


@pytest.fixture
def ring(tmp_path):
    return tokens.KeyRing(tmp_path / "keys")


def test_sign_and_verify_roundtrip(ring):
    tok = _issue(ring)
    claims = _verify(tok, ring)
    assert claims.verdict_id == "v1"
    assert claims.key_id == ring.active_key_id == tok.key_id
    assert tok.algorithm == "Ed25519"
    # Bytes form verifies too (what crosses the wire).
    assert _verify(tok.SerializeToString(), ring).token_id == claims.token_id


def test_private_keys_are_0600(ring):
    pem = ring.directory / f"{ring.active_key_id}.pem"
    assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ring.directory).st_mode) == 0o700


def test_tampered_claims_bad_signature(ring):
    tok = _issue(ring)
    claims = verdict_pb2.TokenClaims.FromString(tok.claims)
    claims.node_selector.all_nodes = True
    tok.claims = claims.SerializeToString()
    with pytest.raises(tokens.BadSignature):
        _verify(tok, ring)


def test_unknown_key(ring, tmp_path):
    other = tokens.KeyRing(tmp_path / "other")
    tok = _issue(other)
    with pytest.raises(tokens.UnknownKey):
        _verify(tok, ring)


def test_expired_and_not_yet_valid(ring):
    tok = _issue(ring)
    with pytest.raises(tokens.TokenExpired):
        _verify(tok, ring, now=NOW + 601 + tokens.DEFAULT_LEEWAY_S)
    with pytest.raises(tokens.TokenNotYetValid):
        _verify(tok, ring, now=NOW - 1 - tokens.DEFAULT_LEEWAY_S)


def test_digest_mismatch_artifact_and_config(ring):
    tok = _issue(ring)
    with pytest.raises(tokens.DigestMismatch, match="artifact"):
        _verify(tok, ring, artifact_bytes=ART + b"x")
    with pytest.raises(tokens.DigestMismatch, match="tunables"):
        _verify(tok, ring, config_digest="sha256:" + "d" * 64)


def test_wrong_node_and_labels(ring):
    with pytest.raises(tokens.WrongNode):
        _verify(_issue(ring), ring, node="node-b")
    sel = common_pb2.NodeSelector(all_nodes=True, labels={"pool": "batch"})
    tok = _issue(ring, node_selector=sel)
    assert _verify(tok, ring, node="x", node_labels={"pool": "batch"})
    with pytest.raises(tokens.WrongNode):
        _verify(tok, ring, node="x", node_labels={"pool": "web"})
    # An empty selector selects nothing.
    with pytest.raises(tokens.WrongNode):
        _verify(_issue(ring, node_selector=common_pb2.NodeSelector()), ring)


def test_replayed_nonce(ring):
    ledger = tokens.NonceLedger()
    tok = _issue(ring)
    _verify(tok, ring, seen_nonce=ledger.seen)
    with pytest.raises(tokens.ReplayedNonce):
        _verify(tok, ring, seen_nonce=ledger.seen)


def test_malformed(ring):
    with pytest.raises(tokens.MalformedToken):
        _verify(b"\xff\xff\xff", ring)
    with pytest.raises(tokens.MalformedToken):
        _verify(verdict_pb2.DeploymentToken(key_id=ring.active_key_id), ring)


def test_every_refusal_is_a_token_error():
    for cls in (tokens.BadSignature, tokens.UnknownKey, tokens.TokenExpired,
                tokens.TokenNotYetValid, tokens.DigestMismatch, tokens.WrongNode,
                tokens.ReplayedNonce, tokens.MalformedToken):
        assert issubclass(cls, tokens.TokenError)
        assert cls.reason


def test_rotation_keeps_old_tokens_until_retired(ring, tmp_path):
    old_id = ring.active_key_id
    old_tok = _issue(ring)
    new_id = ring.rotate()
    assert new_id != old_id and ring.active_key_id == new_id
    assert _issue(ring).key_id == new_id
    assert _verify(old_tok, ring)  # still trusted
    # A reopened ring sees the same state.
    again = tokens.KeyRing(ring.directory)
    assert again.active_key_id == new_id
    assert set(again.trusted_keys()) == {old_id, new_id}
    with pytest.raises(tokens.KeyRingError):
        again.retire(new_id)
    again.retire(old_id)
    with pytest.raises(tokens.UnknownKey):
        _verify(old_tok, again)


def test_public_key_export_roundtrip(ring, tmp_path):
    ring.rotate()
    path = ring.export_public(tmp_path / "pub" / "keys.json")
    trusted = tokens.load_trusted_keys(path)
    assert trusted == ring.trusted_keys()
    assert _verify(_issue(ring), ring, trusted_keys=trusted)


def test_export_with_swapped_key_is_rejected(ring, tmp_path):
    import json
    path = ring.export_public(tmp_path / "keys.json")
    doc = json.loads(path.read_text())
    doc["keys"][0]["key_id"] = "ed25519-0000000000000000"
    path.write_text(json.dumps(doc))
    with pytest.raises(tokens.KeyRingError):
        tokens.load_trusted_keys(path)


def test_a_passing_verdict_keeps_its_token_for_deploy_by_id(tmp_path) -> None:
    """GetVerdict hands out the token the verification issued (same node
    selector), and nothing once it has expired or for a failed verdict."""
    from services.verifier.pipeline import VerdictRecord
    from services.verifier.verifier import ExecutionVerifier

    class Pipeline:
        def __init__(self, passed: bool, vid: str) -> None:
            self.rec = VerdictRecord(verdict_id=vid, passed=passed, stages=[],
                                     artifact_digest="sha256:" + "a" * 64,
                                     config_digest="sha256:" + "b" * 64, config_json="{}",
                                     candidate_name="c")

        def verify(self, candidate, **kw):  # type: ignore[no-untyped-def]
            return self.rec

    from types import SimpleNamespace

    from schedcp import tokens as tk
    from schedcp.v1 import common_pb2, verdict_pb2

    cand = SimpleNamespace(name="c")

    ring = tk.KeyRing(tmp_path / "keys")
    sel = common_pb2.NodeSelector(nodes=["node-a"])
    ok = ExecutionVerifier(pipeline=Pipeline(True, "0123456789abcdef"), keyring=ring,
                           tokens_dir=tmp_path / "tokens")
    issued = ok.verify(cand, node_selector=sel).token  # type: ignore[arg-type]
    kept = ok.token_for("0123456789abcdef")
    assert kept == issued and verdict_pb2.TokenClaims.FromString(kept.claims).node_selector == sel
    assert ok.token_for("../../etc/passwd") is None and ok.token_for("ffffffffffff") is None

    failed = ExecutionVerifier(pipeline=Pipeline(False, "fedcba9876543210"), keyring=ring,
                               tokens_dir=tmp_path / "tokens")
    assert failed.verify(cand).token is None  # type: ignore[arg-type]
    assert failed.token_for("fedcba9876543210") is None

    short = ExecutionVerifier(pipeline=Pipeline(True, "aaaaaaaaaaaaaaaa"), keyring=ring,
                              tokens_dir=tmp_path / "tokens", token_ttl_s=-1)
    short.verify(cand)  # type: ignore[arg-type]
    assert short.token_for("aaaaaaaaaaaaaaaa") is None  # expired
