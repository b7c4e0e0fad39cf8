"""The dynamic stage's noise-aware decisions, without a VM.

The sequential A/B test (services.verifier.dynamic) and the starvation judge
calibrated against EEVDF (services.verifier.stages) are pure functions over
measurements; DynamicStage is driven here through a scripted fake node.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from services.verifier.convert import verdict_to_proto
from services.verifier.domain import Candidate, Severity
from services.verifier.dynamic import (
    Decision,
    SequentialPolicy,
    abba_order,
    host_cpu_stall_us,
    judge_performance,
    pressure_share,
    regression_p_value,
    run_sequential,
    wait_for_calm,
)
from services.verifier.pipeline import StageFailed, VerdictRecord, VerifyContext
from services.verifier.stages import (
    DynamicStage,
    SuiteConfig,
    judge_suite,
    needs_baseline,
    suite_baseline,
    task_kind,
)

# ------------------------------------------------------------- p-value


def test_complete_separation_p_is_one_over_the_number_of_splits():
    # Candidate throughput far below EEVDF's in every run.
    assert regression_p_value([100, 101], [50, 51], higher_is_better=True,
                              threshold_pct=10) == pytest.approx(1 / 6)
    assert regression_p_value([100, 101, 102], [50, 51, 52], higher_is_better=True,
                              threshold_pct=10) == pytest.approx(1 / 20)
    # Latency (lower is better) far above EEVDF's.
    assert regression_p_value([1.0, 1.1, 1.2], [3.0, 3.1, 3.2], higher_is_better=False,
                              threshold_pct=10) == pytest.approx(1 / 20)


def test_p_value_tests_the_threshold_not_any_difference():
    # 5% worse in every run, threshold 10%: no evidence of a regression past it.
    base = [100.0, 100.5, 101.0, 101.5]
    cand = [b * 0.95 for b in base]
    assert regression_p_value(base, cand, higher_is_better=True, threshold_pct=10) == 1.0
    # Without the threshold the same runs are a clear (if small) regression.
    assert regression_p_value(base, cand, higher_is_better=True,
                              threshold_pct=0) == pytest.approx(1 / 70)


def test_better_candidate_gives_no_evidence():
    assert regression_p_value([10, 11, 12], [20, 21, 22], higher_is_better=True,
                              threshold_pct=10) == 1.0


# ------------------------------------------------------------- sequential decision


def _judge(base, cand, *, hib=True, reps=2, max_reps=6, thr=10.0):
    return judge_performance({"m": base}, {"m": cand}, primary="m", workload="w",
                             higher_is_better={"m": hib},
                             policy=SequentialPolicy(repetitions=reps, max_repetitions=max_reps,
                                                     threshold_pct=thr))


def test_within_threshold_passes_at_once():
    out = _judge([100, 104], [95, 97])
    assert out.decision is Decision.PASS
    assert out.result.repetitions == 2 and out.result.decision == "pass"
    assert "2 runs per side" in out.findings[0].message


def test_past_threshold_with_two_runs_asks_for_more():
    # Median 20% worse, but two runs a side cannot show it clearly (p >= 1/6).
    out = _judge([100, 110], [80, 88])
    assert out.decision is Decision.MORE
    assert not any(f.severity is Severity.ERROR for f in out.findings)


CLEAR_BASE = [100, 102, 101, 99, 103]
CLEAR_CAND = [60, 62, 61, 59, 63]


def test_clear_regression_fails_with_the_noise_in_the_message():
    # Three runs a side fully apart give p = 1/20: not enough at alpha 0.01.
    assert _judge([100, 102, 101], [60, 62, 61]).decision is Decision.MORE
    out = _judge(CLEAR_BASE, CLEAR_CAND)
    assert out.decision is Decision.REGRESSION
    err = next(f for f in out.findings if f.severity is Severity.ERROR)
    assert err.rule == "performance-regression"
    assert "5 runs per side" in err.message and "spread EEVDF 4% / candidate 7%" in err.message
    assert out.result.p_value == pytest.approx(1 / 252)


def test_overlapping_runs_at_the_maximum_are_inconclusive_not_a_failure():
    base = [100, 70, 105, 95]
    cand = [80, 98, 75, 85]  # median 17% worse, but the runs interleave
    out = _judge(base, cand, max_reps=4)
    assert out.decision is Decision.INCONCLUSIVE
    assert [f.severity for f in out.findings] == [Severity.WARNING]
    assert out.findings[0].rule == "performance-inconclusive"
    assert out.result.max_repetitions == 4 and out.result.p_value > 0.05


def test_missing_primary_metric_fails():
    out = judge_performance({"x": [1.0]}, {"x": [1.0]}, primary="m", workload="w",
                            higher_is_better={"x": True, "m": True}, policy=SequentialPolicy())
    assert out.decision is Decision.REGRESSION
    assert out.findings[0].rule == "performance-missing"


def test_policy_rejects_a_maximum_below_the_first_round():
    with pytest.raises(ValueError, match="max_repetitions"):
        SequentialPolicy(repetitions=4, max_repetitions=2)


def test_abba_order_continues_across_rounds():
    assert abba_order(0, 2) + abba_order(2, 2) == [
        "base", "cand", "cand", "base", "base", "cand", "cand", "base"]


def _fake_runs(ratio: float, noise: float, seed: int):
    """run_one for a candidate whose true throughput is ``ratio`` x EEVDF's."""
    rng = random.Random(seed)
    sides: list[str] = []

    def run_one(side: str) -> dict[str, float]:
        sides.append(side)
        true = 100.0 * (ratio if side == "cand" else 1.0)
        return {"ops": true * (1 + rng.uniform(-noise, noise))}

    return run_one, sides


POLICY = SequentialPolicy(repetitions=2, max_repetitions=6, threshold_pct=10)


def _seq(run_one):
    return run_sequential(run_one, primary="ops", workload="w", higher_is_better={"ops": True},
                          policy=POLICY)


def test_noisy_equal_schedulers_never_fail():
    # +-12% run-to-run noise (TCG on a shared host) and no real difference:
    # the old 2-run median rule failed some of these seeds.
    failures = 0
    for seed in range(300):
        run_one, _ = _fake_runs(1.0, 0.12, seed)
        failures += _seq(run_one).decision is Decision.REGRESSION
    assert failures == 0


def test_real_regression_is_caught_despite_the_noise():
    for seed in range(50):
        run_one, sides = _fake_runs(0.6, 0.12, seed)
        out = _seq(run_one)
        assert out.decision is Decision.REGRESSION, seed
        # Never past the maximum, and both sides always equally measured.
        assert sides.count("base") == sides.count("cand") <= 6
        assert out.result.repetitions == sides.count("cand")


def test_clear_pass_stops_after_the_first_round():
    run_one, sides = _fake_runs(1.2, 0.02, 1)
    assert _seq(run_one).decision is Decision.PASS and len(sides) == 4


def test_unclear_median_regression_gets_more_runs():
    values = itertools.cycle([100.0, 78.0, 80.0, 100.0, 101.0, 99.0, 100.0, 98.0])
    sides = []

    def run_one(side):
        sides.append(side)
        return {"ops": next(values)}

    out = _seq(run_one)
    assert len(sides) > 4  # 2 per side was not enough to decide
    assert out.result.repetitions == len(sides) // 2


# ------------------------------------------------------------- starvation judge


class _State:
    def __init__(self, enabled=True, ejected=False):
        self.enabled, self.ejected, self.exit = enabled, ejected, None


def _report(waits: dict[str, float], *, incomplete: tuple[str, ...] = ()) -> dict:
    return {"tasks": [{"name": n, "completed": n not in incomplete, "max_wait_s": w}
                      for n, w in waits.items()],
            "sched_ext_start": "enabled", "sched_ext_left_enabled": True}


LOADED_EEVDF = {"hog0": 1.5, "hog1": 1.9, "hog2": 1.2, "interactive": 0.8, "nice10": 2.4,
                "nice-5": 1.0, "bursty0": 0.9, "bursty1": 1.1}


def test_task_kinds():
    assert [task_kind(n) for n in ("hog0", "hog12", "bursty3", "nice10", "nice-5",
                                   "pinned_spin")] == [
        "hog", "hog", "bursty", "nice10", "nice-5", "pinned_spin"]
    base = suite_baseline(_report(LOADED_EEVDF))
    assert base["waits"]["hog"] == 1.9 and base["waits"]["nice10"] == 2.4


def test_waits_past_the_absolute_bound_but_like_eevdfs_pass():
    base = suite_baseline(_report(LOADED_EEVDF))
    cand = dict(LOADED_EEVDF, nice10=5.5, hog1=3.1)
    assert needs_baseline(_report(cand), _State(), max_wait_s=2.0)
    found = judge_suite(_report(cand), _State(), max_wait_s=2.0, baseline=base, wait_factor=3)
    assert {f.rule for f in found} == {"slow-host"}
    assert all(f.severity is Severity.WARNING for f in found)
    assert any("EEVDF's nice10 tasks waited 2.40 s" in f.message for f in found)


def test_a_task_far_past_eevdfs_wait_fails():
    base = suite_baseline(_report(LOADED_EEVDF))
    cand = dict(LOADED_EEVDF, nice10=9.0)
    found = judge_suite(_report(cand), _State(), max_wait_s=2.0, baseline=base, wait_factor=3)
    err = [f for f in found if f.severity is Severity.ERROR]
    assert [f.rule for f in err] == ["starvation"]
    assert "nice10 waited 9.00 s" in err[0].message and "bound 7.20 s" in err[0].message


def test_calibration_never_excuses_a_task_that_did_not_finish_or_an_ejection():
    base = suite_baseline(_report({n: 20.0 for n in LOADED_EEVDF}))
    rep = _report(dict(LOADED_EEVDF), incomplete=("nice10",))
    assert not needs_baseline(rep, _State(), max_wait_s=2.0)
    found = judge_suite(rep, _State(), max_wait_s=2.0, baseline=base)
    assert [f.rule for f in found if f.severity is Severity.ERROR] == ["starvation"]
    ejected = judge_suite(_report({"hog0": 0.1}), _State(False, True), max_wait_s=2.0,
                          baseline=base)
    assert "ejected" in {f.rule for f in ejected}


def test_uniformly_slow_candidate_fails_when_eevdf_was_quick():
    # Without a baseline uniform slowness reads as a slow host; EEVDF in the
    # same VM shows it is the policy (e.g. enormous slices).
    quick = suite_baseline(_report({n: 0.2 for n in LOADED_EEVDF}))
    cand = {n: 3.0 for n in LOADED_EEVDF}
    assert {f.rule for f in judge_suite(_report(cand), _State(), max_wait_s=2.0)} == {"slow-host"}
    found = judge_suite(_report(cand), _State(), max_wait_s=2.0, baseline=quick)
    assert {f.rule for f in found if f.severity is Severity.ERROR} == {"starvation"}


# ------------------------------------------------------------- DynamicStage with a fake node


class ScriptedNode:
    """Answers suite runs from per-scheduler scripts; records load/unload."""

    def __init__(self, cand_reports, eevdf_reports):
        self.cand = list(cand_reports)
        self.eevdf = list(eevdf_reports)
        self.loaded = True
        self.calls: list[str] = []

    def run(self, argv, *, timeout_s):
        assert "services.verifier.guest_suite" in argv
        self.calls.append("suite:" + ("cand" if self.loaded else "eevdf"))
        rep = (self.cand if self.loaded else self.eevdf).pop(0)

        class R:
            stdout = json.dumps(rep) + "\n"
            stderr = ""

        return R()

    def state(self, name=None):
        return _State()

    def unload(self, name):
        self.calls.append("unload")
        self.loaded = False

    def load(self, obj, **kw):
        self.calls.append("load")
        self.loaded = True


def _ctx(node, tmp_path):
    import contextlib

    ctx = VerifyContext(candidate=Candidate(source="x"), config_digest="c", workdir=tmp_path,
                        exit_stack=contextlib.ExitStack())
    ctx.node, ctx.loaded_name, ctx.object_path = node, "cand", Path("/x.o")
    return ctx


def test_quick_candidate_needs_no_eevdf_run(tmp_path):
    node = ScriptedNode([_report({n: 0.3 for n in LOADED_EEVDF})], [])
    DynamicStage(suite=SuiteConfig(max_wait_s=2.0)).run(_ctx(node, tmp_path))
    assert node.calls == ["suite:cand"]


def test_eevdf_is_measured_once_per_node_and_the_candidate_reloaded(tmp_path):
    slow = dict(LOADED_EEVDF, nice10=6.0)  # past 2 s, within 3 x 2.4 s
    node = ScriptedNode([_report(slow), _report(slow)], [_report(LOADED_EEVDF)])
    stage = DynamicStage(suite=SuiteConfig(max_wait_s=2.0, wait_factor=3.0))
    out = stage.run(_ctx(node, tmp_path))
    assert node.calls == ["suite:cand", "unload", "suite:eevdf", "load"]
    assert out.details["eevdf_baseline"]["waits"]["nice10"] == 2.4
    assert {f.rule for f in out.findings} == {"slow-host"}
    # A second candidate on the same VM reuses the measurement.
    stage.run(_ctx(node, tmp_path))
    assert node.calls[4:] == ["suite:cand"]


def test_a_one_off_wait_is_not_a_verdict_but_repeated_starvation_is(tmp_path):
    starving = dict(LOADED_EEVDF, nice10=12.0)
    fine = dict(LOADED_EEVDF)
    stage = DynamicStage(suite=SuiteConfig(max_wait_s=2.0, wait_factor=3.0))
    node = ScriptedNode([_report(starving), _report(fine)], [_report(LOADED_EEVDF)])
    out = stage.run(_ctx(node, tmp_path))
    assert "starvation-unconfirmed" in {f.rule for f in out.findings}
    assert node.calls[-1] == "suite:cand"  # the confirmation run

    node = ScriptedNode([_report(starving), _report(starving)], [_report(LOADED_EEVDF)])
    with pytest.raises(StageFailed) as exc:
        stage.run(_ctx(node, tmp_path))
    assert "starvation" in {f.rule for f in exc.value.findings}
    assert "suite_confirm" in exc.value.details


def test_without_calibration_the_absolute_bound_decides(tmp_path):
    starving = dict(LOADED_EEVDF, nice10=12.0)
    node = ScriptedNode([_report(starving)], [])
    with pytest.raises(StageFailed):
        DynamicStage(suite=SuiteConfig(max_wait_s=2.0, calibrate=False)).run(
            _ctx(node, tmp_path))
    assert node.calls == ["suite:cand"]


# ------------------------------------------------------------- wire form


def test_verdict_carries_the_sequential_test():
    out = _judge(CLEAR_BASE, CLEAR_CAND)
    rec = VerdictRecord(verdict_id="v", passed=False, stages=[], artifact_digest="a",
                        config_digest="c", config_json="{}", candidate_name="x",
                        performance=out.result)
    perf = verdict_to_proto(rec).performance
    assert perf.decision == "regression" and perf.repetitions == 5
    assert perf.max_repetitions == 6 and perf.p_value == pytest.approx(1 / 252)
    assert perf.metrics[0].baseline_spread == pytest.approx(4 / 101, abs=1e-3)
    again = VerdictRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again.performance.decision == "regression" and again.performance.max_repetitions == 6


# ------------------------------------------------------------- guest suite measures


def test_a_task_starved_before_its_first_iteration_reports_that_wait():
    """A task queued behind the hogs until they exit then runs undisturbed; its
    wait must include the time from its fork to its first iteration."""
    import time

    from services.verifier import guest_suite

    forked_3s_ago = time.monotonic() - 3.0
    for fn in (guest_suite._spinner, guest_suite._sleeper, guest_suite._bursty):
        out = fn(0.02, forked_3s_ago)
        assert out["start_delay_s"] >= 3.0 and out["max_wait_s"] >= 3.0, fn.__name__
    assert guest_suite._spinner(0.02, time.monotonic())["max_wait_s"] < 1.0


# ------------------------------------------------------------ host pressure


def test_host_cpu_stall_is_read_from_psi(tmp_path):
    psi = tmp_path / "cpu"
    psi.write_text("some avg10=8.24 avg60=8.83 avg300=15.86 total=12726081945\n"
                   "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert host_cpu_stall_us(str(psi)) == 12726081945.0
    assert host_cpu_stall_us(str(tmp_path / "missing")) is None
    psi.write_text("garbage\n")
    assert host_cpu_stall_us(str(psi)) is None


def test_pressure_share_is_a_fraction_of_the_wall_time_or_unknown():
    assert pressure_share(1_000_000, 3_000_000, 4.0) == pytest.approx(0.5)
    assert pressure_share(0, 9e9, 1.0) == 1.0  # clamped
    assert pressure_share(None, 5.0, 1.0) == -1.0 and pressure_share(5.0, None, 1.0) == -1.0
    assert pressure_share(5.0, 4.0, 1.0) == -1.0  # counter went back: not trusted


def test_a_regression_on_a_busy_host_says_so_and_keeps_its_decision():
    quiet = _judge(CLEAR_BASE, CLEAR_CAND)
    busy = judge_performance({"ops": CLEAR_BASE}, {"ops": CLEAR_CAND}, primary="ops", workload="w",
                             higher_is_better={"ops": True}, policy=POLICY, host_pressure=0.6)
    assert busy.decision is quiet.decision is Decision.REGRESSION
    err = next(f for f in busy.findings if f.severity is Severity.ERROR)
    assert "host CPU pressure during the A/B 60%" in err.message
    assert "quieter host" in err.hint and busy.result.host_cpu_pressure == 0.6
    quiet_err = next(f for f in quiet.findings if f.severity is Severity.ERROR)
    assert "quieter host" not in quiet_err.hint and quiet.result.host_cpu_pressure == -1.0


def test_the_sequential_test_measures_host_pressure_over_its_runs():
    stalls = iter([0.0, 2e9, 2e9, 2e9])  # 2 s of waiting by the first judgement
    run_one, _ = _fake_runs(1.2, 0.02, 1)
    out = run_sequential(run_one, primary="ops", workload="w", higher_is_better={"ops": True},
                         policy=POLICY, pressure=lambda: next(stalls))
    assert out.decision is Decision.PASS and 0 < out.result.host_cpu_pressure <= 1


class _Host:
    """A fake host: PSI stall counter and clock that advance with each run."""

    def __init__(self, busy_runs: int) -> None:
        self.t, self.stall, self.runs, self.busy_runs = 0.0, 0.0, 0, busy_runs
        self.slept = 0.0

    def run(self, seconds: float = 3.0) -> None:
        busy = self.runs < self.busy_runs
        self.runs += 1
        self.t += seconds
        self.stall += seconds * 1e6 * (0.8 if busy else 0.05)

    def sleep(self, s: float) -> None:
        self.t += s
        self.slept += s
        self.stall += s * 1e6 * (0.8 if self.runs < self.busy_runs else 0.05)


def _host_runs(host: _Host, cand_when_busy: float, cand_when_calm: float):
    def run_one(side: str) -> dict[str, float]:
        busy = host.runs < host.busy_runs
        host.run()
        if side == "base":
            return {"ops": 100.0 + host.runs % 3}
        return {"ops": (cand_when_busy if busy else cand_when_calm) + host.runs % 3}
    return run_one


def _seq_on(host: _Host, run_one, policy=POLICY):
    return run_sequential(run_one, primary="ops", workload="w", higher_is_better={"ops": True},
                          policy=policy, pressure=lambda: host.stall, sleep=host.sleep,
                          clock=lambda: host.t)


def test_a_regression_seen_only_while_the_host_was_busy_is_remeasured_and_passes():
    host = _Host(busy_runs=12)  # the first A/B (6 a side) runs on a busy host
    out = _seq_on(host, _host_runs(host, cand_when_busy=50.0, cand_when_calm=101.0))
    assert out.decision is Decision.PASS
    assert out.findings[0].rule == "performance-remeasured"
    assert "0.50x EEVDF" in out.findings[0].message and "80%" in out.findings[0].message
    assert "calmed" in out.findings[0].message and out.result.host_cpu_pressure < 0.25


def test_a_real_regression_fails_on_the_second_look_too():
    host = _Host(busy_runs=12)
    out = _seq_on(host, _host_runs(host, cand_when_busy=50.0, cand_when_calm=50.0))
    assert out.decision is Decision.REGRESSION
    assert [f.rule for f in out.findings][:1] == ["performance-remeasured"]


def test_a_regression_on_a_quiet_host_is_not_remeasured():
    host = _Host(busy_runs=0)
    out = _seq_on(host, _host_runs(host, cand_when_busy=50.0, cand_when_calm=50.0))
    assert out.decision is Decision.REGRESSION and host.slept == 0 and host.runs == 12
    assert all(f.rule != "performance-remeasured" for f in out.findings)


def test_no_second_look_when_disabled():
    host = _Host(busy_runs=100)
    policy = SequentialPolicy(repetitions=2, max_repetitions=6, threshold_pct=10, calm_wait_s=0)
    out = _seq_on(host, _host_runs(host, cand_when_busy=50.0, cand_when_calm=101.0), policy)
    assert out.decision is Decision.REGRESSION and host.runs == 12


def test_wait_for_calm_gives_up_at_its_limit():
    host = _Host(busy_runs=10**6)
    waited, share = wait_for_calm(lambda: host.stall, limit_s=30, sleep=host.sleep,
                                  clock=lambda: host.t)
    assert waited == pytest.approx(30) and share == pytest.approx(0.8)


# ------------------------------------------------- leftovers on a reused node


class _BusyNode:
    """A node an earlier candidate left ``left`` loaded on; unload works
    unless ``stuck``; the kernel needs ``disabling_polls`` polls to finish."""

    def __init__(self, left: str, *, stuck: bool = False, disabling_polls: int = 2) -> None:
        from types import SimpleNamespace

        self._ns = SimpleNamespace
        self.left, self.stuck, self.polls = left, stuck, disabling_polls
        self.state_name = "enabled"
        self.loads: list[str] = []

    def state(self, name=None):
        if self.state_name == "disabling":
            self.polls -= 1
            if self.polls <= 0:
                self.state_name = "disabled"
        return self._ns(sched_ext_state=self.state_name,
                        root_ops=self.left if self.state_name != "disabled" else "")

    def unload(self, name):
        if not self.stuck:
            self.state_name = "disabling"

    def load(self, path, **kw):
        from schedcp.substrate.loader import SchedulerBusy

        if self.state_name != "disabled":
            raise SchedulerBusy(f"sched_ext is {self.state_name} with scheduler {self.left!r}")
        self.loads.append(str(path))
        return self._ns(name="cand", libbpf_log="", load_ms=1.0, total_ms=2.0)


def _kv_ctx(node):
    import contextlib
    from pathlib import Path

    from services.verifier.stages import KernelVerifierStage

    stage = KernelVerifierStage(nodes=lambda: contextlib.nullcontext(node), leftover_settle_s=0.2)
    ctx = VerifyContext(candidate=Candidate(source="", name="cand"), config_digest="c",
                        workdir=Path("/tmp"), exit_stack=contextlib.ExitStack())
    ctx.object_path = Path("/tmp/cand.bpf.o")
    return stage, ctx


def test_a_leftover_scheduler_on_a_reused_node_is_cleared_before_loading():
    node = _BusyNode("las")
    stage, ctx = _kv_ctx(node)
    try:
        out = stage.run(ctx)
    finally:
        ctx.exit_stack.close()
    assert out.details["ops_name"] == "cand" and node.loads == ["/tmp/cand.bpf.o"]


def test_a_leftover_that_will_not_unload_is_not_blamed_on_the_candidate():
    from schedcp.substrate.loader import SchedulerBusy

    node = _BusyNode("las", stuck=True)
    stage, ctx = _kv_ctx(node)
    with pytest.raises(SchedulerBusy) as ei:
        stage.run(ctx)
    ctx.exit_stack.close()
    assert "still runs 'las' from an earlier candidate" in ei.value.message
    assert "not the candidate's fault" in ei.value.hint and node.loads == []
