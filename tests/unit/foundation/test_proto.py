"""The generated stubs match proto/ (the single source of truth)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from schedcp.v1 import common_pb2, services_pb2

ROOT = Path(__file__).resolve().parents[3]


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto/schedcp/v1").glob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={tmp_path}",
                    *protos], check=True, cwd=ROOT / "proto")
    for gen in (tmp_path / "schedcp/v1").glob("*_pb2.py"):
        committed = ROOT / "schedcp/v1" / gen.name
        assert committed.read_text() == gen.read_text(), f"{gen.name} is stale: run `make proto`"


def test_one_grpc_service_per_component() -> None:
    names = set(services_pb2.DESCRIPTOR.services_by_name)
    assert names == {f"{c}Service" for c in ("Observer", "Planner", "Verifier", "Executor", "Learner", "Repository")}


def test_every_bus_message_carries_meta() -> None:
    from schedcp.v1 import deployment_pb2, plan_pb2, profile_pb2, verdict_pb2

    for t in (profile_pb2.WorkloadProfile, plan_pb2.Plan, verdict_pb2.Verdict, deployment_pb2.DeploymentReport,
              deployment_pb2.DeploymentOutcome, profile_pb2.FeedbackReport):
        field = t.DESCRIPTOR.fields_by_name["meta"]
        assert field.message_type is common_pb2.Meta.DESCRIPTOR
