"""Deterministic workload classifier: features in, class + confidence + reasons out.

Works without any LLM; the LLM (when configured) may only choose among the
same classes and this result is its fallback. Each class has a score in [0, 1]
built from soft ramps over tier-1 features, so a workload near a threshold
gets a middling score rather than flipping; the confidence is the winning
score discounted by how close the runner-up came. A low confidence is what
makes the Observation agent pay for tier 2.

The shapes it separates (see docs/observer.md for the table):
- PARALLEL_BUILD: many short-lived tasks, many distinct programs (exec-heavy),
  most CPU spent in tasks born during the window.
- BATCH_LONG_TAIL: a few long CPU-bound tasks plus churn of short tasks of the
  same program(s): the long ones dominate completion time.
- CPU_THROUGHPUT: long-lived CPU-bound threads, little churn, long bursts.
- LATENCY_SERVER: frequent sleep/wake with short CPU bursts, no CPU hogs.
- INTERACTIVE_BACKGROUND: CPU hogs and an interactive (mostly sleeping,
  often waking) thread side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schedcp.v1 import common_pb2, profile_pb2

WC = common_pb2.WorkloadClass

#: Below this best score nothing is claimed (UNKNOWN_WORKLOAD).
MIN_SCORE = 0.35


def ramp(x: float, lo: float, hi: float) -> float:
    """0 at or below ``lo``, 1 at or above ``hi``, linear between."""
    if hi == lo:
        return 1.0 if x >= hi else 0.0
    return max(0.0, min(1.0, (x - lo) / (hi - lo)))


def _mean(*xs: float) -> float:
    return sum(xs) / len(xs)


@dataclass(frozen=True)
class Classification:
    """A class, how sure the classifier is, and the features that decided it."""

    workload_class: int
    confidence: float
    scores: dict[str, float]
    reasons: list[str] = field(default_factory=list)

    @property
    def class_name(self) -> str:
        return WC.Name(self.workload_class)


def classify(f: profile_pb2.WorkloadFeatures) -> Classification:
    """Classify one workload from its features (tier 1, optionally refined by tier 2)."""
    util = f.cpu_utilization
    threads = max(1, f.thread_count)
    births = f.task_births_per_s
    # Tier 2's lifetime histogram counts every task; prefer it when present.
    completed = f.completed_tasks
    p50_ms = f.task_lifetime_ms_p50
    if f.HasField("task_lifetime") and f.task_lifetime.samples:
        completed = max(completed, int(f.task_lifetime.samples))
        p50_ms = f.task_lifetime.p50 / 1e3 if f.task_lifetime.unit == "us" else f.task_lifetime.p50
    wake_rate = f.voluntary_ctx_switches_per_s
    burst_us = f.run_burst_us_mean

    # Demand, not delivered CPU: on a contended node a build gets little CPU but
    # waits for more (run-queue wait is the share of runnable time not running).
    demand = util / max(0.05, 1.0 - f.runqueue_wait_fraction)
    busy = ramp(demand, 0.05, 0.4)
    churn = ramp(births, 1.0, 15.0)
    short_life = (1.0 - ramp(p50_ms, 1500.0, 8000.0)) if completed >= 3 else 0.5 * churn
    exec_div = ramp(f.distinct_comms, 2, 6)
    short_cpu = ramp(f.short_task_cpu_fraction, 0.2, 0.7)
    hogs = ramp(f.cpu_bound_threads, 0, 1)
    hog_share = min(1.0, f.cpu_bound_threads / threads * 1.5)
    interactive = ramp(f.interactive_threads, 0, 1)
    frequent_wake = ramp(wake_rate, 30.0, 300.0)
    short_burst = 1.0 - ramp(burst_us, 3000.0, 30000.0)
    mixed_cpu = 1.0 - abs(f.short_task_cpu_fraction - 0.5) * 2  # both long and short tasks matter
    # How much of the CPU the long-lived tasks take: a batch's long tail does
    # real work, while a build's rare long translation unit (a "hog" while it
    # lasts) is a sliver next to its thousands of short jobs.
    long_share = ramp(1.0 - f.short_task_cpu_fraction, 0.1, 0.4)
    # Many more threads than CPUs, passing messages and together wanting more
    # than the node has: a messaging throughput workload (hackbench), not a
    # server, whose pool is sized near the CPU count or mostly waits for requests.
    ncpu = max(1, f.node_cpus)
    saturating = ramp(threads / ncpu, 8.0, 20.0) * ramp(demand / ncpu, 0.5, 1.0)

    scores = {
        # Long-lived CPU hogs among short jobs of the same program(s) mean batch, not build.
        "PARALLEL_BUILD": busy * _mean(churn, short_life, exec_div, short_cpu)
        * (1.0 - 0.5 * hogs * (1.0 - exec_div) * long_share),
        "BATCH_LONG_TAIL": busy * _mean(ramp(births, 0.5, 5.0), hogs, max(mixed_cpu, 0.0),
                                        1.0 - 0.7 * exec_div)
        * (1.0 - 0.5 * interactive * (1.0 - ramp(births, 0.5, 5.0)))
        * (0.5 + 0.5 * long_share),
        "CPU_THROUGHPUT": busy * _mean(hogs, hog_share, 1.0 - churn, 1.0 - short_burst)
        * (1.0 - 0.6 * interactive)
        # CPU going to tasks born in the window means jobs, not a fixed worker set.
        * (1.0 - 0.7 * ramp(f.short_task_cpu_fraction, 0.05, 0.3)),
        # A server may use little CPU: being woken often is what makes it active.
        "LATENCY_SERVER": ramp(wake_rate, 20.0, 200.0) * _mean(short_burst, 1.0 - hogs, 1.0 - hog_share)
        * (1.0 - 0.8 * churn) * (1.0 - 0.8 * saturating),
        # Hogs here are long-lived background work, not a stream of short jobs.
        "INTERACTIVE_BACKGROUND": min(hogs, interactive) * _mean(busy, frequent_wake, 1.0)
        * (1.0 - 0.8 * churn) * (1.0 - 0.8 * short_cpu),
    }
    scores["CPU_THROUGHPUT"] = max(scores["CPU_THROUGHPUT"],
                                   busy * saturating * frequent_wake * (1.0 - churn))
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    (best, best_score), (_, second_score) = ranked[0], ranked[1]
    reasons = _reasons(best, f, util, births, p50_ms, completed, burst_us)
    if best_score < MIN_SCORE:
        return Classification(WC.UNKNOWN_WORKLOAD, round(1.0 - best_score, 3), scores,
                              [f"no class scored above {MIN_SCORE} (best {best} {best_score:.2f})"] + reasons)
    confidence = max(0.0, min(1.0, best_score - 0.5 * second_score + 0.25))
    return Classification(WC.Value(best), round(confidence, 3), scores, reasons)


def _reasons(best: str, f: profile_pb2.WorkloadFeatures, util: float, births: float,
             p50_ms: float, completed: int, burst_us: float) -> list[str]:
    common = [f"cpu_utilization={util:.2f} CPUs",
              f"runqueue_wait_fraction={f.runqueue_wait_fraction:.2f}"]
    by_class = {
        "PARALLEL_BUILD": [f"task_births_per_s={births:.1f}", f"task_lifetime_ms_p50={p50_ms:.0f} over {completed} tasks",
                           f"distinct_comms={f.distinct_comms}",
                           f"short_task_cpu_fraction={f.short_task_cpu_fraction:.2f}"],
        "BATCH_LONG_TAIL": [f"cpu_bound_threads={f.cpu_bound_threads}", f"task_births_per_s={births:.1f}",
                            f"short_task_cpu_fraction={f.short_task_cpu_fraction:.2f}"],
        "CPU_THROUGHPUT": [f"cpu_bound_threads={f.cpu_bound_threads} of {f.thread_count}",
                           f"threads_per_cpu={f.thread_count / max(1, f.node_cpus):.1f}",
                           f"task_births_per_s={births:.1f}", f"run_burst_us_mean={burst_us:.0f}"],
        "LATENCY_SERVER": [f"voluntary_ctx_switches_per_s={f.voluntary_ctx_switches_per_s:.0f}",
                           f"run_burst_us_mean={burst_us:.0f}", f"cpu_bound_threads={f.cpu_bound_threads}"],
        "INTERACTIVE_BACKGROUND": [f"cpu_bound_threads={f.cpu_bound_threads}",
                                   f"interactive_threads={f.interactive_threads}",
                                   f"voluntary_ctx_switches_per_s={f.voluntary_ctx_switches_per_s:.0f}"],
    }
    return common + by_class[best]


# ------------------------------------------------------------------ goals

_GOALS: dict[int, tuple[int, str, list[str]]] = {
    WC.PARALLEL_BUILD: (common_pb2.GOAL_MAKESPAN, "makespan_s",
                        ["keep the critical path (long compile/link steps) running",
                         "do not starve short-lived tasks"]),
    WC.BATCH_LONG_TAIL: (common_pb2.GOAL_MAKESPAN, "makespan_s",
                         ["start the longest jobs first so they do not finish last",
                          "average job completion time must not regress"]),
    WC.CPU_THROUGHPUT: (common_pb2.GOAL_THROUGHPUT, "throughput_ops_per_s",
                        ["minimise context switches and migrations of CPU-bound threads"]),
    WC.LATENCY_SERVER: (common_pb2.GOAL_TAIL_LATENCY, "p99_latency_us",
                        ["wake request handlers promptly", "throughput must not drop"]),
    WC.INTERACTIVE_BACKGROUND: (common_pb2.GOAL_TAIL_LATENCY, "p99_wakeup_latency_us",
                                ["the interactive task must run soon after it wakes",
                                 "background throughput may drop at most 10%"]),
}


def goal_for(workload_class: int, f: profile_pb2.WorkloadFeatures) -> profile_pb2.OptimizationGoal:
    """The optimisation goal that follows from a class (what to improve, what to protect)."""
    kind, metric, constraints = _GOALS.get(
        workload_class, (common_pb2.GOAL_THROUGHPUT, "cpu_utilization",
                         ["class unknown: only accept changes that regress nothing"]))
    goal = profile_pb2.OptimizationGoal(metric=metric, constraints=list(constraints), max_regression_pct=5.0)
    goal.kind = kind  # type: ignore[assignment]  # stubs want the enum type; values are ints
    if f.runqueue_wait_fraction > 0.3:
        goal.constraints.append(
            f"run-queue wait is {f.runqueue_wait_fraction:.0%} of runnable time: the node is oversubscribed")
    return goal
