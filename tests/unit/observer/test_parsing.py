"""Parsers of /proc and /sys files (contents given as strings)."""

import pytest

from services.observer.tier1 import (
    cgroup2_mount,
    parse_cpu_stat,
    parse_ctxt,
    parse_meminfo,
    parse_proc_stat,
    parse_psi,
    parse_schedstat,
    parse_stat,
    percentile,
)

STAT = ("4242 (evil) (comm x) S 1 4242 4242 0 -1 4194560 100 0 0 0 "
        "150 30 7 3 20 0 3 0 123456 1000000 200 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 9 0 0")


def test_stat_with_parentheses_and_spaces_in_comm() -> None:
    st = parse_stat(STAT)
    assert st.pid == 4242 and st.comm == "evil) (comm x"
    assert (st.state, st.ppid, st.pgrp) == ("S", 1, 4242)
    assert (st.utime, st.stime, st.cutime, st.cstime) == (150, 30, 7, 3)
    assert st.num_threads == 3 and st.starttime == 123456 and st.blkio_ticks == 9


def test_stat_garbage_raises_value_error() -> None:
    with pytest.raises(ValueError):
        parse_stat("not a stat line")


def test_schedstat_and_ctxt() -> None:
    assert parse_schedstat("1000 2000 3\n") == (1000, 2000, 3)
    status = "Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t5\n"
    assert parse_ctxt(status) == (12, 5)


def test_psi() -> None:
    text = ("some avg10=1.50 avg60=0.20 avg300=0.00 total=12345\n"
            "full avg10=0.10 avg60=0.00 avg300=0.00 total=99\n")
    psi = parse_psi(text)
    assert psi["some_avg10"] == 1.5 and psi["full_total_us"] == 99


def test_proc_stat_meminfo_cpu_stat() -> None:
    ps = parse_proc_stat("cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 1 1 1 1 1 1 1\nctxt 77\nprocesses 88\nprocs_running 2\n")
    assert ps.cpu_ticks == (1, 2, 3, 4, 5, 6, 7, 8) and (ps.ctxt, ps.processes, ps.procs_running) == (77, 88, 2)
    assert parse_meminfo("MemTotal:  100 kB\nMemAvailable: 40 kB\n") == {"MemTotal": 100, "MemAvailable": 40}
    assert parse_cpu_stat("usage_usec 10\nuser_usec 4\n") == {"usage_usec": 10, "user_usec": 4}


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 100.0], 0.99) == 100.0


def test_cgroup2_mount_from_mountinfo() -> None:
    mi = ("30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
          "35 25 0:31 / /sys/fs/cgroup/unified rw,relatime shared:14 - cgroup2 cgroup2 rw\n")
    assert str(cgroup2_mount(mi)) == "/sys/fs/cgroup/unified"
    assert str(cgroup2_mount("")) == "/sys/fs/cgroup"
