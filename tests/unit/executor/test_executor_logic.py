"""Executor logic: token gate, circuit breaker, node deploy/rollback/reconcile,
and the fleet rollout order, with an in-memory node standing in for a kernel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from schedcp import tokens
from schedcp.digests import config_digest, sha256_digest
from schedcp.substrate.loader import ExitInfo, LoadResult, SchedState, VerifierRejected
from schedcp.substrate.nodes import CommandResult
from schedcp.v1 import common_pb2
from services.executor.audit import AuditLog
from services.executor.breaker import CircuitBreaker, ratio
from services.executor.gate import PersistentNonceLedger, TokenGate
from services.executor.metrics import Measurement
from services.executor.node_executor import DeployRequest, NodeExecutor, Report
from services.executor.rollout import RolloutCoordinator, plan_rollout
from services.executor.state import NodeStateStore

ARTIFACT = b"\x7fELF pretend scheduler object"
TUNABLES = {"slice_us": 5000}


class MemoryKernel:
    """A node whose 'kernel' is a few fields: what a SchedNode reports."""

    kind = "vm"

    def __init__(self) -> None:
        self.ops = ""
        self.loads: list[str] = []
        self.fail_load = False
        self.eject_after_load = False
        self.healthy = True

    def describe(self) -> str:
        return "memory"

    def btf_path(self) -> Path:
        return Path("/nonexistent")

    def load(self, obj: Path, *, tunables: Mapping[str, object] | None = None, **_: object) -> LoadResult:
        if self.fail_load:
            raise VerifierRejected("R0 invalid mem access 'map_value_or_null'")
        name = obj.read_bytes()[-8:].decode(errors="replace").strip() or "sched"
        self.ops = f"ops_{len(self.loads)}_{name}"
        self.loads.append(self.ops)
        return LoadResult(name=self.ops, pin_dir="/sys/fs/bpf/x", state="enabled", tunables={}, ops_overrides={},
                          open_ms=1, load_ms=1, attach_ms=1, total_ms=3)

    def state(self, name: str | None = None) -> SchedState:
        enabled = bool(self.ops) and not self.eject_after_load
        return SchedState(sched_ext_state="enabled" if enabled else "disabled", root_ops=self.ops if enabled else "",
                          name=name, enabled=enabled and name == self.ops,
                          ejected=bool(self.eject_after_load and name),
                          exit=ExitInfo(kind=1026, reason="runnable task stall") if self.eject_after_load else None)

    def watch(self, name: str, *, duration_s: float) -> SchedState:
        return self.state(name)

    def unload(self, name: str) -> SchedState:
        self.ops = ""
        self.eject_after_load = False
        return self.state(None)

    def run(self, argv: Sequence[str], *, timeout_s: float) -> CommandResult:
        return CommandResult(list(argv), 0 if self.healthy else 1, "", "", 0.01)

    def close(self) -> None:
        return None


class ScriptedMetrics:
    def __init__(self, values: list[float], *, higher_is_better: bool = False) -> None:
        self.values = list(values)
        self.higher_is_better = higher_is_better

    async def measure(self, workload_class: str) -> Measurement | None:
        return Measurement("makespan_s", self.values.pop(0), self.higher_is_better, "s", "batch-long-tail")


@pytest.fixture
def keyring(tmp_path: Path) -> tokens.KeyRing:
    return tokens.KeyRing(tmp_path / "verifier-keys")


def _token(keyring: tokens.KeyRing, *, node: str = "n1", artifact: bytes = ARTIFACT, tunables=TUNABLES,  # type: ignore[no-untyped-def]
           ttl: float = 600, now: float | None = None):
    return tokens.issue_token(keyring, artifact_digest=sha256_digest(artifact), config_digest=config_digest(tunables),
                              node_selector=common_pb2.NodeSelector(nodes=[node]), verdict_id="v1",
                              policy=common_pb2.PolicyRef(name="fifo", version="1"), ttl_s=ttl, now=now)


def _executor(tmp_path: Path, keyring: tokens.KeyRing, kernel: MemoryKernel, metrics=None,  # type: ignore[no-untyped-def]
              node: str = "n1") -> NodeExecutor:
    audit = AuditLog(tmp_path / node / "audit.jsonl")
    gate = TokenGate(node=node, labels={}, trusted_keys=lambda refresh: keyring.trusted_keys(),
                     ledger=PersistentNonceLedger(tmp_path / node / "nonces.jsonl"), audit=audit)
    return NodeExecutor(node_name=node, node=kernel, gate=gate, store=NodeStateStore(tmp_path / node / "state.json"),
                        audit=audit, artifacts_dir=tmp_path / node / "artifacts", breaker=CircuitBreaker(10.0),
                        metrics=metrics, watch_interval_s=0.01)


async def _deploy(ex: NodeExecutor, token, *, artifact: bytes = ARTIFACT, tunables=TUNABLES, bake: float = 0.0,  # type: ignore[no-untyped-def]
                  workload_class: str = "BATCH_LONG_TAIL") -> tuple[Report, list[Report]]:
    seen: list[Report] = []

    async def emit(r: Report) -> None:
        seen.append(r)

    final = await ex.deploy(DeployRequest(artifact=artifact, tunables=tunables, token=token, policy="fifo",
                                          version="1", workload_class=workload_class, bake_s=bake), emit)
    return final, seen


# ------------------------------------------------------------------- gate


@pytest.mark.parametrize("case", ["forged", "expired", "replayed", "wrong-digest", "wrong-config", "wrong-node",
                                  "unknown-key"])
async def test_the_gate_refuses_bad_tokens_with_a_reason_and_audits_it(case: str, tmp_path: Path,
                                                                        keyring: tokens.KeyRing) -> None:
    kernel = MemoryKernel()
    ex = _executor(tmp_path, keyring, kernel)
    token = _token(keyring)
    artifact, tunables = ARTIFACT, TUNABLES
    expected = {"forged": "BadSignature", "expired": "TokenExpired", "replayed": "ReplayedNonce",
                "wrong-digest": "DigestMismatch", "wrong-config": "DigestMismatch", "wrong-node": "WrongNode",
                "unknown-key": "UnknownKey"}[case]
    if case == "forged":
        token.signature = bytes(64)
    elif case == "expired":
        token = _token(keyring, ttl=60, now=time.time() - 3600)
    elif case == "replayed":
        first, _ = await _deploy(ex, token)
        assert first.phase == "COMPLETE"
    elif case == "wrong-digest":
        artifact = ARTIFACT + b"tampered"
    elif case == "wrong-config":
        tunables = {"slice_us": 1}
    elif case == "wrong-node":
        token = _token(keyring, node="n2")
    elif case == "unknown-key":
        token = _token(tokens.KeyRing(tmp_path / "rogue"))
    loads_before = len(kernel.loads)
    final, _ = await _deploy(ex, token, artifact=artifact, tunables=tunables)
    assert final.phase == "REFUSED"
    assert len(kernel.loads) == loads_before  # nothing was loaded
    refusal = [e for e in AuditLog(tmp_path / "n1" / "audit.jsonl").entries() if e["outcome"] == "refused"]
    assert refusal and refusal[-1]["error"] == expected


async def test_a_replay_is_refused_after_an_executor_restart(tmp_path: Path, keyring: tokens.KeyRing) -> None:
    token = _token(keyring)
    first, _ = await _deploy(_executor(tmp_path, keyring, MemoryKernel()), token)
    assert first.phase == "COMPLETE"
    again, _ = await _deploy(_executor(tmp_path, keyring, MemoryKernel()), token)
    assert again.phase == "REFUSED" and "already used" in again.message


# ---------------------------------------------------------------- breaker


def test_ratio_orientation() -> None:
    assert ratio(10.0, 5.0, higher_is_better=False) == 2.0
    assert ratio(10.0, 5.0, higher_is_better=True) == 0.5


def test_breaker_trips_only_past_the_threshold() -> None:
    b = CircuitBreaker(10.0)
    assert b.check_metric(metric="makespan_s", baseline=10.0, current=10.5, higher_is_better=False) is None
    trip = b.check_metric(metric="makespan_s", baseline=10.0, current=12.0, higher_is_better=False)
    assert trip is not None and trip.kind == "regression" and trip.value < 0.9
    assert b.check_state(expected_ops="a", sched_ext_state="enabled", root_ops="a", ejected=False) is None
    assert b.check_state(expected_ops="a", sched_ext_state="disabled", root_ops="", ejected=True,
                         exit_reason="runnable task stall").kind == "ejected"


# ------------------------------------------------------------ node logic


async def test_deploy_bakes_and_becomes_known_good(tmp_path: Path, keyring: tokens.KeyRing) -> None:
    kernel = MemoryKernel()
    ex = _executor(tmp_path, keyring, kernel, metrics=ScriptedMetrics([10.0, 8.0]))
    final, seen = await _deploy(ex, _token(keyring), bake=0.05)
    assert [r.phase for r in seen] == ["PENDING", "CANARY", "COMPLETE"]
    assert final.improvement == pytest.approx(1.25)
    state = NodeStateStore(tmp_path / "n1" / "state.json").load()
    assert state.known_good is not None and state.running is not None and state.intent is None
    actions = [e["action"] for e in AuditLog(tmp_path / "n1" / "audit.jsonl").entries()]
    assert actions == ["token", "load", "promote-known-good"]


async def test_a_regression_rolls_back_to_the_known_good_scheduler(tmp_path: Path, keyring: tokens.KeyRing) -> None:
    kernel = MemoryKernel()
    ex = _executor(tmp_path, keyring, kernel, metrics=ScriptedMetrics([10.0, 9.0, 9.0, 20.0]))
    good, _ = await _deploy(ex, _token(keyring), bake=0.01)
    assert good.phase == "COMPLETE"
    good_ops = kernel.ops
    bad_artifact = ARTIFACT + b"badsched"
    final, _ = await _deploy(ex, _token(keyring, artifact=bad_artifact), artifact=bad_artifact, bake=0.01)
    assert final.phase == "ROLLED_BACK"
    assert final.breaker[0].kind == "regression"
    assert "restored known-good fifo" in final.message
    assert kernel.ops != "" and kernel.ops != good_ops and kernel.loads[-1] == kernel.ops  # reloaded the good one
    assert NodeStateStore(tmp_path / "n1" / "state.json").load().running.artifact_digest == sha256_digest(ARTIFACT)


async def test_an_ejection_rolls_back_to_eevdf_and_is_reported(tmp_path: Path, keyring: tokens.KeyRing) -> None:
    kernel = MemoryKernel()
    ex = _executor(tmp_path, keyring, kernel)
    original_load = kernel.load

    def load_then_eject(obj: Path, **kw: object) -> LoadResult:
        result = original_load(obj, **kw)  # type: ignore[arg-type]
        kernel.eject_after_load = True
        return result

    kernel.load = load_then_eject  # type: ignore[method-assign]
    final, _ = await _deploy(ex, _token(keyring), bake=0.05)
    assert final.phase == "ROLLED_BACK"
    assert final.breaker[0].kind == "ejected" and "runnable task stall" in final.breaker[0].reason
    assert "EEVDF" in final.message and kernel.ops == ""


async def test_a_failed_load_reports_the_verifier_log_and_changes_nothing(tmp_path: Path,
                                                                          keyring: tokens.KeyRing) -> None:
    kernel = MemoryKernel()
    kernel.fail_load = True
    final, _ = await _deploy(_executor(tmp_path, keyring, kernel), _token(keyring))
    assert final.phase == "FAILED" and "map_value_or_null" in final.message
    state = NodeStateStore(tmp_path / "n1" / "state.json").load()
    assert state.running is None and state.intent is None


async def test_reconcile_rolls_back_an_interrupted_deploy(tmp_path: Path, keyring: tokens.KeyRing) -> None:
    kernel = MemoryKernel()
    ex = _executor(tmp_path, keyring, kernel, metrics=ScriptedMetrics([10.0, 10.0]))
    await _deploy(ex, _token(keyring), bake=0.01)  # known good
    # A second deploy dies between load and the end of its bake.
    store = NodeStateStore(tmp_path / "n1" / "state.json")
    st = store.load()
    from services.executor.state import Deployed, Intent

    half = Deployed(name="ops_half", policy="new", version="2", artifact=str(tmp_path / "x.o"),
                    artifact_digest="sha256:00", config_digest="sha256:11", tunables={}, token_id="t2")
    st.intent = Intent(op="deploy", rollout_id="r2", target=half)
    st.running = None
    store.save(st)
    kernel.ops = "ops_half"  # the kernel runs the half-deployed scheduler
    restarted = _executor(tmp_path, keyring, kernel)
    msg = await restarted.reconcile()
    assert "interrupted deploy of rollout r2 rolled back" in msg and "restored known-good fifo" in msg
    after = store.load()
    assert after.intent is None and after.running is not None and after.running.policy == "fifo"
    assert kernel.ops == after.running.name


async def test_reconcile_restores_the_known_good_scheduler_on_a_fresh_node(tmp_path: Path,
                                                                          keyring: tokens.KeyRing) -> None:
    kernel = MemoryKernel()
    await _deploy(_executor(tmp_path, keyring, kernel), _token(keyring))
    fresh = MemoryKernel()  # e.g. the micro-VM was restarted with the executor
    msg = await _executor(tmp_path, keyring, fresh).reconcile()
    assert "restored known-good fifo" in msg and fresh.ops


class DyingVmKernel(MemoryKernel):
    """A micro-VM node whose VM can die and be booted again (EEVDF after)."""

    def __init__(self) -> None:
        super().__init__()
        self.alive = True
        self.boots = 1

        self.answers = True  # the guest agent answers pings
        self.death_reason: str | None = None

    def responsive(self) -> bool:
        if self.alive and not self.answers:  # as the VM layer does: no answer, VM killed
            self.alive, self.death_reason = False, "guest agent did not answer ping within 10s"
        return self.alive

    def reboot(self) -> None:
        self.alive, self.answers, self.ops, self.boots = True, True, "", self.boots + 1


async def test_a_dead_vm_node_is_booted_again_and_gets_its_known_good_scheduler_back(
        tmp_path: Path, keyring: tokens.KeyRing) -> None:
    kernel = DyingVmKernel()
    ex = _executor(tmp_path, keyring, kernel)
    await _deploy(ex, _token(keyring))
    assert await ex.recover_node() is None and kernel.boots == 1  # alive: nothing to do
    kernel.alive = False
    msg = await ex.recover_node()
    assert kernel.boots == 2 and msg is not None and "restored known-good fifo" in msg
    assert kernel.ops and (await ex.status()).healthy
    actions = [e["action"] for e in AuditLog(tmp_path / "n1" / "audit.jsonl").entries()]
    assert actions[-3:] == ["node-reboot", "rollback", "reconcile"], actions


async def test_a_hung_vm_node_is_pinged_killed_and_booted_again(tmp_path: Path,
                                                                keyring: tokens.KeyRing) -> None:
    kernel = DyingVmKernel()
    ex = _executor(tmp_path, keyring, kernel)
    await _deploy(ex, _token(keyring))
    assert await ex.recover_node() is None and kernel.boots == 1  # answers: fine
    kernel.answers = False  # qemu runs, the guest does not answer
    msg = await ex.recover_node()
    assert kernel.boots == 2 and msg is not None and "restored known-good fifo" in msg
    reboot = [e for e in AuditLog(tmp_path / "n1" / "audit.jsonl").entries() if e["action"] == "node-reboot"]
    assert reboot[-1]["reason"] == "the micro-VM died: guest agent did not answer ping within 10s", reboot


async def test_a_host_node_is_never_rebooted(tmp_path: Path, keyring: tokens.KeyRing) -> None:
    kernel = MemoryKernel()  # no reboot(): a host
    assert await _executor(tmp_path, keyring, kernel).recover_node() is None


# --------------------------------------------------------------- rollout


def test_canary_size_is_a_count_or_a_fraction() -> None:
    assert plan_rollout(["c", "a", "b"], 1).canary == ["a"]
    assert plan_rollout(["a", "b", "c", "d"], 0.5).canary == ["a", "b"]
    assert plan_rollout(["a", "b", "c"], 0.1).canary == ["a"]
    assert plan_rollout(["a", "b"], 5).rest == []


class _Handle:
    def __init__(self, name: str, phase: str, log: list[str]) -> None:
        self.name, self.phase, self.log = name, phase, log

    async def deploy(self, req: DeployRequest):  # type: ignore[no-untyped-def]
        self.log.append(f"deploy {self.name} {req.label}")
        await asyncio.sleep(0)
        yield Report(node=self.name, rollout_id=req.rollout_id, phase=self.phase, message="")

    async def rollback(self, *, rollout_id: str, reason: str):  # type: ignore[no-untyped-def]
        self.log.append(f"rollback {self.name}")
        yield Report(node=self.name, rollout_id=rollout_id, phase="ROLLED_BACK", message=reason)


async def _rollout(phases: dict[str, str], canary: float) -> tuple[list[Report], list[str]]:
    log: list[str] = []
    coord = RolloutCoordinator(nodes={n: _Handle(n, p, log) for n, p in phases.items()})
    req = DeployRequest(artifact=b"", tunables={}, token=None, policy="p", version="1",  # type: ignore[arg-type]
                        workload_class="")
    return [r async for r in coord.run(req, node_names=sorted(phases), canary=canary)], log


async def test_a_good_canary_widens_to_the_fleet() -> None:
    reports, log = await _rollout({"a": "COMPLETE", "b": "COMPLETE", "c": "COMPLETE"}, canary=1)
    assert log[0] == "deploy a CANARY" and sorted(log[1:]) == ["deploy b FLEET", "deploy c FLEET"]
    assert reports[-1].phase == "COMPLETE" and len({r.rollout_id for r in reports}) == 1


async def test_a_failed_canary_halts_before_the_fleet() -> None:
    reports, log = await _rollout({"a": "ROLLED_BACK", "b": "COMPLETE", "c": "COMPLETE"}, canary=1)
    assert log == ["deploy a CANARY"]
    assert reports[-1].phase == "HALTED"


async def test_a_failure_in_the_fleet_wave_rolls_back_every_touched_node() -> None:
    reports, log = await _rollout({"a": "COMPLETE", "b": "COMPLETE", "c": "ROLLED_BACK"}, canary=1)
    assert reports[-1].phase == "HALTED"
    assert sorted(x for x in log if x.startswith("rollback")) == ["rollback a", "rollback b"]


async def test_unknown_nodes_are_refused() -> None:
    log: list[str] = []
    coord = RolloutCoordinator(nodes={"a": _Handle("a", "COMPLETE", log)})
    req = DeployRequest(artifact=b"", tunables={}, token=None, policy="p", version="1",  # type: ignore[arg-type]
                        workload_class="")
    reports = [r async for r in coord.run(req, node_names=["a", "zz"], canary=1)]
    assert reports[0].phase == "REFUSED" and "zz" in reports[0].message and log == []


class _GatedRollback(_Handle):
    """Rollback waits until every node's rollback has started: passes only if they run at once."""

    def __init__(self, name: str, phase: str, log: list[str], started: list[str], total: int) -> None:
        super().__init__(name, phase, log)
        self.started, self.total = started, total

    async def rollback(self, *, rollout_id: str, reason: str):  # type: ignore[no-untyped-def]
        self.started.append(self.name)
        for _ in range(100):
            if len(self.started) == self.total:
                break
            await asyncio.sleep(0.01)
        yield Report(node=self.name, rollout_id=rollout_id, phase="ROLLED_BACK",
                     message=f"saw {len(self.started)} rollbacks started")


class _LostOnRollback(_Handle):
    async def rollback(self, *, rollout_id: str, reason: str):  # type: ignore[no-untyped-def]
        raise ConnectionError("peer gone")
        yield  # pragma: no cover - makes this an async generator


async def test_a_halted_rollout_rolls_back_touched_nodes_concurrently_and_survives_a_lost_one() -> None:
    log: list[str] = []
    started: list[str] = []
    nodes: dict[str, _Handle] = {n: _GatedRollback(n, "COMPLETE", log, started, total=4) for n in "abcd"}
    nodes["e"] = _LostOnRollback("e", "COMPLETE", log)
    nodes["f"] = _Handle("f", "ROLLED_BACK", log)
    req = DeployRequest(artifact=b"", tunables={}, token=None, policy="p", version="1",  # type: ignore[arg-type]
                        workload_class="")
    reports = [r async for r in RolloutCoordinator(nodes=nodes).run(req, node_names=sorted(nodes), canary=1)]
    back = {r.node: r for r in reports if r.message.startswith("saw") or "peer gone" in r.message}
    assert {n: back[n].message for n in "abcd"} == dict.fromkeys("abcd", "saw 4 rollbacks started")
    assert back["e"].phase == "FAILED" and "peer gone" in back["e"].message
    assert reports[-1].phase == "HALTED"
