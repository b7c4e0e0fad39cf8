"""Static rules on small snippets: the cases that must stay quiet (no false
positives) next to the ones that must fire. Uses the real clang + vmlinux.h."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.verifier.domain import Severity
from services.verifier.static_analysis import StaticAnalyzer

HEAD = '#include <schedcp/common.bpf.h>\nchar _license[] SEC("license") = "GPL";\n'


def ops(*fields: str) -> str:
    body = "".join(f"\t.{f} = (void *)t_{f},\n" for f in fields)
    return f'SEC(".struct_ops.link")\nstruct sched_ext_ops t_ops = {{\n{body}\t.name = "t",\n}};\n'


@pytest.fixture(scope="module")
def analyze(kernel, tmp_path_factory):
    from schedcp.substrate.build import BPF_INCLUDE_DIR, BpfBuilder

    b = BpfBuilder(btf=kernel.vmlinux)
    cmd = b.command(Path("x.c"), Path("x.o"))
    from schedcp.substrate.build import default_cache_dir

    sa = StaticAnalyzer(clang_args=cmd[1:cmd.index("-c")], project_include_dirs=[BPF_INCLUDE_DIR],
                        cache_dir=default_cache_dir() / "static")
    d = tmp_path_factory.mktemp("snip")

    def run(src: str, tunables=None) -> dict[str, Severity]:
        p = d / "t.bpf.c"
        p.write_text(HEAD + src)
        rep = sa.analyze_file(p, tunables=tunables or {})
        out: dict[str, Severity] = {}
        for f in rep.findings:
            out[f.rule] = max(out.get(f.rule, Severity.INFO), f.severity)
        return out

    return run


ENQ_OK = "void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 f)\n{ sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, f); }\n"


def test_clean(analyze):
    assert analyze(ENQ_OK + ops("enqueue")) == {}


def test_error_path_counts_as_handled(analyze):
    src = """void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 f)
{
	if (!p) { sc_error("no task"); return; }
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, f);
}
""" + ops("enqueue")
    assert "enqueue-no-insert" not in analyze(src)


def test_switch_and_helper_paths(analyze):
    src = """static void put(struct task_struct *p, u64 f) { sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, f); }
void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 f)
{
	if (p->pid == 1) { put(p, f); return; }
	if (p->pid == 2) return;
	put(p, f);
}
""" + ops("enqueue")
    assert analyze(src)["enqueue-no-insert"] is Severity.ERROR


def test_literal_zero_slice_is_only_a_warning(analyze):
    src = "void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 f)\n{ sc_dsq_insert(p, SCX_DSQ_GLOBAL, 0, f); }\n" + ops("enqueue")
    assert analyze(src)["slice-zero"] is Severity.WARNING


def test_tunable_slice_evaluated_with_overrides(analyze):
    src = ("const volatile u64 slice_us = 5000;\n"
           "void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 f)\n"
           "{ sc_dsq_insert(p, SCX_DSQ_GLOBAL, slice_us * 1000, f); }\n" + ops("enqueue"))
    assert analyze(src) == {}
    assert analyze(src, {"slice_us": 0})["slice-zero"] is Severity.ERROR
    assert analyze(src, {"slice_us": 5_000_000})["slice-too-long"] is Severity.ERROR


def test_infinite_slice_with_preempting_kick_is_a_warning(analyze):
    src = """void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 f)
{
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_INF, f);
	sc_kick_cpu(0, SCX_KICK_PREEMPT);
}
""" + ops("enqueue")
    assert analyze(src)["slice-infinite"] is Severity.WARNING


def test_runtime_dsq_ids_stay_quiet(analyze):
    src = """void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 f)
{ sc_dsq_insert(p, 100 + (p->pid & 1), SCX_SLICE_DFL, f); }
void BPF_STRUCT_OPS(t_dispatch, s32 cpu, struct task_struct *prev)
{ sc_dsq_move_to_local(100 + (cpu & 1)); }
s32 BPF_STRUCT_OPS_SLEEPABLE(t_init) { sc_create_dsq(100, -1); return sc_create_dsq(101, -1); }
""" + ops("enqueue", "dispatch", "init")
    assert analyze(src) == {}


def test_priority_with_aging_is_accepted(analyze):
    src = """static u64 last_lo;
void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 f)
{ sc_dsq_insert(p, p->static_prio > 120 ? 2 : 1, SCX_SLICE_DFL, f); }
void BPF_STRUCT_OPS(t_dispatch, s32 cpu, struct task_struct *prev)
{
	u64 now = sc_now();
	if (now - last_lo > 100 * SC_NSEC_PER_MSEC && sc_dsq_move_to_local(2)) { last_lo = now; return; }
	if (sc_dsq_move_to_local(1))
		return;
	if (sc_dsq_move_to_local(2))
		last_lo = now;
}
s32 BPF_STRUCT_OPS_SLEEPABLE(t_init) { sc_create_dsq(1, -1); return sc_create_dsq(2, -1); }
""" + ops("enqueue", "dispatch", "init")
    assert "strict-priority-starvation" not in analyze(src)


def test_bounded_small_loop_is_fine_and_cpu_scan_warns(analyze):
    src = """void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 f)
{
	u32 i, n = 0;
	for (i = 0; i < 64; i++) n += i;
	for (i = 0; i < scx_bpf_nr_cpu_ids(); i++) n++;
	sc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL + n, f);
}
""" + ops("enqueue")
    assert analyze(src).get("unbounded-loop") is Severity.WARNING


def test_direct_vtime_write_is_deprecated_warning(analyze):
    src = ENQ_OK + """void BPF_STRUCT_OPS(t_enable, struct task_struct *p) { p->scx.dsq_vtime = 0; }
""" + ops("enqueue", "enable")
    assert analyze(src) == {"deprecated-field-write": Severity.WARNING}


def test_no_struct_ops(analyze):
    assert analyze(ENQ_OK)["no-struct-ops"] is Severity.ERROR


SWITCH = """void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 f)
{
	switch (p->policy) {
	case 1:
	case 2:
		sc_dsq_insert(p, SCX_DSQ_LOCAL, SCX_SLICE_DFL, f);
		break;
	%s
	}
}
""" + ops("enqueue")


def test_switch_paths(analyze):
    every = SWITCH % "default:\n\t\tsc_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, f);"
    assert "enqueue-no-insert" not in analyze(every)
    # No default: a policy other than 1/2 leaves the switch without an insert.
    assert analyze(SWITCH % "")["enqueue-no-insert"] is Severity.ERROR
    # A case that breaks out without inserting.
    lost = SWITCH % "case 3:\n\t\tbreak;\n\tdefault:\n\t\tsc_dsq_insert(p, SCX_DSQ_GLOBAL, 0, f);"
    assert analyze(lost)["enqueue-no-insert"] is Severity.ERROR
