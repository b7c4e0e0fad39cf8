"""Pure parts of the loader: exit-info layout, kernel log parsing, rejection summaries."""

import struct

from schedcp.substrate.loader import (
    EXIT_INFO_SIZE,
    ExitInfo,
    _rejection_summary,
    can_load_struct_ops,
    disable_reason_from_log,
    effective_capabilities,
)


def _exit_bytes(kind: int, code: int, reason: bytes, msg: bytes) -> bytes:
    raw = struct.pack("<iIq", kind, 1, code) + reason.ljust(128, b"\0") + msg.ljust(1024, b"\0")
    assert len(raw) == EXIT_INFO_SIZE
    return raw


def test_exit_info_matches_the_bpf_struct_layout() -> None:
    ei = ExitInfo.from_bytes(_exit_bytes(1026, 0, b"runnable task stall",
                                         b"stallme\n[126] failed to run for 2.252s"))
    assert ei.kind == 1026 and ei.kind_name == "runnable task stall" and ei.recorded
    assert ei.summary() == "runnable task stall: stallme\n[126] failed to run for 2.252s"
    unreg = ExitInfo.from_bytes(_exit_bytes(64, -3, b"unregistered from user space", b""))
    assert unreg.exit_code == -3 and unreg.summary() == "unregistered from user space"


def test_disable_reason_takes_the_last_line_for_that_scheduler() -> None:
    lines = ['sched_ext: BPF scheduler "fifo" enabled',
             'sched_ext: BPF scheduler "fifo" disabled (unregistered from user space)',
             'sched_ext: BPF scheduler "stall" disabled (runnable task stall)',
             'sched_ext: BPF scheduler "fifo" disabled (runtime error)']
    assert disable_reason_from_log(lines, "fifo") == "runtime error"
    assert disable_reason_from_log(lines, "stall") == "runnable task stall"
    assert disable_reason_from_log(lines, "other") is None


def test_rejection_summary_picks_the_verifier_complaint() -> None:
    log = ("libbpf: prog 'x': BPF program load failed: Permission denied\n"
           "libbpf: prog 'x': -- BEGIN PROG LOAD LOG --\n"
           "8: (85) call bpf_map_lookup_elem#1    ; R0=map_value_or_null(id=1)\n"
           "9: (79) r1 = *(u64 *)(r0 +0)\n"
           "R0 invalid mem access 'map_value_or_null'\n"
           "-- END PROG LOAD LOG --\n")
    assert _rejection_summary(log, 13) == "R0 invalid mem access 'map_value_or_null'"
    missing = "libbpf: extern (func ksym) 'scx_bpf_dispatch': not found in kernel or module BTFs\n"
    assert "not found in kernel" in _rejection_summary(missing, 22)
    assert _rejection_summary("", 13) == "Permission denied"


def test_privilege_check_follows_the_measured_capability_set() -> None:
    bit = lambda n: 1 << n  # noqa: E731
    assert can_load_struct_ops(bit(39) | bit(38))          # CAP_BPF + CAP_PERFMON
    assert can_load_struct_ops(bit(21))                    # CAP_SYS_ADMIN alone
    assert not can_load_struct_ops(bit(39))                # CAP_BPF alone is not enough
    assert not can_load_struct_ops(0)
    root = "Name:\tx\nCapEff:\t000001ffffffffff\n"
    assert effective_capabilities(root) == 0x1FFFFFFFFFF and can_load_struct_ops(0x1FFFFFFFFFF)
    assert effective_capabilities("no caps line") == 0
