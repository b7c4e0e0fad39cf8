"""Pipeline orchestration with fake stages (pure logic): order, skipping, cache."""

from __future__ import annotations

from services.verifier.domain import Candidate, Finding, Severity, StageStatus
from services.verifier.dynamic import Decision, SequentialPolicy, compare_metrics, judge_performance
from services.verifier.pipeline import (
    StageFailed,
    StageOutcome,
    VerdictCache,
    VerificationPipeline,
)
from services.verifier.stages import judge_suite


class FakeStage:
    def __init__(self, name, *, fail=False, crash=False, findings=()):
        self.name, self.fail, self.crash, self.findings = name, fail, crash, list(findings)
        self.calls = 0

    def run(self, ctx):
        self.calls += 1
        if self.name == "build":
            ctx.artifact_digest = "sha256:" + "a" * 64
        if self.crash:
            raise RuntimeError("vm died")
        if self.fail:
            raise StageFailed([Finding(Severity.ERROR, "x", "bad", 3)], "log")
        return StageOutcome(findings=self.findings)


def _pipe(tmp_path, **over):
    stages = {n: over.get(n, FakeStage(n)) for n in ("build", "static", "kernel_verifier", "dynamic")}
    return VerificationPipeline(stages=stages, cache=VerdictCache(tmp_path / "c"),
                                workdir=tmp_path / "w"), stages


def test_all_pass(tmp_path):
    p, _ = _pipe(tmp_path)
    seen = []
    rec = p.verify(Candidate(source="x"), progress=seen.append)
    assert rec.passed
    assert [s.name for s in rec.stages] == ["build", "static", "kernel_verifier", "dynamic"]
    assert all(s.status is StageStatus.PASSED for s in rec.stages)
    assert [s.status for s in seen].count(StageStatus.RUNNING) == 4


def test_stages_after_failure_are_skipped(tmp_path):
    p, stages = _pipe(tmp_path, static=FakeStage("static", fail=True))
    rec = p.verify(Candidate(source="x"))
    st = {s.name: s.status for s in rec.stages}
    assert st == {"build": StageStatus.PASSED, "static": StageStatus.FAILED,
                  "kernel_verifier": StageStatus.SKIPPED, "dynamic": StageStatus.SKIPPED}
    assert not rec.passed and stages["kernel_verifier"].calls == 0
    d = rec.to_dict()
    assert d["verdict"] == "fail"
    assert [s["passed"] for s in d["stages"]] == [True, False, False, False]


def test_warnings_do_not_fail(tmp_path):
    p, _ = _pipe(tmp_path, static=FakeStage("static", findings=[
        Finding(Severity.WARNING, "w", "meh")]))
    assert p.verify(Candidate(source="x")).passed


def test_crash_is_internal_and_not_cached(tmp_path):
    p, stages = _pipe(tmp_path, dynamic=FakeStage("dynamic", crash=True))
    rec = p.verify(Candidate(source="x"))
    assert not rec.passed and rec.internal_error
    assert rec.stages[-1].findings[0].rule == "internal-error"
    p.verify(Candidate(source="x"))
    assert stages["dynamic"].calls == 2  # not served from cache


def test_cache_hit_skips_later_stages(tmp_path):
    p, stages = _pipe(tmp_path)
    first = p.verify(Candidate(source="x", tunables={"a": 1}))
    second = p.verify(Candidate(source="x", tunables={"a": 1}))
    assert second.cached and second.verdict_id == first.verdict_id
    assert stages["static"].calls == 1 and stages["build"].calls == 2
    seen = []
    p.verify(Candidate(source="x", tunables={"a": 1}), progress=seen.append)
    # Progress: this build (running, done), then the cached later stages once each.
    assert [s.name for s in seen if s.status is not StageStatus.RUNNING] == [
        "build", "static", "kernel_verifier", "dynamic"]
    third = p.verify(Candidate(source="x", tunables={"a": 2}))  # other config digest
    assert not third.cached and stages["static"].calls == 2
    assert p.cache.by_id(first.verdict_id).passed


def test_cache_hit_is_visible_in_the_cli_json_and_the_verdict_message(tmp_path):
    from services.verifier.convert import verdict_to_proto

    p, _ = _pipe(tmp_path)
    p.verify(Candidate(source="x"))
    hit = p.verify(Candidate(source="x"))
    assert hit.to_dict()["cached"] is True  # what `schedcp verify --json` prints
    assert verdict_to_proto(hit).cached  # what Verify (gRPC) and the bus carry
    assert not verdict_to_proto(p.verify(Candidate(source="x"), use_cache=False)).cached


def test_cache_is_keyed_by_the_judge_too(tmp_path):
    """Same artifact and config under other bounds is verified again, not served."""
    p, stages = _pipe(tmp_path)
    p.cache = VerdictCache(tmp_path / "c", judge_digest="sha256:one")
    first = p.verify(Candidate(source="x"))
    assert p.verify(Candidate(source="x")).cached
    p.cache = VerdictCache(tmp_path / "c", judge_digest="sha256:two")
    again = p.verify(Candidate(source="x"))
    assert not again.cached and again.verdict_id != first.verdict_id
    assert stages["dynamic"].calls == 2


class _State:
    def __init__(self, enabled=True, ejected=False):
        self.enabled, self.ejected, self.exit = enabled, ejected, None


def test_judge_suite_starvation_and_ejection():
    report = {"tasks": [{"name": f"hog{i}", "completed": True, "max_wait_s": 0.1}
                        for i in range(4)] + [
                        {"name": "hog9", "completed": True, "max_wait_s": 0.1},
                        {"name": "nice10", "completed": False, "max_wait_s": 17.0},
                        {"name": "pinned", "completed": True, "max_wait_s": 3.0}],
              "sched_ext_left_enabled": True}
    rules = [f.rule for f in judge_suite(report, _State(), max_wait_s=2.0)]
    assert rules == ["starvation", "starvation"]
    rules = [f.rule for f in judge_suite({"tasks": []}, _State(False, True), max_wait_s=2.0)]
    assert rules == ["ejected"]
    assert judge_suite({"tasks": [{"name": "a", "completed": True, "max_wait_s": 0.5}]},
                       _State(), max_wait_s=2.0) == []


def test_performance_judgement():
    m = compare_metrics({"lat": [10.0, 12.0], "ops": [100.0, 100.0]},
                        {"lat": [8.0, 8.0], "ops": [80.0, 84.0]},
                        higher_is_better={"lat": False, "ops": True})
    by = {x.metric: x for x in m}
    assert abs(by["lat"].ratio - 11 / 8) < 1e-9 and abs(by["ops"].ratio - 0.82) < 1e-9
    assert abs(by["lat"].baseline_spread - 2 / 11) < 1e-9 and by["lat"].spread == 0.0
    policy = SequentialPolicy(repetitions=2, max_repetitions=2, threshold_pct=10)
    ok = judge_performance({"lat": [10.0, 12.0]}, {"lat": [8.0, 8.0]}, primary="lat",
                           workload="w", higher_is_better={"lat": False}, policy=policy)
    assert ok.decision is Decision.PASS and ok.result.score > 1
    assert all(f.severity is Severity.INFO for f in ok.findings)
def test_parse_suite_output_takes_last_json_report():
    from services.verifier.stages import parse_suite_output

    out = 'noise\n{"tasks": [{"name": "a"}], "cpus": 2}\n'
    assert parse_suite_output(out)["cpus"] == 2
    broken = parse_suite_output("Traceback ...\n")
    assert broken["tasks"] == [] and "error" in broken
    # The judge turns a missing report into a failure, never a silent pass.
    assert [f.rule for f in judge_suite(broken, _State(), max_wait_s=2)] == ["suite-error"]


def test_judge_tells_selective_starvation_from_a_slow_host():
    def rep(waits):
        return {"tasks": [{"name": f"t{i}", "completed": True, "max_wait_s": w}
                          for i, w in enumerate(waits)]}

    # One task far behind the rest: starvation.
    assert [f.rule for f in judge_suite(rep([0.3] * 9 + [5.0]), _State(), max_wait_s=2)] == [
        "starvation"]
    # Everyone slow alike (host overload): a warning, not a verdict.
    slow = judge_suite(rep([1.8, 2.2, 2.1, 1.9, 2.4]), _State(), max_wait_s=2)
    assert {f.rule for f in slow} == {"slow-host"}
    assert all(f.severity is Severity.WARNING for f in slow)
    # Everyone waiting for many seconds is a policy failure whatever the host.
    assert "starvation" in {f.rule for f in judge_suite(rep([9.0] * 6), _State(), max_wait_s=2)}
    # Fork-cost measures are judged on completion only.
    fork = {"tasks": [{"name": "spawn", "completed": True, "max_wait_s": 0.0, "judged": False,
                       "spawn_worst_s": 4.0}]}
    assert judge_suite(fork, _State(), max_wait_s=2) == []


def test_watchdog_stall_counts_as_starvation():
    class _Exit:
        kernel_log: list = []

        def summary(self):
            return "runnable task stall"

    st = _State(enabled=False, ejected=True)
    st.exit = _Exit()
    rules = [f.rule for f in judge_suite({"tasks": []}, st, max_wait_s=2)]
    assert rules == ["starvation", "ejected"]
