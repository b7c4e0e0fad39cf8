"""The MCP gateway through a real MCP client session over stdio.

The client spawns ``python -m schedcp.mcp`` exactly as an agent (Claude Code)
would, and the gateway talks to real service processes on the test NATS.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

REPO = Path(__file__).resolve().parents[3]

TOOLS = {"list_schedulers", "get_scheduler", "create_and_verify_scheduler", "run_scheduler", "deploy_verdict",
         "stop_scheduler", "get_execution_status", "workload_profile", "workload_history", "system_monitor"}

BROKEN_SCHEDULER = """\
#include <scx/common.bpf.h>
char _license[] SEC("license") = "GPL";
/* Does not compile: an undeclared identifier in enqueue. */
void BPF_STRUCT_OPS(broken_enqueue, struct task_struct *p, u64 enq_flags)
{
	scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, no_such_slice, enq_flags);
}
SCX_OPS_DEFINE(broken_ops, .enqueue = (void *)broken_enqueue, .name = "broken");
"""


def gateway(env: dict[str, str]) -> Client:
    params = StdioServerParameters(command=sys.executable, args=["-m", "schedcp.mcp"], env=env, cwd=str(REPO))
    return Client(params, read_timeout_seconds=600)


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text if result.content else result
    if result.structured_content is not None:
        return dict(result.structured_content)
    return dict(json.loads(result.content[0].text))


def error_text(result: Any) -> str:
    assert result.is_error, f"expected a refusal, got {result.structured_content}"
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_tools_answer_from_the_real_services(services, service_env: dict[str, str], tmp_path: Path) -> None:
    await services(("repository", "learner", "observer", "verifier"))
    workload = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        async with gateway(service_env) as client:
            listed = await client.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            run_tool = next(t for t in listed.tools if t.name == "run_scheduler")
            assert run_tool.annotations is not None and run_tool.annotations.destructive_hint

            library = structured(await client.call_tool("list_schedulers", {}))
            names = {s["name"] for s in library["schedulers"]}
            shipped = {p.name.removesuffix(".bpf.c") for p in (REPO / "bpf").glob("*.bpf.c")}
            assert shipped <= names, f"library misses {shipped - names}"

            ranked = structured(await client.call_tool(
                "list_schedulers", {"query": "low tail latency for a request-serving web server",
                                    "workload_class": "latency_server", "limit": 3}))
            assert 1 <= ranked["count"] <= 3
            scores = [s["score"] for s in ranked["schedulers"]]
            assert scores == sorted(scores, reverse=True)

            node = structured(await client.call_tool("system_monitor", {"window_seconds": 1.0}))
            # A busy-looping child keeps at least part of one CPU busy.
            assert node["features"]["cpu_utilization"] > 0.3, node["features"]
            assert node.get("workload_class")

            one = structured(await client.call_tool("workload_profile", {"pid": workload.pid,
                                                                         "window_seconds": 1.0}))
            assert workload.pid in one["workload"]["pids"]

            history = structured(await client.call_tool("workload_history", {"workload_class": "latency_server"}))
            assert "summary" in history

            source = structured(await client.call_tool("get_scheduler", {"name": "fifo"}))
            assert "BPF_STRUCT_OPS" in source["source"] or "SEC(" in source["source"]

            bad_class = await client.call_tool("workload_history", {"workload_class": "gaming"})
            assert "unknown workload class" in error_text(bad_class)
    finally:
        workload.kill()
        workload.wait()


async def test_nothing_unverified_gets_deployed(services, service_env: dict[str, str], tmp_path: Path) -> None:
    """A scheduler that fails verification, or one that does not exist, never reaches the executor."""
    await services(("repository", "verifier"))
    async with gateway(service_env) as client:
        verdict = structured(await client.call_tool(
            "create_and_verify_scheduler", {"name": "broken", "source": BROKEN_SCHEDULER,
                                            "skip_performance": True}))
        assert not verdict.get("passed", False)
        assert "token" not in verdict and "artifact" not in verdict
        build = next(s for s in verdict["stages"] if s["name"] == "build")
        assert build["status"] == "STAGE_FAILED", build

        # run = verify-then-deploy; the unknown scheduler fails verification,
        # so the executor (not even running here) is never asked.
        refused = error_text(await client.call_tool("run_scheduler", {"name": "no_such_scheduler_xyz"}))
        assert "verifier" in refused and "executor" not in refused.split("verifier", 1)[0]


@pytest.mark.vm
@pytest.mark.slow
async def test_executor_refuses_a_verdict_the_verifier_never_signed(services, service_env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    """deploy_verdict with an id the verifier does not know is refused by the executor; the node stays on
    its default scheduler, and stop_scheduler on an idle node is harmless."""
    env = {**service_env, "SCHEDCP_NODE": "mcp-node", "SCHEDCP_EXECUTOR_VM_MEM_MB": "512"}
    service_env.update(env)
    await services(("verifier", "executor"))
    async with gateway(service_env) as client:
        before = structured(await client.call_tool("get_execution_status", {}))
        assert [n["node"] for n in before["nodes"]] == ["mcp-node"]
        refused = error_text(await client.call_tool("deploy_verdict", {"verdict_id": "sha256:forged"}))
        assert "forged" in refused or "no verdict" in refused
        after = structured(await client.call_tool("get_execution_status", {}))
        running = after["nodes"][0].get("running", {})
        assert not running.get("name"), f"something was deployed: {after}"
        assert after["nodes"][0].get("sched_ext_state", "disabled") != "enabled"
