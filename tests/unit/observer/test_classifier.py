"""Deterministic classification of feature vectors shaped like each class."""

import pytest

from schedcp.v1 import common_pb2, profile_pb2
from services.observer.classifier import classify, goal_for, ramp

WC = common_pb2.WorkloadClass


def feats(**kw: float) -> profile_pb2.WorkloadFeatures:
    base = {"node_cpus": 2, "thread_count": 4, "process_count": 2}
    base.update(kw)
    return profile_pb2.WorkloadFeatures(**base)


CASES = {
    "build": (feats(cpu_utilization=1.6, task_births_per_s=25, task_exits_per_s=25, task_lifetime_ms_p50=300,
                    completed_tasks=60, distinct_comms=6, short_task_cpu_fraction=0.9, cpu_bound_threads=1,
                    voluntary_ctx_switches_per_s=800, run_burst_us_mean=2000), WC.PARALLEL_BUILD),
    # A window in the middle of a big build's compile phase sees one program
    # (the compiler) and a long translation unit that looks like a hog; the
    # short jobs still do nearly all the work, so it is no long-tail batch.
    "build-compile-phase": (feats(cpu_utilization=2.0, task_births_per_s=24, task_exits_per_s=24,
                                  task_lifetime_ms_p50=130, completed_tasks=70, distinct_comms=2,
                                  short_task_cpu_fraction=0.97, cpu_bound_threads=2, interactive_threads=1,
                                  voluntary_ctx_switches_per_s=56, run_burst_us_mean=5000), WC.PARALLEL_BUILD),
    "batch": (feats(cpu_utilization=1.5, task_births_per_s=6, task_lifetime_ms_p50=150, completed_tasks=15,
                    distinct_comms=1, short_task_cpu_fraction=0.4, cpu_bound_threads=2,
                    voluntary_ctx_switches_per_s=10, run_burst_us_mean=50000), WC.BATCH_LONG_TAIL),
    "server": (feats(cpu_utilization=0.2, voluntary_ctx_switches_per_s=3000, run_burst_us_mean=60,
                     interactive_threads=4), WC.LATENCY_SERVER),
    "throughput": (feats(cpu_utilization=1.9, cpu_bound_threads=4, run_burst_us_mean=500000,
                         voluntary_ctx_switches_per_s=2), WC.CPU_THROUGHPUT),
    "interactive": (feats(cpu_utilization=1.8, cpu_bound_threads=2, interactive_threads=1,
                          voluntary_ctx_switches_per_s=200, run_burst_us_mean=9000), WC.INTERACTIVE_BACKGROUND),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_shape_gets_its_class_with_reasons(name: str) -> None:
    f, expected = CASES[name]
    c = classify(f)
    assert c.workload_class == expected, (name, c.scores)
    assert c.confidence >= 0.6
    assert c.reasons and all("=" in r for r in c.reasons)


def test_idle_workload_is_unknown() -> None:
    c = classify(feats(cpu_utilization=0.0))
    assert c.workload_class == WC.UNKNOWN_WORKLOAD


def test_contention_counts_as_demand() -> None:
    # A build squeezed to 0.15 CPUs that waits 70% of its runnable time still looks like a build.
    f, _ = CASES["build"]
    squeezed = profile_pb2.WorkloadFeatures()
    squeezed.CopyFrom(f)
    squeezed.cpu_utilization = 0.15
    squeezed.runqueue_wait_fraction = 0.7
    assert classify(squeezed).workload_class == WC.PARALLEL_BUILD


def test_tier2_lifetimes_override_polling() -> None:
    # Polling saw no completed tasks; the lifetime probe saw hundreds of short ones.
    f = feats(cpu_utilization=1.2, task_births_per_s=40, distinct_comms=5, short_task_cpu_fraction=0.8)
    f.task_lifetime.CopyFrom(profile_pb2.Histogram(samples=400, p50=20000.0, unit="us"))
    assert classify(f).workload_class == WC.PARALLEL_BUILD


def test_goals_follow_the_class() -> None:
    assert goal_for(WC.PARALLEL_BUILD, feats()).kind == common_pb2.GOAL_MAKESPAN
    assert goal_for(WC.LATENCY_SERVER, feats()).metric == "p99_latency_us"
    g = goal_for(WC.UNKNOWN_WORKLOAD, feats(runqueue_wait_fraction=0.5))
    assert any("oversubscribed" in c for c in g.constraints)


def test_ramp() -> None:
    assert (ramp(0, 1, 2), ramp(1.5, 1, 2), ramp(3, 1, 2)) == (0.0, 0.5, 1.0)
