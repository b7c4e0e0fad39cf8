"""TriggerEngine: confirmation of new workloads and hysteresis of phase changes."""

from schedcp.v1 import common_pb2, profile_pb2
from services.observer.triggers import TriggerConfig, TriggerEngine, feature_distance

WC = common_pb2.WorkloadClass


def prof(util: float, vol: float = 0.0, klass: int = WC.CPU_THROUGHPUT) -> profile_pb2.WorkloadProfile:
    return profile_pb2.WorkloadProfile(workload_class=klass, features=profile_pb2.WorkloadFeatures(
        cpu_utilization=util, voluntary_ctx_switches_per_s=vol))


def test_new_workload_needs_consecutive_busy_scans() -> None:
    e = TriggerEngine(TriggerConfig(cpu_threshold=0.5, confirm_scans=2))
    assert e.on_scan(0.0, {"a": 0.0, "b": 0.0}) == []
    assert e.on_scan(1.0, {"a": 0.9, "b": 0.1}) == []  # a busy once
    assert e.on_scan(2.0, {"a": 1.8, "b": 0.2}) == ["a"]  # a busy twice; b idle
    e.start_tracking("a", prof(0.9), 2.0)
    assert e.on_scan(3.0, {"a": 2.7, "b": 0.3}) == []  # already tracked


def test_vanished_candidates_are_forgotten() -> None:
    e = TriggerEngine(TriggerConfig(confirm_scans=1))
    e.on_scan(0.0, {"a": 0.0})
    e.on_scan(1.0, {"a": 1.0})
    e.start_tracking("a", prof(1.0), 1.0)
    e.on_scan(2.0, {})
    assert "a" not in e.candidates and "a" not in e.tracked


def test_phase_change_with_hysteresis() -> None:
    e = TriggerEngine(TriggerConfig(enter_distance=0.5, exit_distance=0.25, confirm_changes=2))
    e.start_tracking("w", prof(1.0), 0.0)
    assert not e.on_profile("w", prof(0.3), 1.0)  # first shift: not yet
    assert not e.on_profile("w", prof(0.65), 2.0)  # in the dead band: streak kept
    assert e.on_profile("w", prof(0.3), 3.0)  # second shift: phase change
    assert not e.on_profile("w", prof(0.32), 4.0)  # new reference: no change


def test_brief_blip_does_not_trigger() -> None:
    e = TriggerEngine(TriggerConfig(confirm_changes=2))
    e.start_tracking("w", prof(1.0), 0.0)
    assert not e.on_profile("w", prof(0.1), 1.0)
    assert not e.on_profile("w", prof(1.0), 2.0)  # back to normal: streak reset
    assert not e.on_profile("w", prof(0.1), 3.0)


def test_distance_class_change_is_maximal() -> None:
    a, b = prof(1.0), prof(1.0, klass=WC.LATENCY_SERVER)
    assert feature_distance(a.features, b.features, a.workload_class, b.workload_class) == 1.0
    assert feature_distance(a.features, a.features) == 0.0
