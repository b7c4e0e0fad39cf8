/* SPDX-License-Identifier: GPL-2.0 */
/*
 * schedcp/exit_info.bpf.h: remember WHY the kernel disabled the scheduler.
 *
 * A successful load proves nothing: the watchdog or scx_bpf_error() can eject
 * a scheduler at any time afterwards. ops.exit() receives struct
 * scx_exit_info; SC_RECORD_EXIT(ei) copies kind, exit code, reason and message
 * into the one-slot array map "schedcp_exit", which the loader pins next to
 * the struct_ops link so it can be read after the loading process is gone.
 *
 * The layout is part of the loader contract (schedcp.substrate.loader
 * EXIT_INFO_LAYOUT): change both together.
 */
#ifndef __SCHEDCP_EXIT_INFO_BPF_H
#define __SCHEDCP_EXIT_INFO_BPF_H

#define SC_EXIT_REASON_LEN 128
#define SC_EXIT_MSG_LEN 1024

struct schedcp_exit_info {
	s32 kind;		/* enum scx_exit_kind; 0 while running */
	u32 recorded;		/* 1 once ops.exit() ran */
	s64 exit_code;
	char reason[SC_EXIT_REASON_LEN];
	char msg[SC_EXIT_MSG_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct schedcp_exit_info);
} schedcp_exit SEC(".maps");

static __always_inline void sc_record_exit(struct scx_exit_info *ei)
{
	u32 zero = 0;
	struct schedcp_exit_info *out = bpf_map_lookup_elem(&schedcp_exit, &zero);

	if (!out)
		return;
	out->kind = ei->kind;
	out->exit_code = ei->exit_code;
	bpf_probe_read_kernel_str(out->reason, sizeof(out->reason), ei->reason);
	bpf_probe_read_kernel_str(out->msg, sizeof(out->msg), ei->msg);
	out->recorded = 1;
}

#define SC_RECORD_EXIT(ei) sc_record_exit(ei)

#endif /* __SCHEDCP_EXIT_INFO_BPF_H */
