"""The A/B engine's control flow against a scripted node (pure logic)."""

import json
from pathlib import Path

import pytest

from schedcp.bench.engine import (
    EEVDF,
    ABRunner,
    NoSchedExt,
    RunOutcome,
    SchedulerEjected,
    SchedulerUnderTest,
)

FIFO = SchedulerUnderTest("fifo", obj=Path("/objs/fifo.bpf.o"), tunables={"slice_us": 5000})


class ScriptedNode:
    """Answers each repetition with a makespan that depends on the scheduler."""

    name = "scripted"

    def __init__(self, *, sched_ext=True, eject=()):
        self.sched_ext = sched_ext
        self.eject = set(eject)
        self.calls = []
        self.makespan = {"eevdf": [4.0, 4.4, 4.2, 4.1], "fifo": [2.0, 2.2, 2.1, 1.9]}

    def supports_sched_ext(self):
        return self.sched_ext

    def run_repetition(self, workload, params, *, scheduler, timeout):
        who = scheduler.name if scheduler is not None else "eevdf"
        self.calls.append(who)
        value = self.makespan.get(who, []).pop(0) if self.makespan.get(who) else 3.0
        output = "noise\n" + json.dumps({"workload": workload, "params": {}, "elapsed_s": value,
                                         "metrics": {"makespan_s": value, "mean_completion_s": value / 2}})
        return RunOutcome(output=output, ejected=who in self.eject,
                          exit_reason="runnable task stall" if who in self.eject else None)


def runner(node, **kw):
    return ABRunner(node=node, prepare_workload=lambda name: None, **kw)


def test_interleaves_abba_after_a_warmup():
    node = ScriptedNode()
    result = runner(node).compare("batch-long-tail", candidate=FIFO, repetitions=3, warmup=1)
    # warm-up, then A B, B A, A B
    assert node.calls == ["eevdf", "eevdf", "fifo", "fifo", "eevdf", "eevdf", "fifo"]
    assert [r.arm for r in result.runs] == ["baseline", "candidate", "candidate", "baseline",
                                            "baseline", "candidate"]


def test_reports_medians_spread_and_oriented_ratio():
    node = ScriptedNode()
    result = runner(node).compare("batch-long-tail", candidate=FIFO, repetitions=3, warmup=0)
    m = result.metric("makespan_s")
    assert m.baseline == pytest.approx(4.2)  # median of 4.0, 4.4, 4.2
    assert m.candidate == pytest.approx(2.1)  # median of 2.0, 2.2, 2.1
    assert m.ratio == pytest.approx(2.0)  # lower is better: baseline / candidate
    assert m.spread == pytest.approx(0.2 / 2.1)
    assert result.score == m.ratio
    assert result.tunables == {"slice_us": 5000}
    proto = result.to_proto(regression_threshold_pct=5)
    assert proto.metrics[0].metric == "makespan_s" and proto.repetitions == 3
    assert json.loads(json.dumps(result.to_dict()))["score"] == pytest.approx(2.0)


def test_baseline_only_never_loads():
    node = ScriptedNode(sched_ext=False)
    result = runner(node).compare("batch-long-tail", candidate=EEVDF, repetitions=2, warmup=0)
    assert result.baseline_only
    assert set(node.calls) == {"eevdf"}
    assert result.metric("makespan_s").ratio == 1.0


def test_refuses_a_candidate_without_sched_ext():
    with pytest.raises(NoSchedExt, match="--node vm"):
        runner(ScriptedNode(sched_ext=False)).compare("batch-long-tail", candidate=FIFO, repetitions=1)


def test_an_ejected_candidate_is_an_error_not_a_result():
    node = ScriptedNode(eject={"fifo"})
    with pytest.raises(SchedulerEjected, match="disabled by the kernel.*runnable task stall"):
        runner(node).compare("batch-long-tail", candidate=FIFO, repetitions=1, warmup=0)


def test_progress_reports_every_step():
    lines = []
    runner(ScriptedNode(), progress=lines.append).compare("batch-long-tail", candidate=FIFO,
                                                          repetitions=1, warmup=0)
    assert any(line.startswith("[1/2]") for line in lines)
    assert any("loading fifo" in line for line in lines)


def test_compare_many_shares_the_baseline_and_isolates_a_failure():
    node = ScriptedNode(eject={"stall"})
    stall = SchedulerUnderTest("stall", obj=Path("/objs/stall.bpf.o"))
    fifo_result, stall_result = runner(node).compare_many(
        "batch-long-tail", candidates=[FIFO, stall], repetitions=2, warmup=0)
    assert isinstance(stall_result, SchedulerEjected)
    assert fifo_result.metric("makespan_s").baseline_values == (4.0, 4.4)
    # Rounds rotate the arm order: eevdf fifo stall, then fifo stall eevdf (stall dropped out).
    assert node.calls == ["eevdf", "fifo", "stall", "fifo", "eevdf"]


def test_a_lost_node_stops_the_benchmark_instead_of_failing_one_candidate():
    from schedcp.bench.engine import NodeLost

    class DyingNode(ScriptedNode):
        def run_repetition(self, workload, params, *, scheduler, timeout):
            if scheduler is not None:
                raise NodeLost("vm died: guest kernel crashed")
            return super().run_repetition(workload, params, scheduler=scheduler, timeout=timeout)

    with pytest.raises(NodeLost):
        runner(DyingNode()).compare_many("batch-long-tail", candidates=[FIFO], repetitions=2, warmup=0)
