"""``schedcp optimize``: the whole loop for one workload, in this process.

    schedcp optimize [--node vm|host] [--llm URL|local|none] [--json] -- CMD...

observe (the Observation agent on CMD; ``--node vm`` inside a sched_ext
micro-VM) -> plan (Planner; a recorded win is reused with 0 LLM tokens) ->
verify (every candidate in micro-VMs, measured against EEVDF; failed rounds are
refined, bounded) -> deploy (through the executor service when it is running
and the winner beats EEVDF) -> learn (verdicts and the outcome go to the
repository's history and the Learner's promotion rules).

The repository is the same SQLite store the repository service uses
(``SCHEDCP_DATA_DIR``), so history accumulates across runs and with the
running stack. The only stage that needs a running service is deployment:
without a reachable executor (``SCHEDCP_EXECUTOR_ADDR``) the result says the
winner was not deployed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from schedcp.errors import InvalidArgument, SchedcpError

DEFAULT_WINDOW = 5.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "optimize",
        help="observe, plan, verify, deploy and learn for one workload",
        description="Run the whole agentic optimisation loop for a command's workload.",
    )
    p.add_argument(
        "--node",
        choices=("vm", "host"),
        default="vm",
        help="where the workload is observed and the winner deployed (default vm)",
    )
    p.add_argument(
        "--llm",
        default=None,
        help="LLM endpoint: none, local (bundled SmolLM2) or an OpenAI-compatible URL "
        "(default: SCHEDCP_LLM_URL, else none)",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON document")
    p.add_argument(
        "--window", type=float, default=DEFAULT_WINDOW, help="observation window, seconds"
    )
    p.add_argument("--max-candidates", type=int, default=3, help="candidates verified per round")
    p.add_argument(
        "--min-improvement",
        type=float,
        default=1.02,
        help="deploy only a winner at least this much better than EEVDF (ratio)",
    )
    p.add_argument("--no-deploy", action="store_true", help="stop after verification")
    p.add_argument(
        "--duration", type=float, default=6.0, help="seconds per A/B run in the verifier"
    )
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cmd = list(args.command or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise InvalidArgument(
            "optimize needs the workload's command after --",
            hint="e.g. schedcp optimize -- make -j2",
        )
    if not 1 <= args.max_candidates <= 16:
        raise InvalidArgument("--max-candidates must be 1..16")
    progress = _progress(quiet=args.json)
    result = asyncio.run(_optimize(args, cmd, progress))
    doc = result.to_json()
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(render(doc))
    return 0 if result.winner is not None else 1


def _progress(*, quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        # Progress goes to stderr so --json stdout stays one clean document.
        print(f"[optimize] {message}", file=sys.stderr, flush=True)

    return say


async def _optimize(args: argparse.Namespace, cmd: list[str], say: Callable[[str], None]) -> Any:
    from schedcp.llm.settings import load_llm_settings, open_llm
    from services.learner.learner import Learner, LearnerSettings
    from services.planner.loop import LoopSettings, OptimizationLoop
    from services.planner.planner import Planner
    from services.planner.settings import load_planner_settings

    env = {"SCHEDCP_LLM_URL": args.llm} if args.llm else None
    llm_settings = load_llm_settings(env)
    repository = await asyncio.to_thread(LocalRepository.open)
    try:
        async with open_llm(llm_settings) as llm:
            say(f"LLM: {llm_settings.url if llm else 'none (deterministic planning)'}")
            learner = Learner(repository=repository, settings=LearnerSettings(record_events=False))
            planner = Planner(
                repository=repository, llm=llm, history=learner, settings=load_planner_settings()
            )
            # The executor names its own node (SCHEDCP_NODE, not "vm"/"host"):
            # deploy there, and have the token signed for exactly that node.
            executor = await GrpcExecutor.connect(say=say)
            loop = OptimizationLoop(
                observer=CommandObserver(cmd=cmd, node=args.node, window=args.window, llm=llm),
                planner=planner,
                verifier=LocalVerifier(
                    duration_s=args.duration, nodes=executor.nodes if executor else None
                ),
                executor=executor,
                learner=RecordingLearner(repository=repository, learner=learner),
                settings=LoopSettings(
                    max_candidates=args.max_candidates,
                    use_llm=llm is not None,
                    min_improvement=args.min_improvement,
                    deploy=not args.no_deploy,
                ),
                progress=say,
            )
            return await loop.run()
    finally:
        await asyncio.to_thread(repository.close)


# ------------------------------------------------------------------- adapters


class LocalRepository:
    """The repository store in this process, behind the planner's and learner's ports."""

    def __init__(self, store: Any) -> None:
        from services.repository.events import RepositoryEvents

        self.store = store
        self.events = RepositoryEvents(store=store)

    @classmethod
    def open(cls) -> LocalRepository:
        from services.repository.backends import open_store
        from services.repository.seed import seed_from_library
        from services.repository.settings import load

        settings = load()
        store = open_store(settings.store)
        if settings.seed_dir is not None:
            seed_from_library(store, settings.seed_dir)
        return cls(store)

    def close(self) -> None:
        self.store.close()

    async def search(
        self, query: str, *, workload_classes: Any, limit: int, workload_key: str = ""
    ) -> list[Any]:
        from schedcp.v1 import services_pb2
        from services.repository import convert

        request = services_pb2.SearchRequest(
            query=query,
            workload_classes=list(workload_classes),
            limit=limit,
            workload_key=workload_key,
        )
        hits = await asyncio.to_thread(self.store.search, convert.query_from_proto(request))
        out = []
        for hit in hits:
            msg = convert.hit_to_proto(hit)
            if not msg.policy.history:  # search hits may be summaries: the planner needs history
                full = await asyncio.to_thread(self.store.get, hit.policy.name, hit.policy.version)
                msg.policy.CopyFrom(convert.policy_to_proto(full))
            out.append(msg)
        return out

    async def get(self, name: str, version: str = "") -> Any:
        from services.repository import convert

        return convert.policy_to_proto(await asyncio.to_thread(self.store.get, name, version))

    async def list_policies(self) -> list[Any]:
        from services.repository import convert

        return [convert.policy_to_proto(p) for p in await asyncio.to_thread(self.store.list)]

    async def list_antipatterns(self, *, workload_class: int, limit: int) -> list[Any]:
        from services.repository import convert

        wc = convert.workload_class(workload_class) if workload_class else None
        aps = await asyncio.to_thread(self.store.list_antipatterns, workload_class=wc, limit=limit)
        return [convert.antipattern_to_proto(a) for a in aps]

    async def record_antipattern(self, antipattern: Any) -> None:
        from services.repository import convert

        await asyncio.to_thread(
            self.store.record_antipattern, convert.antipattern_from_proto(antipattern)
        )

    async def record_outcome(self, policy: Any, record: Any) -> Any:
        from services.repository import convert
        from services.repository.events import performance_event_id

        rec = convert.record_from_proto(record)
        stored = await asyncio.to_thread(
            self.store.record_outcome,
            policy.name,
            policy.version,
            rec,
            event_id=performance_event_id(rec),
        )
        return convert.policy_to_proto(stored)

    async def promote(self, policy: Any, reason: str) -> None:
        from services.repository.store import PolicyStatus

        await asyncio.to_thread(
            self.store.set_status, policy.name, policy.version, PolicyStatus.PROMOTED, reason=reason
        )

    async def deprecate(self, policy: Any, reason: str) -> None:
        from services.repository.store import PolicyStatus

        await asyncio.to_thread(
            self.store.set_status,
            policy.name,
            policy.version,
            PolicyStatus.DEPRECATED,
            reason=reason,
        )


class RecordingLearner:
    """What the repository service and the learner service do with bus events, in-process."""

    def __init__(self, *, repository: LocalRepository, learner: Any) -> None:
        self.repository = repository
        self.learner = learner

    async def on_verdict(self, verdict: Any) -> Any:
        await asyncio.to_thread(self.repository.events.apply_verdict, verdict)
        return await self.learner.on_verdict(verdict)

    async def on_outcome(self, outcome: Any) -> Any:
        await asyncio.to_thread(self.repository.events.apply_outcome, outcome)
        return await self.learner.on_outcome(outcome)


class CommandObserver:
    """Run the workload's command and profile it (here, or inside a micro-VM)."""

    def __init__(self, *, cmd: list[str], node: str, window: float, llm: Any) -> None:
        self.cmd, self.node, self.window, self.llm = cmd, node, window, llm

    async def observe(self) -> Any:
        from google.protobuf import json_format

        from schedcp.cli import observe as observe_cli
        from schedcp.v1 import profile_pb2

        ns = argparse.Namespace(
            deep=False,
            summary_only=True,
            probes="",
            max_overhead=None,
            window=self.window,
            json=True,
            pid=None,
            cgroup=None,
            llm="none",
            node=self.node,
        )
        if self.node == "vm":
            text = await observe_cli._observe_in_vm(ns, self.cmd)
            doc = _last_profile_json(text)
            return json_format.ParseDict(
                doc, profile_pb2.WorkloadProfile(), ignore_unknown_fields=True
            )
        # The workload inherits stdout; point it at stderr meanwhile so that
        # `--json` output stays one document.
        saved = os.dup(1)
        sys.stdout.flush()
        os.dup2(2, 1)
        try:
            return await observe_cli._observe_here(ns, self.cmd)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _last_profile_json(text: str) -> dict[str, Any]:
    """The profile document in the guest's output (the workload may print JSON too)."""
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    i = 0
    while (i := text.find("{", i)) != -1:
        try:
            doc, end = decoder.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        if isinstance(doc, dict) and "profile_id" in doc:
            found = doc
        i = end
    if found is None:
        raise SchedcpError(
            "the micro-VM observation printed no profile",
            hint="run `schedcp observe --node vm -- CMD` to see its output",
        )
    return found


class LocalVerifier:
    """The verifier pipeline in this process (builds, loads and A/B-tests in micro-VMs)."""

    def __init__(self, *, duration_s: float, nodes: list[str] | None = None) -> None:
        self.duration_s = duration_s
        # The nodes the token is signed for; None: the plan's target.
        self.nodes = nodes
        self._verifier: Any = None

    async def verify(self, plan: Any, progress: Callable[[str], None]) -> Any:
        from schedcp.settings import data_dir
        from services.verifier.convert import candidate_from_plan, verdict_to_proto
        from services.verifier.verifier import default_verifier

        if self._verifier is None:
            self._verifier = await asyncio.to_thread(
                default_verifier, data_dir(), duration_s=self.duration_s
            )
        candidate = candidate_from_plan(plan)
        loop = asyncio.get_running_loop()

        def stage_progress(stage: Any) -> None:
            loop.call_soon_threadsafe(progress, f"  {stage.name}: {stage.status.value}")

        from schedcp.v1 import common_pb2

        if self.nodes:
            # The plan targets the observed node ("vm"), which is not a node
            # any executor answers to; sign for the executor's own nodes.
            selector = common_pb2.NodeSelector(nodes=self.nodes)
            plan.target.CopyFrom(selector)
        elif plan.target.nodes or plan.target.labels or plan.target.all_nodes:
            selector = plan.target
        else:
            selector = None  # the verifier's default; an empty selector would select nothing
        signed = await asyncio.to_thread(
            self._verifier.verify,
            candidate,
            policy=plan.policy,
            progress=stage_progress,
            skip_performance=not candidate.workload,
            node_selector=selector,
        )
        return verdict_to_proto(signed.record, plan=plan, token=signed.token)


class GrpcExecutor:
    """The executor service's Deploy stream; None when no executor is reachable."""

    def __init__(self, address: str, nodes: list[str]) -> None:
        self.address, self.nodes = address, nodes

    @classmethod
    async def connect(cls, *, say: Callable[[str], None]) -> GrpcExecutor | None:
        """The executor at SCHEDCP_EXECUTOR_ADDR and the name of its own node (its Status)."""
        import grpc

        from schedcp.rpc import check_health, grpc_channel
        from schedcp.settings import service_address
        from schedcp.v1 import services_pb2, services_pb2_grpc

        address = service_address("executor")
        if not await check_health(address, deadline_s=1.0):
            say(
                f"no executor at {address}: the winner will be reported, not deployed "
                "(start the stack with `schedcp up`)"
            )
            return None
        try:
            async with grpc_channel(address) as channel:
                status = await services_pb2_grpc.ExecutorServiceStub(channel).Status(
                    services_pb2.StatusRequest(), timeout=60
                )
        except grpc.aio.AioRpcError as exc:
            say(f"the executor at {address} did not report its nodes ({exc.code().name}): not deploying")
            return None
        if not status.nodes:
            say(f"the executor at {address} reports no nodes: not deploying")
            return None
        # Its own node comes first; peers (a fleet) follow and are left to `schedcp deploy`.
        node = status.nodes[0].node
        say(f"executor at {address}: deploying to its node {node!r}")
        return cls(address, [node])

    async def deploy(self, verdict: Any, progress: Callable[[str], None]) -> Any:
        import grpc

        from schedcp.rpc import grpc_channel
        from schedcp.v1 import common_pb2, deployment_pb2, services_pb2, services_pb2_grpc
        from services.planner.loop import Deployment

        request = services_pb2.DeployRequest(
            verdict=verdict, nodes=common_pb2.NodeSelector(nodes=self.nodes)
        )
        last = None
        node_last = None  # the node's own final report carries the metrics
        try:
            async with grpc_channel(self.address) as channel:
                stub = services_pb2_grpc.ExecutorServiceStub(channel)
                async for report in stub.Deploy(request, timeout=900):
                    last = report
                    if report.node != "*":
                        node_last = report
                    progress(
                        f"  {deployment_pb2.DeploymentPhase.Name(report.phase)} "
                        f"{report.node}: {report.message[:120]}"
                    )
        except grpc.aio.AioRpcError as exc:
            raise SchedcpError(f"executor: {exc.code().name}: {exc.details()}") from exc
        if last is None:
            return Deployment(phase="PHASE_FAILED", message="executor sent no report")
        # The phase is the rollout's (its "*" summary comes last); the message
        # and metrics are the node's, which say what happened and why.
        detail = node_last or last
        return Deployment(
            phase=deployment_pb2.DeploymentPhase.Name(last.phase),
            message=detail.message if detail is last else f"{detail.message} ({last.message})",
            rollout_id=last.rollout_id,
            metrics_before=dict(detail.metrics_before),
            metrics_after=dict(detail.metrics_after),
        )


def render(doc: dict[str, Any]) -> str:
    """A human summary of the loop's result."""
    prof = doc["profile"]
    lines = [
        f"observed:  {prof.get('workload_class', '?')} ({prof.get('description', '')[:100]})",
        f"LLM:       {doc['llm_tokens']} tokens in {doc['llm']['calls']} calls, "
        f"{doc['llm']['wall_s']:.1f}s",
        "candidates:",
    ]
    verdict_of = {v["plan_id"]: v for v in doc["verdicts"]}
    for p in doc["plans"]:
        v = verdict_of.get(p["plan_id"])
        state = (
            "not verified"
            if v is None
            else (
                f"PASS {v['score']:.3f}x"
                if v["passed"]
                else "FAIL "
                + ",".join(s["name"] for s in v["stages"] if s["status"] == "STAGE_FAILED")
            )
        )
        lines.append(
            f"  [{p['iteration']}.{p['candidate_index']}] {p['path']:<18} {p['policy']:<16} "
            f"{json.dumps(p['tunables'])}  {state}"
        )
    if doc["baseline"]:
        lines.append(
            "vs EEVDF:  "
            + ", ".join(
                f"{k} {doc['baseline'][k]:.4g} -> {doc['result'].get(k, 0):.4g}"
                for k in doc["baseline"]
            )
        )
    lines.append(
        f"result:    {doc['improvement']:.3f}x EEVDF; deployed: "
        + (
            f"{doc['deployed']['policy']} {json.dumps(doc['deployed']['config'])}"
            if doc["deployed"]
            else "nothing"
        )
    )
    lines.append(f"           {doc['message']}")
    lines.append(f"wall time: {doc['wall_s']:.1f}s")
    return "\n".join(lines)
