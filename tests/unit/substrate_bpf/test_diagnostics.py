"""Clang diagnostics -> structured (file, line, column, severity, message)."""

from schedcp.substrate.build import Diagnostic, parse_diagnostics

CLANG_STDERR = """\
In file included from cand.bpf.c:3:
include/schedcp/common.bpf.h:10:8: warning: '/*' within block comment [-Wcomment]
   10 |  * <bpf/*.h> themselves first
      |        ^
cand.bpf.c:12:9: error: use of undeclared identifier 'slice_ns'
   12 |         return slice_ns;
      |                ^
cand.bpf.c:20:3: note: previous definition is here
cand.bpf.c:31:1: fatal error: 'missing.h' file not found
clang-19: error: unknown argument: '-fbogus'
2 errors generated.
"""


def test_parses_located_diagnostics_in_order() -> None:
    diags = parse_diagnostics(CLANG_STDERR)
    assert diags[0] == Diagnostic("include/schedcp/common.bpf.h", 10, 8, "warning",
                                  "'/*' within block comment [-Wcomment]")
    assert diags[1] == Diagnostic("cand.bpf.c", 12, 9, "error",
                                  "use of undeclared identifier 'slice_ns'")
    assert diags[2].severity == "note" and diags[2].line == 20
    assert diags[3] == Diagnostic("cand.bpf.c", 31, 1, "fatal error", "'missing.h' file not found")


def test_unlocated_driver_errors_are_kept_and_snippets_dropped() -> None:
    diags = parse_diagnostics(CLANG_STDERR)
    assert diags[-1] == Diagnostic("", 0, 0, "error", "unknown argument: '-fbogus'")
    # caret lines, "In file included from" and the summary line are not diagnostics
    assert len(diags) == 5
    assert all("generated" not in d.message for d in diags)


def test_str_is_compiler_style() -> None:
    d = Diagnostic("a.bpf.c", 1, 2, "error", "boom")
    assert str(d) == "a.bpf.c:1:2: error: boom"
    assert d.to_dict()["column"] == 2


def test_empty_stderr_has_no_diagnostics() -> None:
    assert parse_diagnostics("") == []
