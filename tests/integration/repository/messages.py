"""Builders of the verdicts and outcomes the repository consumes (schedcp.v1 messages)."""

from __future__ import annotations

from schedcp.v1 import common_pb2, deployment_pb2, plan_pb2, profile_pb2, verdict_pb2


def verdict(verdict_id: str, *, policy: str, version: str = "", passed: bool = True, score: float = 1.5,
            source: str = "", patch: str = "", path: int = plan_pb2.CONFIGURE_EXISTING,
            workload_class: int = common_pb2.LATENCY_SERVER,
            description: str = "nginx serving small requests; p99 latency is what matters",
            failed_stage: str = "kernel_verifier") -> verdict_pb2.Verdict:
    plan = plan_pb2.Plan(
        plan_id=f"plan-{verdict_id}", path=path, policy=common_pb2.PolicyRef(name=policy, version=version),
        source=source, patch=patch, rationale="tighter latency budget for short request handlers" if source else "",
        profile=profile_pb2.WorkloadProfile(
            profile_id=f"prof-{verdict_id}", workload_class=workload_class, description=description,
            workload=profile_pb2.WorkloadIdentity(cmdline=["/usr/sbin/nginx", "-g", "daemon off;"]),
            goal=profile_pb2.OptimizationGoal(kind=common_pb2.GOAL_TAIL_LATENCY, metric="p99_latency_us")),
    )
    plan.tunables["budget_us"].int_value = 1500
    v = verdict_pb2.Verdict(verdict_id=verdict_id, plan=plan, passed=passed, config_digest="sha256:" + "c" * 64)
    if passed:
        v.stages.add(name="dynamic", status=verdict_pb2.STAGE_PASSED)
        v.performance.score = score
    else:
        v.stages.add(name="build", status=verdict_pb2.STAGE_PASSED)
        v.stages.add(name=failed_stage, status=verdict_pb2.STAGE_FAILED, findings=[common_pb2.Finding(
            severity=common_pb2.SEVERITY_ERROR, rule="verifier-reject",
            message="R0 invalid mem access 'map_value_or_null'", file="x.bpf.c", line=42,
            hint="check the lookup result for NULL")])
    return v


def outcome(outcome_id: str, *, policy: str, version: str = "", improvement: float = 1.2, success: bool = True,
            workload_class: int = common_pb2.CPU_THROUGHPUT, reason: str = "") -> deployment_pb2.DeploymentOutcome:
    return deployment_pb2.DeploymentOutcome(
        outcome_id=outcome_id, rollout_id=f"r-{outcome_id}", workload_class=workload_class,
        policy=common_pb2.PolicyRef(name=policy, version=version), improvement=improvement,
        metric="ops_per_s", success=success, reason=reason, source="deployment", node="node-1")
