/*
 * wakeup_server: a schbench-like request server measuring wakeup latency.
 *
 * Message threads play the role of a server's network threads: each owns a
 * group of worker threads, posts one request to every worker (a futex wake),
 * then sleeps until the whole group has answered. A worker records the time
 * from the post until it is actually running (the wakeup latency, which is
 * what a scheduler controls), burns a small fixed amount of CPU (the request's
 * service time) and reports back. With more workers than CPUs, and optional
 * CPU hog processes, wakeups compete for CPUs and the scheduler's choice of
 * who runs next shows up directly in the tail latency.
 *
 * usage: wakeup_server [-m MSG_THREADS] [-w WORKERS_PER_MSG] [-b BURST_ITERS]
 *                      [-r RUNTIME_S] [-W WARMUP_S] [-H HOGS]
 * Prints one JSON object with the metrics on stdout.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { IDLE = 0, POSTED = 1, EXIT = 2 };

struct worker {
	_Atomic int state;		/* futex word: IDLE, POSTED or EXIT */
	_Atomic uint64_t posted_ns;
	struct msg_thread *msg;
	uint64_t *lat;			/* wakeup latencies (ns) after warmup */
	size_t nlat, cap;
	uint64_t requests;		/* requests served after warmup */
	pthread_t tid;
} __attribute__((aligned(64)));

struct msg_thread {
	_Atomic int pending;		/* futex word: workers still busy */
	struct worker *workers;
	int nworkers;
	pthread_t tid;
} __attribute__((aligned(64)));

static _Atomic int stop;
static _Atomic int measuring;
static uint64_t burst_iters = 20000;

static void futex_wait(_Atomic int *addr, int val)
{
	syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic int *addr)
{
	syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void record(struct worker *w, uint64_t lat)
{
	if (w->nlat == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 4096;
		w->lat = realloc(w->lat, w->cap * sizeof(*w->lat));
		if (!w->lat) {
			perror("realloc");
			exit(1);
		}
	}
	w->lat[w->nlat++] = lat;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		int s;

		while ((s = atomic_load(&w->state)) == IDLE)
			futex_wait(&w->state, IDLE);
		if (s == EXIT)
			return NULL;
		uint64_t woke = now_ns();
		uint64_t posted = atomic_load(&w->posted_ns);
		int counted = atomic_load(&measuring);

		if (counted)
			record(w, woke > posted ? woke - posted : 0);
		atomic_store(&w->state, IDLE);
		burn_sink = burn(burst_iters, woke);
		if (counted)
			w->requests++;
		/* The last worker of the round wakes its message thread. */
		if (atomic_fetch_sub(&w->msg->pending, 1) == 1)
			futex_wake(&w->msg->pending);
	}
}

static void *msg_main(void *arg)
{
	struct msg_thread *m = arg;

	while (!atomic_load(&stop)) {
		int p;

		atomic_store(&m->pending, m->nworkers);
		for (int i = 0; i < m->nworkers; i++) {
			struct worker *w = &m->workers[i];

			atomic_store(&w->posted_ns, now_ns());
			atomic_store(&w->state, POSTED);
			futex_wake(&w->state);
		}
		while ((p = atomic_load(&m->pending)) != 0)
			futex_wait(&m->pending, p);
	}
	return NULL;
}

static void hog_main(void)
{
	for (;;)
		burn_sink = burn(1u << 24, burn_sink);
}

int main(int argc, char **argv)
{
	long nmsg = 2, nworkers = 4, runtime = 8, warmup = 1, nhogs = 0;
	pid_t *hogs;
	struct msg_thread *msgs;
	uint64_t t0, t1, total = 0, nsamples = 0, *all;
	int opt;

	while ((opt = getopt(argc, argv, "m:w:b:r:W:H:")) != -1) {
		switch (opt) {
		case 'm': nmsg = parse_long(optarg, "message threads"); break;
		case 'w': nworkers = parse_long(optarg, "workers"); break;
		case 'b': burst_iters = (uint64_t)parse_long(optarg, "burst"); break;
		case 'r': runtime = parse_long(optarg, "runtime"); break;
		case 'W': warmup = parse_long(optarg, "warmup"); break;
		case 'H': nhogs = parse_long(optarg, "hogs"); break;
		default:
			fprintf(stderr, "usage: %s [-m msg] [-w workers] [-b burst] [-r s] [-W s] [-H hogs]\n",
				argv[0]);
			return 2;
		}
	}
	if (nmsg < 1 || nworkers < 1 || runtime < 1) {
		fprintf(stderr, "need at least one message thread, one worker and 1 s of runtime\n");
		return 2;
	}

	hogs = calloc((size_t)nhogs + 1, sizeof(*hogs));
	for (long i = 0; i < nhogs; i++) {
		hogs[i] = fork();
		if (hogs[i] == 0)
			hog_main();
		if (hogs[i] < 0) {
			perror("fork");
			return 1;
		}
	}

	msgs = calloc((size_t)nmsg, sizeof(*msgs));
	for (long i = 0; i < nmsg; i++) {
		struct msg_thread *m = &msgs[i];

		m->nworkers = (int)nworkers;
		m->workers = aligned_alloc(64, sizeof(struct worker) * (size_t)nworkers);
		memset(m->workers, 0, sizeof(struct worker) * (size_t)nworkers);
		for (long j = 0; j < nworkers; j++) {
			m->workers[j].msg = m;
			pthread_create(&m->workers[j].tid, NULL, worker_main, &m->workers[j]);
		}
	}
	for (long i = 0; i < nmsg; i++)
		pthread_create(&msgs[i].tid, NULL, msg_main, &msgs[i]);

	sleep((unsigned)warmup);
	atomic_store(&measuring, 1);
	t0 = now_ns();
	sleep((unsigned)runtime);
	atomic_store(&measuring, 0);
	t1 = now_ns();

	/* Message threads finish their current round, then workers exit. */
	atomic_store(&stop, 1);
	for (long i = 0; i < nmsg; i++)
		pthread_join(msgs[i].tid, NULL);
	for (long i = 0; i < nmsg; i++) {
		for (long j = 0; j < nworkers; j++) {
			struct worker *w = &msgs[i].workers[j];

			atomic_store(&w->state, EXIT);
			futex_wake(&w->state);
			pthread_join(w->tid, NULL);
			total += w->requests;
			nsamples += w->nlat;
		}
	}
	for (long i = 0; i < nhogs; i++)
		kill(hogs[i], SIGKILL);
	for (long i = 0; i < nhogs; i++)
		waitpid(hogs[i], NULL, 0);

	all = malloc((nsamples + 1) * sizeof(*all));
	nsamples = 0;
	for (long i = 0; i < nmsg; i++)
		for (long j = 0; j < nworkers; j++) {
			struct worker *w = &msgs[i].workers[j];

			memcpy(all + nsamples, w->lat, w->nlat * sizeof(*all));
			nsamples += w->nlat;
		}
	qsort(all, nsamples, sizeof(*all), cmp_u64);

	printf("{\"requests_per_s\": %.3f, \"wakeup_p50_us\": %.3f, \"wakeup_p99_us\": %.3f, "
	       "\"wakeup_p999_us\": %.3f, \"wakeup_max_us\": %.3f, \"samples\": %llu, "
	       "\"measured_s\": %.3f}\n",
	       (double)total / ((double)(t1 - t0) / 1e9), pct_us(all, nsamples, 50),
	       pct_us(all, nsamples, 99), pct_us(all, nsamples, 99.9),
	       nsamples ? (double)all[nsamples - 1] / 1000.0 : 0.0,
	       (unsigned long long)nsamples, (double)(t1 - t0) / 1e9);
	return 0;
}
