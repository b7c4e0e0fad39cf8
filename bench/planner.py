"""Planner cost: LLM tokens and wall time per plan, first time vs reuse, per decision path.

    .venv/bin/python bench/planner.py [--out docs/benchmarks-planner.md] [--no-llm]

Real parts: the repository store (SQLite + MiniLM embeddings, seeded from
bpf/), the local SmolLM2-135M server (xllamacpp, 1 thread), the Planner and
Learner. Synthetic parts, stated in the output: the workload profiles (fixed
features per class, no observation) and the "win" that enables reuse (one
deployment outcome with ratio 1.3 recorded through the learner path), because
this benchmark measures planning cost, not scheduler quality.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schedcp.v1 import common_pb2, deployment_pb2, profile_pb2  # noqa: E402

CLASSES = [
    common_pb2.PARALLEL_BUILD,
    common_pb2.LATENCY_SERVER,
    common_pb2.BATCH_LONG_TAIL,
    common_pb2.INTERACTIVE_BACKGROUND,
    common_pb2.CPU_THROUGHPUT,
]
DESCRIPTIONS = {
    common_pb2.PARALLEL_BUILD: "CPU-intensive parallel compilation with short-lived processes",
    common_pb2.LATENCY_SERVER: "request/response server where tail latency of wakeups matters",
    common_pb2.BATCH_LONG_TAIL: "batch of tasks where a few long ones decide the finish time",
    common_pb2.INTERACTIVE_BACKGROUND: "interactive task next to CPU-heavy background work",
    common_pb2.CPU_THROUGHPUT: "many CPU-bound workers, throughput matters",
    common_pb2.UNKNOWN_WORKLOAD: "a mix of processes with no clear scheduling pattern",
}


def make_profile(cls: int, i: int) -> profile_pb2.WorkloadProfile:
    latency = cls in (common_pb2.LATENCY_SERVER, common_pb2.INTERACTIVE_BACKGROUND)
    p = profile_pb2.WorkloadProfile(
        profile_id=f"bench-{cls}-{i}",
        node="bench",
        workload_class=cls,
        class_confidence=0.8,
        description=DESCRIPTIONS[cls],
        workload=profile_pb2.WorkloadIdentity(name=f"workload-{cls}", comm="bench"),
        goal=profile_pb2.OptimizationGoal(
            kind=common_pb2.GOAL_TAIL_LATENCY if latency else common_pb2.GOAL_MAKESPAN,
            metric="p99_latency_us" if latency else "makespan_s",
        ),
        features=profile_pb2.WorkloadFeatures(
            cpu_utilization=1.8,
            thread_count=16,
            wakeups_per_s=3000 if latency else 100,
            node_cpus=2,
            task_lifetime_ms_p50=20 if cls == common_pb2.PARALLEL_BUILD else 500,
        ),
    )
    return p


async def plan_once(planner, profile, *, use_llm):
    from services.planner.planner import usage_of

    start = time.monotonic()
    plans = await planner.plan(profile, use_llm=use_llm)
    wall = time.monotonic() - start
    u = usage_of(plans)
    return plans, wall, u


async def main(out: Path, use_llm: bool) -> None:
    data = Path(tempfile.mkdtemp(prefix="bench-planner-"))
    os.environ["SCHEDCP_DATA_DIR"] = str(data)
    from schedcp.cli.optimize import LocalRepository, RecordingLearner
    from schedcp.llm.client import LlmClient
    from schedcp.llm.server import LocalLlmServer
    from services.learner.learner import Learner, LearnerSettings
    from services.planner.planner import Planner, PlannerSettings

    t = time.monotonic()
    repo = await asyncio.to_thread(LocalRepository.open)
    open_s = time.monotonic() - t
    server = LocalLlmServer().start() if use_llm else None
    rows: list[tuple[str, str, str, int, int, float]] = []
    try:
        client = LlmClient(base_url=server.base_url, model=server.model) if server else None
        learner = Learner(repository=repo, settings=LearnerSettings(record_events=False))
        recorder = RecordingLearner(repository=repo, learner=learner)
        planner = Planner(repository=repo, llm=client, history=learner)
        for cls in CLASSES:
            name = common_pb2.WorkloadClass.Name(cls)
            plans, wall, u = await plan_once(planner, make_profile(cls, 0), use_llm=False)
            rows.append((name, "no LLM", _path(plans), u.calls, u.total_tokens, wall))
            if client:
                plans, wall, u = await plan_once(planner, make_profile(cls, 1), use_llm=True)
                rows.append((name, "first (LLM)", _path(plans), u.calls, u.total_tokens, wall))
            # Synthetic win for the first candidate, recorded like a deployment outcome.
            best = plans[0]
            outcome = deployment_pb2.DeploymentOutcome(
                outcome_id=f"bench-{cls}",
                workload_class=cls,
                policy=best.policy,
                improvement=1.3,
                metric=best.expected.metric,
                success=True,
                source="deployment",
                node="bench",
            )
            outcome.tunables.MergeFrom(best.tunables)
            await recorder.on_outcome(outcome)
            plans, wall, u = await plan_once(planner, make_profile(cls, 2), use_llm=True)
            rows.append((name, "reuse", _path(plans), u.calls, u.total_tokens, wall))
        if client:
            # The code paths, forced: PATCH (weak match + high success prior), COMPOSE (empty library).
            patcher = Planner(
                repository=repo,
                llm=client,
                history=learner,
                settings=PlannerSettings(
                    llm_success_prob=1.0, target_prior_ratio=1.0, reuse_min_ratio=99.0
                ),
            )
            profile = make_profile(common_pb2.UNKNOWN_WORKLOAD, 3)
            plans, wall, u = await plan_once(patcher, profile, use_llm=True)
            rows.append(
                ("UNKNOWN_WORKLOAD", "forced PATCH", _path(plans), u.calls, u.total_tokens, wall)
            )
            composer = Planner(repository=_Empty(), llm=client, history=None)
            plans, wall, u = await plan_once(
                composer, make_profile(common_pb2.PARALLEL_BUILD, 4), use_llm=True
            )
            rows.append(
                (
                    "PARALLEL_BUILD",
                    "COMPOSE (empty repo)",
                    _path(plans),
                    u.calls,
                    u.total_tokens,
                    wall,
                )
            )
        if client:
            await client.close()
    finally:
        if server:
            server.stop()
        await asyncio.to_thread(repo.close)
    write(out, rows, open_s, use_llm)


class _Empty:
    async def search(self, *a, **k):
        return []

    async def get(self, name, version=""):
        from schedcp.errors import NotFound

        raise NotFound(name)

    async def list_antipatterns(self, **k):
        return []

    async def record_antipattern(self, ap):
        return None


def _path(plans) -> str:
    from schedcp.v1 import plan_pb2

    return plan_pb2.DecisionPath.Name(plans[0].path) + f" {plans[0].policy.name}"


def write(out: Path, rows, open_s: float, use_llm: bool) -> None:
    first = [r[5] for r in rows if r[1] == "first (LLM)"]
    reuse = [r[5] for r in rows if r[1] == "reuse"]
    lines = [
        "# Planner benchmark",
        "",
        "Produced by `bench/planner.py` on the project machine (2 cores, shared with other work;",
        "SmolLM2-135M-Instruct Q4_1 via xllamacpp, 1 thread). Real repository store seeded from",
        "`bpf/`, real local LLM; the profiles are synthetic (fixed features per class) and the win",
        "that enables reuse is one recorded outcome with ratio 1.3, because this measures the cost",
        "of planning, not the quality of schedulers (see the optimize numbers for that).",
        "",
        f"Repository open + seed (embeddings): {open_s:.2f} s.",
        "",
        "| class | run | first candidate | LLM calls | LLM tokens | wall s |",
        "|---|---|---|---:|---:|---:|",
    ]
    for cls, run, path, calls, tokens, wall in rows:
        lines.append(f"| {cls} | {run} | {path} | {calls} | {tokens} | {wall:.3f} |")
    lines += [""]
    if first and reuse:
        lines.append(
            f"Median wall time per plan: first time with the LLM {statistics.median(first):.3f} s, "
            f"on reuse {statistics.median(reuse):.3f} s (reuse: 0 tokens, no LLM call)."
        )
    if not use_llm:
        lines.append("(run with --no-llm: no LLM rows)")
    load = os.getloadavg()
    lines += [
        "",
        f"Load average at the end of the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(1/5/15 min) on 2 cores: LLM wall times scale with contention (SmolLM2 does about",
        "100 tok/s on an idle core); token counts do not.",
        "",
        "Reading it: the first plan for a class costs one ranking call (~400 tokens) with the local",
        "model; once a configuration has a recorded win on the class the planner reuses it with no",
        "LLM call at all. The forced PATCH row shows why the code paths are weighted down for a",
        "135M model: its patched source is discarded by the pre-verifier shape check (or would fail",
        "the verifier) and the configure candidate leads; COMPOSE only fills bounded slots, so it",
        "always yields a compilable scheduler.",
    ]
    lines.append("")
    text = "\n".join(lines)
    # The end-to-end `schedcp optimize` numbers below this heading are
    # measured by hand (minutes of micro-VMs per run): keep them.
    previous = out.read_text() if out.exists() else ""
    kept = previous.find("\n## End-to-end")
    if kept != -1:
        text += previous[kept:]
    out.write_text(text)
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-planner.md")
    parser.add_argument("--no-llm", action="store_true")
    a = parser.parse_args()
    asyncio.run(main(a.out, not a.no_llm))
