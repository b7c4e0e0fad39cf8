"""The schedcp MCP server: the original SchedCP's tools over schedcp's gRPC APIs.

| tool | backed by |
|---|---|
| ``list_schedulers`` | RepositoryService.Search / List |
| ``get_scheduler`` | RepositoryService.Get |
| ``create_and_verify_scheduler`` | VerifierService.Verify (streamed as progress) |
| ``run_scheduler`` | VerifierService.Verify, then ExecutorService.Deploy with that verdict |
| ``deploy_verdict`` | ExecutorService.Deploy by verdict id (the executor fetches it from the verifier) |
| ``stop_scheduler`` | ExecutorService.Rollback |
| ``get_execution_status`` | ExecutorService.Status (+ VerifierService.GetVerdict) |
| ``workload_profile`` | ObserverService.Summary / DeepProfile |
| ``workload_history`` | LearnerService.History |
| ``system_monitor`` | ObserverService.Summary of the whole node |

Nothing here loads a scheduler itself: see ``control_plane`` for the rules.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from schedcp.errors import SchedcpError
from schedcp.mcp.control_plane import ControlPlane, Progress, plan_for, verdict_summary

INSTRUCTIONS = """\
schedcp lets you optimise Linux sched_ext schedulers safely. Typical loop:
1. system_monitor / workload_profile to see what runs and how it behaves;
2. workload_history and list_schedulers to find what worked before;
3. run_scheduler for a library scheduler with tunables, or
   create_and_verify_scheduler for new BPF source, then deploy_verdict;
4. get_execution_status to watch it, stop_scheduler to roll back.
Every deployment is verified (build, kernel verifier, static and dynamic
checks) and signed first; an unverified scheduler is never loaded."""

_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_CHANGES_NODES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False,
                                 open_world_hint=False)


def _tool_error(exc: SchedcpError) -> ToolError:
    text = str(exc)
    verdict = exc.details.get("verdict") if exc.details else None
    if verdict:
        import json

        text += "\nverdict: " + json.dumps(verdict)[:6000]
    return ToolError(text)


def _progress(ctx: Context | None) -> Progress | None:
    if ctx is None:
        return None

    async def report(step: float, total: float | None, message: str) -> None:
        await ctx.report_progress(step, total, message)

    return report


def build_server(*, control_plane: ControlPlane) -> MCPServer:
    """An MCPServer whose tools call ``control_plane``; closes its channels on shutdown."""

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {}
        finally:
            await control_plane.close()

    server: MCPServer = MCPServer("schedcp", instructions=INSTRUCTIONS, version="0.1.0", lifespan=lifespan)
    cp = control_plane

    @server.tool(annotations=_READ_ONLY)
    async def list_schedulers(query: str = "", workload_class: str = "", status: str = "",
                              limit: int = 20) -> dict[str, Any]:
        """List the scheduler library. With `query` (free text such as "low tail latency for a web
        server") or `workload_class` (batch_long_tail, latency_server, parallel_build,
        interactive_background, cpu_throughput) the schedulers are ranked by fit and past results.
        `status` filters on candidate, verified, promoted or deprecated."""
        try:
            found = await cp.list_schedulers(query=query, workload=workload_class, status=status, limit=limit)
        except SchedcpError as exc:
            raise _tool_error(exc) from exc
        return {"schedulers": found, "count": len(found)}

    @server.tool(annotations=_READ_ONLY)
    async def get_scheduler(name: str, version: str = "") -> dict[str, Any]:
        """One library scheduler with its BPF source, tunables and recorded performance history."""
        try:
            return await cp.get_scheduler(name, version)
        except SchedcpError as exc:
            raise _tool_error(exc) from exc

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False))
    async def create_and_verify_scheduler(name: str, source: str, ctx: Context,
                                          tunables: dict[str, int | float | bool | str] | None = None,
                                          description: str = "", workload_class: str = "",
                                          skip_performance: bool = False) -> dict[str, Any]:
        """Verify a new sched_ext scheduler written in BPF C (`source`): build, kernel verifier in a
        micro-VM, static analysis, dynamic tests and an A/B against EEVDF. Returns the verdict with
        every stage's findings; a passing verdict has a `verdict_id` you can give to deploy_verdict.
        Nothing is deployed by this tool."""
        try:
            plan = plan_for(name=name, source=source, tunables=tunables, description=description,
                            workload=workload_class)
            verdict = await cp.verify(plan, workload=workload_class, skip_performance=skip_performance,
                                      progress=_progress(ctx))
        except SchedcpError as exc:
            raise _tool_error(exc) from exc
        return verdict_summary(verdict)

    @server.tool(annotations=_CHANGES_NODES)
    async def run_scheduler(name: str, ctx: Context, version: str = "",
                            tunables: dict[str, int | float | bool | str] | None = None,
                            nodes: list[str] | None = None, all_nodes: bool = False, canary: float = 0.0,
                            bake_seconds: float = 0.0, workload_class: str = "") -> dict[str, Any]:
        """Run a library scheduler with optional tunables: it is verified first, and deployed only
        if the verifier passes and signs it (canary first, then the rest; a regression rolls it
        back). `nodes` empty means the executor's own node. Returns the verdict and each node's
        deployment reports."""
        try:
            plan = plan_for(name=name, version=version, tunables=tunables, workload=workload_class,
                            nodes=nodes or ())
            return await cp.verify_and_deploy(plan, nodes=nodes or (), all_nodes=all_nodes, canary=canary,
                                              bake_s=bake_seconds, workload=workload_class,
                                              progress=_progress(ctx))
        except SchedcpError as exc:
            raise _tool_error(exc) from exc

    @server.tool(annotations=_CHANGES_NODES)
    async def deploy_verdict(verdict_id: str, ctx: Context, nodes: list[str] | None = None,
                             all_nodes: bool = False, canary: float = 0.0,
                             bake_seconds: float = 0.0) -> dict[str, Any]:
        """Deploy a scheduler that already passed verification, by its verdict_id. The executor
        fetches the signed verdict from the verifier and refuses anything its token does not cover."""
        try:
            return await cp.deploy_verdict(verdict_id, nodes=nodes or (), all_nodes=all_nodes, canary=canary,
                                           bake_s=bake_seconds, progress=_progress(ctx))
        except SchedcpError as exc:
            raise _tool_error(exc) from exc

    @server.tool(annotations=_CHANGES_NODES)
    async def stop_scheduler(nodes: list[str] | None = None, all_nodes: bool = False,
                             reason: str = "") -> dict[str, Any]:
        """Stop the running scheduler: the node goes back to its last known-good scheduler, or to
        the kernel's default (EEVDF) if there is none."""
        try:
            reports = await cp.rollback(nodes=nodes or (), all_nodes=all_nodes, reason=reason)
        except SchedcpError as exc:
            raise _tool_error(exc) from exc
        return {"reports": reports}

    @server.tool(annotations=_READ_ONLY)
    async def get_execution_status(nodes: list[str] | None = None, verdict_id: str = "") -> dict[str, Any]:
        """What runs on each node (scheduler, config digest, token, health, known-good fallback);
        with `verdict_id` also that verification's stages and result."""
        try:
            out: dict[str, Any] = await cp.status(nodes=nodes or ())
            if verdict_id:
                out["verdict"] = verdict_summary(await cp.get_verdict(verdict_id))
        except SchedcpError as exc:
            raise _tool_error(exc) from exc
        return out

    @server.tool(annotations=_READ_ONLY)
    async def workload_profile(pid: int = 0, cgroup: str = "", window_seconds: float = 2.0,
                               deep: bool = False) -> dict[str, Any]:
        """Profile one workload (a pid or a cgroup path): CPU use, run-queue waits, context switches,
        wake-ups and its workload class. `deep` adds perf counters and bounded eBPF probes."""
        try:
            return await cp.profile(pid=pid, cgroup=cgroup, window_s=window_seconds, deep=deep)
        except SchedcpError as exc:
            raise _tool_error(exc) from exc

    @server.tool(annotations=_READ_ONLY)
    async def workload_history(workload_class: str = "", limit: int = 20) -> dict[str, Any]:
        """What was tried before for a workload class: performance records of schedulers and
        configurations, and anti-patterns (what failed and why), summarised for planning."""
        try:
            return await cp.history(workload=workload_class, limit=limit)
        except SchedcpError as exc:
            raise _tool_error(exc) from exc

    @server.tool(annotations=_READ_ONLY)
    async def system_monitor(window_seconds: float = 1.0) -> dict[str, Any]:
        """The whole node over a short window: CPU utilisation, run-queue pressure, context
        switches, task births and what workload class the node as a whole looks like."""
        try:
            return await cp.profile(node=True, window_s=window_seconds)
        except SchedcpError as exc:
            raise _tool_error(exc) from exc

    return server


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m schedcp.mcp", description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="for streamable-http")
    parser.add_argument("--port", type=int, default=8765, help="for streamable-http")
    for svc in ("observer", "verifier", "executor", "learner", "repository"):
        parser.add_argument(f"--{svc}", metavar="HOST:PORT", default="",
                            help=f"{svc} gRPC address (default SCHEDCP_{svc.upper()}_ADDR)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the gateway until the client disconnects (stdio) or it is interrupted."""
    args = _parse(argv)
    # stdout is the MCP channel on stdio: logs must go to stderr only.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    addresses = {svc: getattr(args, svc) for svc in ("observer", "verifier", "executor", "learner", "repository")
                 if getattr(args, svc)}
    server = build_server(control_plane=ControlPlane(addresses=addresses))
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port)
    return 0
