"""The Execution Verifier: pipeline + signing, and the default wiring.

:class:`ExecutionVerifier` is what the gRPC servicer, the bus consumer and the
CLI call. On a pass it signs a DeploymentToken (Ed25519, :mod:`schedcp.tokens`)
over the artifact digest, config digest and node selector.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from schedcp import tokens
from schedcp.v1 import common_pb2, verdict_pb2
from services.verifier.domain import Candidate, StageResult
from services.verifier.pipeline import Stage, VerdictCache, VerdictRecord, VerificationPipeline
from services.verifier.settings import JudgeSettings


@dataclass
class SignedVerdict:
    record: VerdictRecord
    token: verdict_pb2.DeploymentToken | None


class ExecutionVerifier:
    """Verify candidates one at a time per VM slot and sign passing verdicts."""

    def __init__(self, *, pipeline: VerificationPipeline, keyring: tokens.KeyRing,
                 token_ttl_s: float = tokens.DEFAULT_TTL_S, max_parallel: int = 1,
                 tokens_dir: Path | None = None) -> None:
        self.pipeline = pipeline
        self.keyring = keyring
        self.token_ttl_s = token_ttl_s
        # The token issued with each passing verdict, so a deploy that names
        # only the verdict id (GetVerdict) gets the token the verification
        # issued, with the node selector it was issued for.
        self.tokens_dir = tokens_dir
        # Bounded by the VM budget: on 2 cores, one or two micro-VMs at a time.
        self._slots = threading.BoundedSemaphore(max_parallel)

    def verify(self, candidate: Candidate, *, node_selector: common_pb2.NodeSelector | None = None,
               policy: common_pb2.PolicyRef | None = None,
               progress: Callable[[StageResult], None] | None = None,
               skip_performance: bool = False, use_cache: bool = True) -> SignedVerdict:
        from schedcp import tracing

        with tracing.tracer().start_as_current_span("verifier.verify") as span, self._slots:
            rec = self.pipeline.verify(candidate, progress=progress,
                                       skip_performance=skip_performance, use_cache=use_cache)
            # The decision and why: which stage failed first, with which rules.
            failed = next((s for s in rec.stages if s.status.value == "failed"), None)
            span.set_attribute("schedcp.verdict", "pass" if rec.passed else "fail")
            span.set_attribute("schedcp.verdict_id", rec.verdict_id)
            span.set_attribute("schedcp.candidate", candidate.name)
            span.set_attribute("schedcp.artifact_digest", rec.artifact_digest)
            span.set_attribute("schedcp.config_digest", rec.config_digest)
            span.set_attribute("schedcp.cached", rec.cached)
            if failed is not None:
                span.set_attribute("schedcp.failed_stage", failed.name)
                span.set_attribute("schedcp.failed_rules",
                                   sorted({f.rule for f in failed.findings
                                           if f.severity.label == "error"}))
            for s in rec.stages:
                span.set_attribute(f"schedcp.stage.{s.name}", f"{s.status.value} {s.duration_s:.2f}s")
        token = None
        if rec.passed:
            sel = node_selector if node_selector is not None else common_pb2.NodeSelector(
                all_nodes=True)
            token = tokens.issue_token(self.keyring, artifact_digest=rec.artifact_digest,
                                       config_digest=rec.config_digest, node_selector=sel,
                                       verdict_id=rec.verdict_id, policy=policy,
                                       ttl_s=self.token_ttl_s)
            self._keep_token(rec.verdict_id, token)
        return SignedVerdict(rec, token)

    def _keep_token(self, verdict_id: str, token: verdict_pb2.DeploymentToken) -> None:
        if self.tokens_dir is None:
            return
        self.tokens_dir.mkdir(parents=True, exist_ok=True)
        path = self.tokens_dir / f"{verdict_id}.pb"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(token.SerializeToString())
        os.replace(tmp, path)

    def token_for(self, verdict_id: str) -> verdict_pb2.DeploymentToken | None:
        """The latest token issued for a verdict, unless it has expired."""
        if self.tokens_dir is None or not re.fullmatch(r"[0-9a-fA-F-]{8,64}", verdict_id):
            return None
        try:
            token = verdict_pb2.DeploymentToken.FromString(
                (self.tokens_dir / f"{verdict_id}.pb").read_bytes())
            claims = verdict_pb2.TokenClaims.FromString(token.claims)
        except (OSError, ValueError, DecodeError):
            return None
        if claims.expires_at.ToNanoseconds() / 1e9 <= time.time():
            return None
        return token

    def set_parallel(self, n: int) -> None:
        """How many candidates may be verified at once (one micro-VM each)."""
        self._slots = threading.BoundedSemaphore(max(1, n))

    def get(self, verdict_id: str) -> VerdictRecord | None:
        return self.pipeline.cache.by_id(verdict_id) if self.pipeline.cache else None


#: Bump when the dynamic stage's judgement or its measures change meaning (3: waits
#: include a task's start delay), so verdicts cached
#: under the old judge are not served for identical candidates.
JUDGE_VERSION = 3


def judge_digest(judge: JudgeSettings) -> str:
    """Digest of everything that decides a verdict besides the candidate itself."""
    import hashlib
    import json
    from dataclasses import asdict

    doc = json.dumps({"version": JUDGE_VERSION, **asdict(judge)}, sort_keys=True)
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


def default_verifier(data_dir: Path, *, judge: JudgeSettings | None = None,
                     duration_s: float | None = None, max_wait_s: float | None = None,
                     use_vm: bool = True) -> ExecutionVerifier:
    """Wire the real stages: project build chain, clang AST, micro-VMs, workloads.

    ``judge`` defaults to the SCHEDCP_VERIFIER_* environment (see
    services.verifier.settings); ``duration_s``/``max_wait_s`` override it.
    """
    from dataclasses import replace

    from schedcp.substrate.build import BPF_INCLUDE_DIR, BpfBuilder
    from schedcp.substrate.kernel import ensure_kernel
    from schedcp.substrate.nodes import boot_vm_node
    from services.verifier.dynamic import SequentialPolicy, WorkloadABRunner
    from services.verifier.settings import load_judge
    from services.verifier.stages import (
        BuildStage,
        DynamicStage,
        KernelVerifierStage,
        StaticStage,
        SuiteConfig,
        host_node,
    )

    judge = judge or load_judge()
    if duration_s is not None:
        judge = replace(judge, suite_seconds=duration_s)
    if max_wait_s is not None:
        judge = replace(judge, max_wait_s=max_wait_s)
    kernel = ensure_kernel()
    builder = BpfBuilder(btf=kernel.vmlinux)
    nodes = (lambda: boot_vm_node(kernel=kernel)) if use_vm else host_node
    suite = SuiteConfig(duration_s=judge.suite_seconds, max_wait_s=judge.max_wait_s,
                        wait_factor=judge.wait_factor, calibrate=judge.calibrate_waits)
    policy = SequentialPolicy(repetitions=judge.repetitions,
                              max_repetitions=judge.max_repetitions,
                              threshold_pct=judge.regression_pct, alpha=judge.regression_alpha,
                              calm_wait_s=judge.calm_wait_s)
    stages: dict[str, Stage] = {
        "build": BuildStage(builder=builder),
        "static": StaticStage(project_include_dirs=[BPF_INCLUDE_DIR]),
        "kernel_verifier": KernelVerifierStage(nodes=nodes),
        "dynamic": DynamicStage(suite=suite, performance=WorkloadABRunner(policy=policy)),
    }
    data_dir = Path(data_dir)
    cache = VerdictCache(data_dir / "verifier" / "cache", judge_digest=judge_digest(judge))
    pipeline = VerificationPipeline(stages=stages, cache=cache,
                                    workdir=data_dir / "verifier" / "work")
    keyring = tokens.KeyRing(data_dir / "keys")
    return ExecutionVerifier(pipeline=pipeline, keyring=keyring,
                             tokens_dir=data_dir / "verifier" / "tokens")
