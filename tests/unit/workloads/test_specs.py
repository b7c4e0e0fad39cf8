"""Workload specs, parameter checking and result parsing (no processes run)."""

import json

import pytest

from schedcp.errors import InvalidArgument, NotFound
from schedcp.v1 import common_pb2
from schedcp.workloads import (
    WORKLOADS,
    WorkloadError,
    get_workload,
    parse_result,
    workload_command,
    workloads_for_class,
)
from schedcp.workloads.library import batch_tasks, build_dag, build_programs


def test_every_class_the_issue_names_has_a_workload():
    for cls in ("LATENCY_SERVER", "PARALLEL_BUILD", "BATCH_LONG_TAIL", "INTERACTIVE_BACKGROUND",
                "CPU_THROUGHPUT"):
        assert workloads_for_class(cls), cls


def test_specs_map_to_the_proto_enum():
    for spec in WORKLOADS.values():
        assert common_pb2.WorkloadClass.Name(spec.workload_class_proto) == spec.workload_class
        assert spec.metric(spec.primary_metric).name == spec.primary_metric


def test_latency_metrics_are_lower_is_better_and_rates_higher():
    server = get_workload("wakeup-server")
    assert server.metric("requests_per_s").higher_is_better
    assert not server.metric("wakeup_p99_us").higher_is_better
    assert not get_workload("batch-long-tail").metric("makespan_s").higher_is_better


def test_unknown_workload_lists_the_known_ones():
    with pytest.raises(NotFound) as err:
        get_workload("nope")
    assert "wakeup-server" in str(err.value)


def test_params_are_checked():
    spec = get_workload("batch-long-tail")
    assert spec.resolve_params({"short_tasks": "7"})["short_tasks"] == 7
    with pytest.raises(InvalidArgument, match="no parameter"):
        spec.resolve_params({"bogus": 1})
    with pytest.raises(InvalidArgument, match="integer"):
        spec.resolve_params({"short_tasks": "many"})
    with pytest.raises(InvalidArgument, match="outside"):
        spec.resolve_params({"waves": 0})


def test_command_carries_every_parameter():
    argv = workload_command("parallel-build", {"units": 3}, python="/usr/bin/python3")
    assert argv[:2] == ["/usr/bin/python3", "-S"]
    assert argv[4:6] == ["run", "parallel-build"]
    assert "units=3" in argv and "jobs=4" in argv and "--cache-dir" in argv


def test_parse_result_takes_the_last_json_line_and_checks_metrics():
    spec = get_workload("batch-long-tail")
    doc = {"workload": "batch-long-tail", "params": {"waves": 1}, "elapsed_s": 1.5,
           "metrics": {"makespan_s": 2.0, "mean_completion_s": 1.0}, "extra": {"x": 3}}
    text = "booting...\n{not json}\n" + json.dumps(doc) + "\n"
    result = parse_result(text, spec)
    assert result.metrics == {"makespan_s": 2.0, "mean_completion_s": 1.0}
    assert result.extra == {"x": 3.0}
    with pytest.raises(WorkloadError, match="lacks"):
        parse_result(json.dumps({"metrics": {"makespan_s": 1.0}}), spec)
    with pytest.raises(WorkloadError, match="no result"):
        parse_result("Segmentation fault\n", spec)
    with pytest.raises(WorkloadError, match="non-finite"):
        parse_result(json.dumps({"metrics": {"makespan_s": float("nan"), "mean_completion_s": 1}}), spec)


def test_build_dag_is_a_dag_with_serial_head_and_tail():
    params = get_workload("parallel-build").resolve_params({"units": 10, "libraries": 3})
    jobs = build_dag(params)
    assert len(jobs) == params["configure_steps"] + 10 + 3 + 1
    for i, (size, deps) in enumerate(jobs):
        assert size >= 1
        assert all(d < i for d in deps)  # dependencies always come earlier
    assert len(jobs[-1][1]) == 3  # final link over every library
    assert build_dag(params) == jobs  # seeded: same graph every run
    programs = build_programs(params)
    assert len(programs) == len(jobs)
    # configure steps, compiles, one archive per library, the final link:
    # the deps tell the kinds apart, so the names must follow them.
    assert programs[-1] == "ld" and programs.count("ar") == 3 and programs.count("cc1") == 10
    for (_, deps), program in zip(jobs, programs, strict=True):
        if program == "ar":
            assert all(programs[d] == "cc1" for d in deps)
        if program == "cc1":
            assert all(programs[d] == "configure" for d in deps)


def test_batch_tasks_mix_short_and_long():
    params = get_workload("batch-long-tail").resolve_params({"short_tasks": 5, "long_tasks": 2})
    sizes = batch_tasks(params)
    assert sorted(sizes) == [params["short_kiter"]] * 5 + [params["long_kiter"]] * 2


def test_size_hints_go_to_the_scheduler_map_in_one_bpftool_batch(tmp_path, monkeypatch):
    from schedcp.workloads.library import HINT_MAP, _publish_size_hints

    seen = tmp_path / "seen.txt"
    fake = tmp_path / "bpftool"
    fake.write_text(f'#!/bin/sh\necho "$@" > {seen}\ncat "$3" >> {seen}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert _publish_size_hints({1234: 480000, 7: 20000}) == 2
    argv, *lines = seen.read_text().splitlines()
    assert argv.startswith("batch file ")
    # tgid as little-endian u32, expected ms (kiter / 1000) as little-endian u64
    assert lines == [f"map update name {HINT_MAP} key 0xd2 0x04 0x00 0x00 value 0xe0 0x01 " + "0x00 " * 5 + "0x00",
                     f"map update name {HINT_MAP} key 0x07 0x00 0x00 0x00 value 0x14 " + "0x00 " * 6 + "0x00"]


def test_no_scheduler_map_means_no_hints_not_an_error(tmp_path, monkeypatch):
    from schedcp.workloads.library import _publish_size_hints

    fake = tmp_path / "bpftool"
    fake.write_text("#!/bin/sh\necho 'Error: map not found' >&2\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert _publish_size_hints({1234: 480000}) == 0
