"""Proto conversion of verdicts, and clang JSON location decoding (pure logic)."""

from __future__ import annotations

import json

from schedcp.v1 import common_pb2, plan_pb2, verdict_pb2
from services.verifier.convert import candidate_from_plan, verdict_to_proto
from services.verifier.domain import Finding, Severity, StageResult, StageStatus
from services.verifier.pipeline import VerdictRecord
from services.verifier.static_analysis import parse_ast_json


def test_verdict_to_proto_keeps_stage_status_and_findings():
    rec = VerdictRecord(
        verdict_id="v", passed=False, artifact_digest="sha256:" + "a" * 64,
        config_digest="sha256:" + "b" * 64, config_json="{}", candidate_name="c",
        stages=[StageResult("build", StageStatus.PASSED, 1.5),
                StageResult("static", StageStatus.FAILED, 2.0,
                            [Finding(Severity.ERROR, "slice-zero", "m", 12, "h", "c.bpf.c")]),
                StageResult("kernel_verifier", StageStatus.SKIPPED),
                StageResult("dynamic", StageStatus.SKIPPED)])
    v = verdict_to_proto(rec)
    assert [s.status for s in v.stages] == [verdict_pb2.STAGE_PASSED, verdict_pb2.STAGE_FAILED,
                                            verdict_pb2.STAGE_SKIPPED, verdict_pb2.STAGE_SKIPPED]
    f = v.stages[1].findings[0]
    assert (f.severity, f.rule, f.line, f.hint) == (common_pb2.SEVERITY_ERROR, "slice-zero", 12, "h")
    assert not v.passed and not v.HasField("token")


def test_candidate_from_plan_with_source_and_tunables():
    plan = plan_pb2.Plan(plan_id="p", source="int x;", policy=common_pb2.PolicyRef(name="mine"))
    plan.tunables["slice_us"].int_value = 300
    plan.profile.workload_class = common_pb2.LATENCY_SERVER
    c = candidate_from_plan(plan)
    assert c.source == "int x;" and c.tunables == {"slice_us": 300}
    assert c.workload == "LATENCY_SERVER" and c.name == "mine"


def _loc(offset, file=None, line=None):
    d = {"offset": offset, "col": 1, "tokLen": 1}
    if file:
        d["file"] = file
    if line:
        d["line"] = line
    return d


def test_delta_encoded_files_are_resolved():
    # clang writes "file" only when it changes; includedFrom does not count.
    tu = {"kind": "TranslationUnitDecl", "inner": [
        {"kind": "TypedefDecl", "name": "h1", "loc": _loc(0, "/inc/vmlinux.h", 1),
         "range": {"begin": _loc(0), "end": _loc(5)}},
        {"kind": "VarDecl", "name": "main_var", "loc": _loc(4, "/src/t.bpf.c", 1),
         "range": {"begin": _loc(0), "end": _loc(10)}, "type": {"qualType": "int"}},
        {"kind": "VarDecl", "name": "hdr_var",
         "loc": {**_loc(7, "/proj/include/schedcp/x.h", 3), "includedFrom": {"file": "/src/t.bpf.c"}},
         "range": {"begin": _loc(7), "end": _loc(9)}, "type": {"qualType": "int"}},
        {"kind": "VarDecl", "name": "other", "loc": _loc(3, "/inc/bpf_helpers.h", 2),
         "range": {"begin": _loc(3), "end": _loc(4)}, "type": {"qualType": "int"}},
    ]}
    data = json.dumps(tu, indent=2).encode()
    ast = parse_ast_json(data, main_file="/src/t.bpf.c", project_dirs=["/proj/include"])
    assert [d["name"] for d in ast.decls] == ["main_var", "hdr_var"]
