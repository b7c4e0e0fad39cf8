/* SPDX-License-Identifier: GPL-2.0 */
/*
 * schedcp/compat.bpf.h: one object, every sched_ext kernel from 6.12 to 7.2+.
 *
 * The sched_ext kfunc set keeps moving:
 *   6.13  scx_bpf_dispatch*      -> scx_bpf_dsq_insert*
 *         scx_bpf_consume        -> scx_bpf_dsq_move_to_local
 *   6.17  the old names are gone ("extern (func ksym) ... not found")
 *   6.19+ changed signatures arrive as NEW kfuncs with a ___v2 suffix beside
 *         the old ones (7.2.13: scx_bpf_dsq_insert returns void,
 *         scx_bpf_dsq_insert___v2 returns bool), and implicit-argument kfuncs
 *         get a hidden <name>_impl twin that the verifier resolves by itself.
 *
 * So we never trust a version number. Every kfunc this layer calls is declared
 * weak under a private alias and picked at LOAD time with bpf_ksym_exists();
 * the verifier drops the branches for kfuncs the running kernel lacks.
 *
 * The alias trick: libbpf resolves a ksym by its "essential" name, i.e. the
 * name with the LAST "___suffix" removed. So:
 *   scx_bpf_dsq_insert___sc      resolves to kernel scx_bpf_dsq_insert
 *   scx_bpf_dsq_insert___v2___sc resolves to kernel scx_bpf_dsq_insert___v2
 * A weak alias whose prototype does not match the kernel's stays unresolved
 * (NULL) instead of failing the load, which is what makes the fallbacks safe.
 * The aliases also never collide with the prototypes bpftool writes into
 * vmlinux.h, so sources may include both.
 *
 * The _impl twins need nothing here: a program calls the plain name and the
 * kernel maps it. A kernel whose BTF lacks the _impl twins (Debian +deb13
 * 7.2.x builds) rejects such calls; schedcp.substrate.build.kernel_kfuncs()
 * reports that before anything is loaded.
 */
#ifndef __SCHEDCP_COMPAT_BPF_H
#define __SCHEDCP_COMPAT_BPF_H

/* ---- weak aliases, one per name a kernel in range may have ---- */

/* insert into a DSQ (FIFO) */
bool scx_bpf_dsq_insert___v2___sc(struct task_struct *p, u64 dsq_id, u64 slice,
				  u64 enq_flags) __ksym __weak;
void scx_bpf_dsq_insert___sc(struct task_struct *p, u64 dsq_id, u64 slice,
			     u64 enq_flags) __ksym __weak;
void scx_bpf_dispatch___sc(struct task_struct *p, u64 dsq_id, u64 slice,
			   u64 enq_flags) __ksym __weak;

/* insert into a DSQ ordered by vtime */
void scx_bpf_dsq_insert_vtime___sc(struct task_struct *p, u64 dsq_id, u64 slice,
				   u64 vtime, u64 enq_flags) __ksym __weak;
void scx_bpf_dispatch_vtime___sc(struct task_struct *p, u64 dsq_id, u64 slice,
				 u64 vtime, u64 enq_flags) __ksym __weak;

/* move the first task of a DSQ to the local DSQ of the dispatching CPU */
bool scx_bpf_dsq_move_to_local___v2___sc(u64 dsq_id, u64 enq_flags) __ksym __weak;
bool scx_bpf_dsq_move_to_local___sc(u64 dsq_id) __ksym __weak;
bool scx_bpf_consume___sc(u64 dsq_id) __ksym __weak;

/* setters that replace direct writes to p->scx.slice / dsq_vtime (7.0+) */
bool scx_bpf_task_set_slice___sc(struct task_struct *p, u64 slice) __ksym __weak;
bool scx_bpf_task_set_dsq_vtime___sc(struct task_struct *p, u64 vtime) __ksym __weak;

/* stable since 6.12, declared here so we do not depend on vmlinux.h prototypes */
s32 scx_bpf_create_dsq___sc(u64 dsq_id, s32 node) __ksym __weak;
s32 scx_bpf_dsq_nr_queued___sc(u64 dsq_id) __ksym __weak;
s32 scx_bpf_select_cpu_dfl___sc(struct task_struct *p, s32 prev_cpu, u64 wake_flags,
				bool *is_idle) __ksym __weak;
void scx_bpf_kick_cpu___sc(s32 cpu, u64 flags) __ksym __weak;
u64 scx_bpf_now___sc(void) __ksym __weak;
void scx_bpf_error_bstr___sc(char *fmt, unsigned long long *data, u32 data__sz) __ksym __weak;
void scx_bpf_exit_bstr___sc(s64 exit_code, char *fmt, unsigned long long *data,
			    u32 data__sz) __ksym __weak;

/* DSQ iterator (6.12+), used to peek at a queue's head */
int bpf_iter_scx_dsq_new___sc(struct bpf_iter_scx_dsq *it, u64 dsq_id, u64 flags) __ksym __weak;
struct task_struct *bpf_iter_scx_dsq_next___sc(struct bpf_iter_scx_dsq *it) __ksym __weak;
void bpf_iter_scx_dsq_destroy___sc(struct bpf_iter_scx_dsq *it) __ksym __weak;

/* ---- the portable API: use these in schedulers ---- */

/*
 * Insert @p into @dsq_id. Returns false only where the kernel can refuse the
 * insert (the ___v2 kfunc); older kernels report problems via ejection.
 */
static __always_inline bool sc_dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice,
					  u64 enq_flags)
{
	if (bpf_ksym_exists(scx_bpf_dsq_insert___v2___sc))
		return scx_bpf_dsq_insert___v2___sc(p, dsq_id, slice, enq_flags);
	if (bpf_ksym_exists(scx_bpf_dsq_insert___sc)) {
		scx_bpf_dsq_insert___sc(p, dsq_id, slice, enq_flags);
		return true;
	}
	scx_bpf_dispatch___sc(p, dsq_id, slice, enq_flags);
	return true;
}

/* Insert @p into the user DSQ @dsq_id ordered by @vtime (lowest first). */
static __always_inline void sc_dsq_insert_vtime(struct task_struct *p, u64 dsq_id, u64 slice,
						u64 vtime, u64 enq_flags)
{
	if (bpf_ksym_exists(scx_bpf_dsq_insert_vtime___sc))
		scx_bpf_dsq_insert_vtime___sc(p, dsq_id, slice, vtime, enq_flags);
	else
		scx_bpf_dispatch_vtime___sc(p, dsq_id, slice, vtime, enq_flags);
}

/* Pull the head of @dsq_id onto this CPU; true if a task was moved. */
static __always_inline bool sc_dsq_move_to_local(u64 dsq_id)
{
	if (bpf_ksym_exists(scx_bpf_dsq_move_to_local___v2___sc))
		return scx_bpf_dsq_move_to_local___v2___sc(dsq_id, 0);
	if (bpf_ksym_exists(scx_bpf_dsq_move_to_local___sc))
		return scx_bpf_dsq_move_to_local___sc(dsq_id);
	return scx_bpf_consume___sc(dsq_id);
}

/*
 * The key (dsq_vtime) of the first task on the vtime-ordered @dsq_id; false
 * when the queue is empty or the kernel cannot iterate DSQs.
 */
static __always_inline bool sc_dsq_peek_vtime(u64 dsq_id, u64 *vtime)
{
	struct bpf_iter_scx_dsq it;
	struct task_struct *p = NULL;

	if (!bpf_ksym_exists(bpf_iter_scx_dsq_new___sc))
		return false;
	/* The verifier wants destroy after every new, even a failed one. */
	if (!bpf_iter_scx_dsq_new___sc(&it, dsq_id, 0))
		p = bpf_iter_scx_dsq_next___sc(&it);
	if (p)
		*vtime = p->scx.dsq_vtime;
	bpf_iter_scx_dsq_destroy___sc(&it);
	return p != NULL;
}

static __always_inline void sc_task_set_slice(struct task_struct *p, u64 slice)
{
	if (bpf_ksym_exists(scx_bpf_task_set_slice___sc))
		scx_bpf_task_set_slice___sc(p, slice);
	else
		p->scx.slice = slice;
}

static __always_inline void sc_task_set_dsq_vtime(struct task_struct *p, u64 vtime)
{
	if (bpf_ksym_exists(scx_bpf_task_set_dsq_vtime___sc))
		scx_bpf_task_set_dsq_vtime___sc(p, vtime);
	else
		p->scx.dsq_vtime = vtime;
}

static __always_inline s32 sc_create_dsq(u64 dsq_id, s32 node)
{
	return scx_bpf_create_dsq___sc(dsq_id, node);
}

static __always_inline s32 sc_dsq_nr_queued(u64 dsq_id)
{
	return scx_bpf_dsq_nr_queued___sc(dsq_id);
}

static __always_inline s32 sc_select_cpu_dfl(struct task_struct *p, s32 prev_cpu,
					     u64 wake_flags, bool *is_idle)
{
	return scx_bpf_select_cpu_dfl___sc(p, prev_cpu, wake_flags, is_idle);
}

static __always_inline void sc_kick_cpu(s32 cpu, u64 flags)
{
	scx_bpf_kick_cpu___sc(cpu, flags);
}

/* scx_bpf_now() (6.14+) is rq-clock based and cheaper; fall back to ktime. */
static __always_inline u64 sc_now(void)
{
	if (bpf_ksym_exists(scx_bpf_now___sc))
		return scx_bpf_now___sc();
	return bpf_ktime_get_ns();
}

/*
 * sc_error(fmt, args...): eject the scheduler with a formatted reason; the
 * loader reports it as exit kind SCX_EXIT_ERROR_BPF. sc_exit(code, fmt, ...)
 * unregisters gracefully with an exit code (SCX_EXIT_UNREG_BPF).
 */
#define __sc_bstr_call(call, fmt, args...)					\
({										\
	static char ___fmt[] = fmt;						\
	unsigned long long ___param[___bpf_narg(args)];				\
										\
	_Pragma("GCC diagnostic push")						\
	_Pragma("GCC diagnostic ignored \"-Wint-conversion\"")			\
	___bpf_fill(___param, args);						\
	_Pragma("GCC diagnostic pop")						\
	call;									\
})

#define sc_error(fmt, args...)							\
	__sc_bstr_call(scx_bpf_error_bstr___sc(___fmt, ___param, sizeof(___param)), \
		       fmt, ##args)

#define sc_exit(code, fmt, args...)						\
	__sc_bstr_call(scx_bpf_exit_bstr___sc((code), ___fmt, ___param,	\
					      sizeof(___param)), fmt, ##args)

#endif /* __SCHEDCP_COMPAT_BPF_H */
