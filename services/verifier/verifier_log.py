"""Summarise a kernel eBPF verifier log into the failing instruction and reason.

A rejection log is hundreds of lines of register states. An agent needs four
facts: which program, which instruction (index + disassembly), the kernel's
reason, and the source line (the log carries BTF line info as
``; <source text> @ file.bpf.c:LINE`` comments before the instructions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.verifier.domain import Finding, Severity

_INSN = re.compile(r"^(?P<idx>\d+): \((?P<op>[0-9a-f]{2})\) (?P<text>.*?)(?:\s+; .*)?$")
_SRC = re.compile(r"^; (?P<text>.*?)(?: @ (?P<file>[^:\s]+):(?P<line>\d+))?$")
_STATE = re.compile(r"^(?:\d+: )?(?:frame\d+: )?R\d+(?:_\w)?=|^\d+: R\d|^from \d+ to \d+:|^mark_precise|"
                    r"^last_idx|^\s*$|^regs=|^parent |^func#|^caller:|^callee:|^Live regs|"
                    r"^Global function|^Func#|^\d+: \(")
_PROG = re.compile(r"prog '(?P<name>[^']+)': (?:BPF program load failed|-- BEGIN PROG LOAD LOG --)")
_EXTERN = re.compile(r"extern \((?:func|var) ksym\) '(?P<sym>[^']+)': not found in kernel")
_FAIL_MARKERS = ("processed ", "-- END PROG LOAD LOG --", "verification time")


@dataclass(frozen=True)
class VerifierSummary:
    """The gist of one rejection."""

    reason: str
    program: str = ""
    insn: int | None = None
    instruction: str = ""
    source_line: int = 0
    source_text: str = ""
    source_file: str = ""
    #: The kernel's own advice, printed after the reason by newer kernels.
    explanation: str = ""

    def message(self) -> str:
        parts = [f"kernel verifier rejected{f' {self.program}' if self.program else ''}: "
                 f"{self.reason}"]
        if self.insn is not None:
            parts.append(f" at insn {self.insn} `{self.instruction}`")
        if self.source_text:
            parts.append(f" (source: `{self.source_text}`)")
        return "".join(parts)

    def to_finding(self) -> Finding:
        hint = _hint_for(self.reason)
        if self.explanation:
            hint = f"{self.explanation} ({hint})"
        return Finding(Severity.ERROR, "verifier-reject", self.message(), self.source_line,
                       hint, self.source_file)


_HINTS = (
    (r"map_value_or_null|_or_null", "check the pointer for NULL before dereferencing it "
     "(e.g. after bpf_map_lookup_elem / bpf_task_storage_get)"),
    (r"not found in kernel", "the kfunc does not exist in this kernel; use the sc_* wrappers "
     "from schedcp/compat.bpf.h or the current kfunc name"),
    (r"back-edge|infinite loop|too large|complexity", "bound the loop with a small constant "
     "(bpf_for(i, 0, N)) or move the work to bpf_loop with a modest count"),
    (r"unreleased reference|reference leak", "release every acquired object (e.g. "
     "bpf_task_release, bpf_cpumask_release) on every path"),
    (r"invalid (?:mem )?access|out of bounds|min value|max value|unbounded",
     "bound the index/offset with an explicit check the verifier can see"),
    (r"unknown func|not allowed|program of this type", "this helper/kfunc is not allowed "
     "in this struct_ops callback (sleepable vs non-sleepable context)"),
)


def _hint_for(reason: str) -> str:
    for pat, hint in _HINTS:
        if re.search(pat, reason):
            return hint
    return "read the verifier log tail for the register state at the failing instruction"


def _report_sections(lines: list[str]) -> dict[str, str]:
    """The ``Reason:`` / ``Suggestion:`` blocks of a 7.x verifier report."""
    out: dict[str, str] = {}
    current = None
    for ln in lines:
        head = ln.strip()
        if head in ("Reason:", "Suggestion:"):
            current = head[:-1]
            out[current] = ""
        elif current and ln.startswith("  ") and head:
            out[current] = (out[current] + " " + head).strip()
        else:
            current = None
    return out


def summarize(log: str) -> VerifierSummary:
    """Find the failing instruction, the reason and the source line in ``log``."""
    lines = [ln.rstrip() for ln in log.splitlines()]
    program = ""
    for ln in lines:
        m = _PROG.search(ln)
        if m:
            program = m["name"]
            break
    for ln in lines:
        m = _EXTERN.search(ln)
        if m:
            return VerifierSummary(reason=f"kfunc {m['sym']} not found in kernel BTF",
                                   program=program)
    # The verifier's own log sits between BEGIN and END markers (libbpf), or
    # is the whole text when it comes straight from the kernel.
    body = lines
    for i, ln in enumerate(lines):
        if "-- BEGIN PROG LOAD LOG --" in ln:
            body = lines[i + 1:]
            break
    end = len(body)
    for i, ln in enumerate(body):
        if any(ln.startswith(mk) or mk in ln for mk in _FAIL_MARKERS):
            end = i
            break
    body = body[:end]
    # The failing instruction is the last one printed; the lines after it
    # (other than register states and source comments) are the kernel's
    # reason, which newer kernels follow with an explanation sentence.
    last_insn = -1
    for i in range(len(body) - 1, -1, -1):
        if _INSN.match(body[i].strip()):
            last_insn = i
            break
    after = []
    for ln in body[last_insn + 1:]:
        t = ln.strip()
        if not t:
            break  # newer kernels follow with a blank line and a structured report
        if not t.startswith("libbpf:") and not _SRC.match(t) and not _STATE.match(t):
            after.append(t)
    if not after:  # e.g. an error printed before any instruction
        after = [ln.strip() for ln in body if ln.strip() and not ln.strip().startswith("libbpf:")
                 and not _SRC.match(ln.strip()) and not _STATE.match(ln.strip())][-1:]
    reason = after[0] if after else ""
    explanation = " ".join(after[1:3])
    report = _report_sections(body)
    if report:
        explanation = " ".join(x for x in (report.get("Reason"), report.get("Suggestion")) if x)
    insn = None
    instruction = ""
    src_text, src_file, src_line = "", "", 0
    if last_insn >= 0:
        m = _INSN.match(body[last_insn].strip())
        assert m is not None
        insn, instruction = int(m["idx"]), m["text"].strip()
        for j in range(last_insn - 1, -1, -1):
            s = _SRC.match(body[j].strip())
            if s:
                src_text = s["text"].strip()
                if s["line"]:
                    src_file, src_line = s["file"], int(s["line"])
                break
    if not reason:
        tail = [ln.strip() for ln in lines if ln.strip()]
        reason = next((ln.removeprefix("libbpf: ") for ln in reversed(tail)
                       if "failed" in ln or "error" in ln.lower()), tail[-1] if tail else
                      "the kernel refused the program without a log")
    return VerifierSummary(reason=reason, program=program, insn=insn, instruction=instruction,
                           source_line=src_line, source_text=src_text, source_file=src_file,
                           explanation=explanation)
