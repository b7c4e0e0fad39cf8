"""One node's executor: the only code that loads or unloads a scheduler there.

``deploy`` admits a token, measures the baseline, writes its intent, loads
the exact verified object with the verified tunables, then bakes: it watches
the kernel for an ejection and measures the target metric, and the circuit
breaker rolls the node back to its last known-good scheduler (or EEVDF) when
anything goes wrong. ``reconcile`` runs at start-up and makes the node's
state known again after a crash or restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from schedcp import tokens
from schedcp.digests import config_digest, sha256_digest
from schedcp.errors import InvalidArgument, SchedcpError
from schedcp.substrate.loader import LoaderError
from schedcp.substrate.nodes import SchedNode
from schedcp.v1 import verdict_pb2
from services.executor.audit import AuditLog
from services.executor.breaker import CircuitBreaker, Trip, ratio
from services.executor.gate import TokenGate
from services.executor.metrics import Measurement, MetricsProbe
from services.executor.state import Deployed, Intent, NodeState, NodeStateStore

log = logging.getLogger(__name__)


@dataclass
class Report:
    """One step of a deployment on a node (becomes a DeploymentReport)."""

    node: str
    rollout_id: str
    phase: str  # PENDING | CANARY | FLEET | BAKING | COMPLETE | ROLLED_BACK | REFUSED | FAILED | HALTED
    message: str
    token_id: str = ""
    policy: str = ""
    version: str = ""
    config_digest: str = ""
    sched_ext_state: str = ""
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    breaker: list[Trip] = field(default_factory=list)
    at: float = field(default_factory=time.time)
    #: Target metric after / before, oriented so >1 is better; 0 when not measured.
    improvement: float = 0.0


Emit = Callable[[Report], Awaitable[None]]


@dataclass(frozen=True)
class DeployRequest:
    """What a node needs to deploy: the exact object, its tunables and token."""

    artifact: bytes
    tunables: Mapping[str, Any]
    token: verdict_pb2.DeploymentToken
    policy: str
    version: str
    workload_class: str
    rollout_id: str = ""
    label: str = "CANARY"  # the phase this node deploys in
    bake_s: float = 0.0
    #: Overrides the executor's default circuit-breaker threshold, percent.
    regression_pct: float | None = None


@dataclass
class NodeStatusInfo:
    node: str
    sched_ext_state: str
    root_ops: str
    running: Deployed | None
    known_good: Deployed | None
    healthy: bool
    message: str


class NodeExecutor:
    def __init__(self, *, node_name: str, node: SchedNode, gate: TokenGate, store: NodeStateStore,
                 audit: AuditLog, artifacts_dir: Path, breaker: CircuitBreaker,
                 metrics: MetricsProbe | None, watch_interval_s: float = 2.0) -> None:
        self.node_name = node_name
        self._node = node
        self._gate = gate
        self._store = store
        self._audit = audit
        self._artifacts = artifacts_dir
        self._breaker = breaker
        self._metrics = metrics
        self._watch_interval_s = watch_interval_s
        # One privileged operation at a time on a node.
        self._lock = asyncio.Lock()
        artifacts_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ deploy

    async def deploy(self, req: DeployRequest, emit: Emit) -> Report:
        rollout_id = req.rollout_id or uuid.uuid4().hex
        async with self._lock:
            return await self._deploy(replace(req, rollout_id=rollout_id), emit)

    async def _deploy(self, req: DeployRequest, emit: Emit) -> Report:
        base = dict(node=self.node_name, rollout_id=req.rollout_id, policy=req.policy, version=req.version,
                    config_digest=config_digest(req.tunables))  # type: ignore[arg-type]
        try:
            claims = await asyncio.to_thread(self._gate.admit, req.token, artifact=req.artifact,
                                             tunables=req.tunables)
        except (tokens.TokenError, InvalidArgument) as exc:
            report = Report(phase="REFUSED", message=f"token refused: {exc}", **base)  # type: ignore[arg-type]
            await emit(report)
            return report
        base["token_id"] = claims.token_id
        target = Deployed(name="", policy=req.policy, version=req.version,
                          artifact=str(self._store_artifact(req.artifact)),
                          artifact_digest=claims.artifact_digest, config_digest=claims.config_digest,
                          tunables=dict(req.tunables), token_id=claims.token_id)
        await emit(Report(phase="PENDING", message="token admitted; measuring the baseline", **base))  # type: ignore[arg-type]
        before = await self._measure(req.workload_class, req.bake_s)

        state = self._store.load()
        state.intent = Intent(op="deploy", rollout_id=req.rollout_id, target=target)
        self._store.save(state)
        try:
            if state.running is not None:
                await self._unload(state.running, reason=f"replaced by {req.policy}", token_id=claims.token_id)
                state.running = None
            result = await asyncio.to_thread(self._node.load, Path(target.artifact), tunables=req.tunables)
        except (LoaderError, SchedcpError) as exc:
            self._audit.record(action="load", outcome="failed", node=self.node_name, token_id=claims.token_id,
                               policy=req.policy, error=str(exc))
            restored = await self._restore_known_good(state, reason=f"load of {req.policy} failed")
            report = Report(phase="FAILED", message=f"load failed: {exc}; {restored}",
                            metrics_before=_metrics(before), **base)  # type: ignore[arg-type]
            await emit(report)
            return report
        target.name = result.name
        target.since = time.time()
        state.running = target
        self._store.save(state)
        self._audit.record(action="load", outcome="enabled", node=self.node_name, token_id=claims.token_id,
                           policy=req.policy, ops=result.name, artifact_digest=target.artifact_digest,
                           config_digest=target.config_digest)
        await emit(Report(phase=req.label, message=f"{result.name} enabled; baking for {req.bake_s:.0f}s",
                          sched_ext_state="enabled", metrics_before=_metrics(before), **base))  # type: ignore[arg-type]

        trip, after = await self._bake(target, req, before)
        if trip is not None:
            restored = await self._rollback_locked(state, reason=trip.reason, token_id=claims.token_id)
            report = Report(phase="ROLLED_BACK", message=f"circuit breaker: {trip.reason}; {restored}",
                            metrics_before=_metrics(before), metrics_after=_metrics(after), breaker=[trip],
                            sched_ext_state=(await self._kernel_state())[0], **base)  # type: ignore[arg-type]
            await emit(report)
            return report
        state.known_good = target
        state.intent = None
        self._store.save(state)
        self._audit.record(action="promote-known-good", outcome="ok", node=self.node_name,
                           token_id=claims.token_id, policy=req.policy)
        gain = (ratio(before.value, after.value, higher_is_better=after.higher_is_better)
                if before is not None and after is not None else 0.0)
        report = Report(phase="COMPLETE", message=f"{target.name} is running and known good",
                        metrics_before=_metrics(before), metrics_after=_metrics(after),
                        sched_ext_state="enabled", improvement=gain, **base)  # type: ignore[arg-type]
        await emit(report)
        return report

    async def _bake(self, target: Deployed, req: DeployRequest,
                    before: Measurement | None) -> tuple[Trip | None, Measurement | None]:
        """Watch for ejection for the bake time, then compare the target metric."""
        breaker = self._breaker if req.regression_pct is None else CircuitBreaker(req.regression_pct)
        deadline = time.monotonic() + req.bake_s
        while True:
            left = deadline - time.monotonic()
            st = await asyncio.to_thread(self._node.watch, target.name,
                                         duration_s=max(0.0, min(self._watch_interval_s, left)))
            exit_reason = st.exit.reason if st.exit else ""
            trip = breaker.check_state(expected_ops=target.name, sched_ext_state=st.sched_ext_state,
                                       root_ops=st.root_ops, ejected=st.ejected, exit_reason=exit_reason)
            if trip:
                return trip, None
            if time.monotonic() >= deadline:
                break
        healthy, detail = await self.health()
        trip = breaker.check_health(healthy=healthy, detail=detail)
        if trip:
            return trip, None
        after = await self._measure(req.workload_class, req.bake_s)
        if before is not None and after is not None:
            trip = breaker.check_metric(metric=after.metric, baseline=before.value, current=after.value,
                                        higher_is_better=after.higher_is_better)
            if trip:
                return trip, after
        # The health check and the measurement ran work on the node: an
        # ejection they provoked must count too.
        st = await asyncio.to_thread(self._node.state, target.name)
        trip = breaker.check_state(expected_ops=target.name, sched_ext_state=st.sched_ext_state,
                                   root_ops=st.root_ops, ejected=st.ejected,
                                   exit_reason=st.exit.reason if st.exit else "")
        return trip, after

    async def _measure(self, workload_class: str, bake_s: float) -> Measurement | None:
        if self._metrics is None or bake_s <= 0 or not workload_class:
            return None
        return await self._metrics.measure(workload_class)

    # ---------------------------------------------------------- rollback

    async def rollback(self, *, rollout_id: str, reason: str, emit: Emit) -> Report:
        async with self._lock:
            state = self._store.load()
            state.intent = Intent(op="rollback", rollout_id=rollout_id, target=state.known_good)
            self._store.save(state)
            restored = await self._rollback_locked(state, reason=reason, token_id="")
            report = Report(node=self.node_name, rollout_id=rollout_id, phase="ROLLED_BACK",
                            message=f"{reason}; {restored}", sched_ext_state=(await self._kernel_state())[0])
            await emit(report)
            return report

    async def _rollback_locked(self, state: NodeState, *, reason: str, token_id: str) -> str:
        bad = state.running
        if bad is not None:
            await self._unload(bad, reason=reason, token_id=token_id)
            if state.known_good and state.known_good.artifact_digest == bad.artifact_digest \
                    and state.known_good.config_digest == bad.config_digest:
                # What just failed can no longer count as known good.
                state.known_good = None
            state.running = None
            self._store.save(state)
        return await self._restore_known_good(state, reason=reason)

    async def _restore_known_good(self, state: NodeState, *, reason: str) -> str:
        good = state.known_good
        if good is None or not Path(good.artifact).exists():  # noqa: ASYNC240 - one local stat
            state.intent = None
            state.running = None
            self._store.save(state)
            self._audit.record(action="rollback", outcome="eevdf", node=self.node_name, reason=reason)
            return "the node runs EEVDF (no known-good scheduler)"
        try:
            result = await asyncio.to_thread(self._node.load, Path(good.artifact), tunables=good.tunables)
        except (LoaderError, SchedcpError) as exc:
            state.intent = None
            state.running = None
            self._store.save(state)
            self._audit.record(action="rollback", outcome="eevdf", node=self.node_name, reason=reason,
                               error=f"known-good {good.policy} failed to load: {exc}")
            return f"known-good {good.policy} failed to load ({exc}); the node runs EEVDF"
        good.name = result.name
        good.since = time.time()
        state.running = good
        state.intent = None
        self._store.save(state)
        self._audit.record(action="rollback", outcome="known-good", node=self.node_name, token_id=good.token_id,
                           policy=good.policy, reason=reason)
        return f"restored known-good {good.policy}"

    async def _unload(self, deployed: Deployed, *, reason: str, token_id: str) -> None:
        try:
            await asyncio.to_thread(self._node.unload, deployed.name)
            outcome = "unloaded"
        except (LoaderError, SchedcpError) as exc:
            outcome = f"unload failed: {exc}"
        self._audit.record(action="unload", outcome=outcome, node=self.node_name, token_id=token_id,
                           policy=deployed.policy, reason=reason)

    # --------------------------------------------------- status, recovery

    async def _kernel_state(self) -> tuple[str, str]:
        try:
            st = await asyncio.to_thread(self._node.state, None)
        except (LoaderError, SchedcpError) as exc:
            return f"unknown ({exc})", ""
        return st.sched_ext_state, st.root_ops

    async def health(self) -> tuple[bool, str]:
        """The node answers and its sched_ext state is readable."""
        try:
            result = await asyncio.to_thread(self._node.run, ["true"], timeout_s=30)
        except SchedcpError as exc:
            return False, f"node does not run commands: {exc}"
        if result.returncode != 0:
            return False, f"`true` exited {result.returncode}"
        state, _ = await self._kernel_state()
        if state.startswith("unknown"):
            return False, state
        return True, "ok"

    async def status(self) -> NodeStatusInfo:
        state = self._store.load()
        kstate, ops = await self._kernel_state()
        healthy, detail = await self.health()
        message = detail
        if state.running and (kstate != "enabled" or ops != state.running.name):
            message = f"recorded {state.running.name} but the kernel reports {kstate} {ops!r}"
            healthy = False
        return NodeStatusInfo(node=self.node_name, sched_ext_state=kstate, root_ops=ops, running=state.running,
                              known_good=state.known_good, healthy=healthy, message=message)

    async def recover_node(self) -> str | None:
        """Boot the node again if it is a micro-VM whose VM died or hangs; then reconcile.

        A fresh VM runs EEVDF, so what the executor recorded as running is
        gone: reconcile audits that and restores the known-good scheduler.
        Returns what reconcile did, or None when the node was fine.
        """
        reboot = getattr(self._node, "reboot", None)
        if not callable(reboot):
            return None
        reason = await self._node_down_reason()
        if reason is None:
            return None
        async with self._lock:  # never under a deploy or rollback in flight
            if getattr(self._node, "alive", True):
                return None  # someone else booted it meanwhile
            log.warning("%s; booting a new one", reason)
            t0 = time.monotonic()
            try:
                await asyncio.to_thread(reboot)
            except Exception as exc:
                self._audit.record(action="node-reboot", outcome=f"failed: {exc}", node=self.node_name,
                                   reason=reason)
                raise
            self._audit.record(action="node-reboot", outcome="ok", node=self.node_name, reason=reason,
                               seconds=round(time.monotonic() - t0, 1))
        return await self.reconcile()

    async def _node_down_reason(self) -> str | None:
        """Why the node needs booting again, or None while it is fine.

        A dead VM needs it. A live one is pinged first: the VM layer kills a
        VM whose guest agent does not answer (a hung guest with qemu still
        running), so a hang shows up here as a death with that reason.
        """
        probe = getattr(self._node, "responsive", None)
        if getattr(self._node, "alive", True) and callable(probe):
            await asyncio.to_thread(probe)
        if getattr(self._node, "alive", True):
            return None
        return f"the micro-VM died: {getattr(self._node, 'death_reason', None) or 'qemu is gone'}"

    async def reconcile(self) -> str:
        """Make the recorded state and the kernel agree; run at start-up."""
        async with self._lock:
            state = self._store.load()
            kstate, ops = await self._kernel_state()
            if state.intent is not None:
                # An operation was cut short (the executor died). Its outcome
                # was never confirmed, so the safe end is the known-good state.
                intent = state.intent
                if state.running is None and intent.op == "deploy" and intent.target and ops == intent.target.name:
                    state.running = intent.target
                if state.running is not None and ops == state.running.name:
                    await self._unload(state.running, reason="interrupted operation", token_id="")
                state.running = None
                self._store.save(state)
                restored = await self._restore_known_good(state, reason=f"interrupted {intent.op} {intent.rollout_id}")
                msg = f"interrupted {intent.op} of rollout {intent.rollout_id} rolled back: {restored}"
            elif state.running is not None and (kstate != "enabled" or ops != state.running.name):
                # Ejected while we were away, or the node (a VM) restarted.
                lost = state.running
                state.running = None
                self._store.save(state)
                restored = await self._restore_known_good(state, reason=f"{lost.policy} was not running at start")
                msg = f"{lost.policy} was no longer running ({kstate} {ops!r}): {restored}"
            elif state.running is None and state.known_good is not None and kstate != "enabled":
                restored = await self._restore_known_good(state, reason="node started without its scheduler")
                msg = restored
            elif state.running is None and kstate == "enabled":
                msg = f"the kernel runs {ops!r}, which this executor did not load; leaving it alone"
            else:
                msg = "recorded state matches the kernel"
            self._audit.record(action="reconcile", outcome="ok", node=self.node_name, message=msg)
            log.info("reconcile: %s", msg)
            return msg

    def _store_artifact(self, artifact: bytes) -> Path:
        digest = sha256_digest(artifact).split(":", 1)[1]
        path = self._artifacts / f"{digest}.bpf.o"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(artifact)
            tmp.replace(path)
        return path


def _metrics(m: Measurement | None) -> dict[str, float]:
    return {m.metric: m.value} if m is not None else {}

