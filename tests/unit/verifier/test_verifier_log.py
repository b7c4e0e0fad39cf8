"""Verifier log summarisation: failing instruction, reason, source line."""

from services.verifier.verifier_log import summarize

NULL_DEREF = """\
libbpf: prog 'vnd_enqueue': BPF program load failed: Permission denied
libbpf: prog 'vnd_enqueue': -- BEGIN PROG LOAD LOG --
0: R1=ctx() R10=fp0
; void BPF_STRUCT_OPS(vnd_enqueue, struct task_struct *p, u64 enq_flags) @ verifier_null_deref.bpf.c:13
0: (79) r6 = *(u64 *)(r1 +0)          ; R1=ctx() R6_w=trusted_ptr_task_struct()
1: (b4) w1 = 0                        ; R1_w=0
; u32 key = 0; @ verifier_null_deref.bpf.c:15
2: (63) *(u32 *)(r10 -4) = r1         ; R1_w=0 R10=fp0 fp-8=0000????
; u64 *cnt = bpf_map_lookup_elem(&counts, &key); @ verifier_null_deref.bpf.c:16
3: (bf) r2 = r10                      ; R2_w=fp0 R10=fp0
4: (07) r2 += -4                      ; R2_w=fp-4
5: (18) r1 = 0xffff888003f5b000       ; R1_w=map_ptr(map=counts,ks=4,vs=8)
7: (85) call bpf_map_lookup_elem#1    ; R0_w=map_value_or_null(id=1,map=counts,ks=4,vs=8)
; *cnt += 1; /* no NULL check */ @ verifier_null_deref.bpf.c:18
8: (79) r1 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 8 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
-- END PROG LOAD LOG --
libbpf: prog 'vnd_enqueue': failed to load: -13
libbpf: failed to load object 'verifier_null_deref_bpf'
"""


def test_null_deref_summary():
    s = summarize(NULL_DEREF)
    assert s.program == "vnd_enqueue"
    assert s.reason == "R0 invalid mem access 'map_value_or_null'"
    assert s.insn == 8
    assert s.instruction == "r1 = *(u64 *)(r0 +0)"
    assert s.source_line == 18
    assert s.source_file == "verifier_null_deref.bpf.c"
    assert "no NULL check" in s.source_text
    f = s.to_finding()
    assert f.rule == "verifier-reject" and f.line == 18
    assert "NULL" in f.hint


def test_missing_kfunc():
    log = ("libbpf: extern (func ksym) 'scx_bpf_dispatch': not found in kernel or module BTFs\n"
           "libbpf: failed to load object 'x'\n")
    s = summarize(log)
    assert "scx_bpf_dispatch" in s.reason and s.insn is None
    assert "compat" in s.to_finding().hint


def test_loop_too_complex_without_source_info():
    log = """\
libbpf: prog 'spin': -- BEGIN PROG LOAD LOG --
12: (05) goto pc-3
13: (07) r1 += 1
back-edge from insn 13 to 10
processed 40 insns (limit 1000000)
-- END PROG LOAD LOG --
"""
    s = summarize(log)
    assert s.reason == "back-edge from insn 13 to 10"
    assert s.insn == 13 and s.source_line == 0


def test_empty_log_has_a_reason():
    assert summarize("").reason


def test_real_7x_log_with_structured_report():
    from pathlib import Path

    log = (Path(__file__).parent / "data" / "null_deref_7x.log").read_text()
    s = summarize(log)
    assert s.program == "vnd_enqueue"
    assert s.reason == "R0 invalid mem access 'map_value_or_null'"
    assert (s.insn, s.instruction) == (9, "r1 = *(u64 *)(r0 +0)")
    assert s.source_line == 18 and s.source_file == "verifier_null_deref.bpf.c"
    assert "may be NULL" in s.explanation and "Add a NULL check" in s.explanation
    assert "Add a NULL check" in s.to_finding().hint
