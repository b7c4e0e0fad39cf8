/*
 * interactive: a periodic foreground task under CPU-hog background load.
 *
 * The foreground thread behaves like an editor or UI loop: it sleeps until
 * an absolute deadline every PERIOD, does a tiny burst and sleeps again. Its
 * wakeup latency (actual wake time minus the deadline) is what a user feels.
 * HOGS background processes burn CPU in fixed chunks and count them in shared
 * memory, which gives their throughput. A good interactive scheduler cuts the
 * foreground latency without starving (or much slowing) the hogs.
 *
 * usage: interactive [-p PERIOD_US] [-b BURST_ITERS] [-H HOGS] [-r RUNTIME_S]
 *                    [-W WARMUP_S]
 * Prints one JSON object with the metrics on stdout.
 */
#define _GNU_SOURCE
#include "common.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define HOG_CHUNK (1u << 16)

int main(int argc, char **argv)
{
	long period_us = 10000, burst = 20000, nhogs = 4, runtime = 8, warmup = 1;
	_Atomic uint64_t *chunks;
	pid_t *hogs;
	uint64_t *lat, nlat = 0, cap, before = 0, after = 0, t0, t1, end;
	struct timespec next;
	int opt;

	while ((opt = getopt(argc, argv, "p:b:H:r:W:")) != -1) {
		switch (opt) {
		case 'p': period_us = parse_long(optarg, "period"); break;
		case 'b': burst = parse_long(optarg, "burst"); break;
		case 'H': nhogs = parse_long(optarg, "hogs"); break;
		case 'r': runtime = parse_long(optarg, "runtime"); break;
		case 'W': warmup = parse_long(optarg, "warmup"); break;
		default:
			fprintf(stderr, "usage: %s [-p us] [-b burst] [-H hogs] [-r s] [-W s]\n", argv[0]);
			return 2;
		}
	}
	if (period_us < 100 || runtime < 1) {
		fprintf(stderr, "need a period of at least 100 us and 1 s of runtime\n");
		return 2;
	}
	/* The default 50 us timer slack would be counted as scheduler latency. */
	prctl(PR_SET_TIMERSLACK, 1UL);

	chunks = mmap(NULL, sizeof(*chunks) * ((size_t)nhogs + 1), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (chunks == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	hogs = calloc((size_t)nhogs + 1, sizeof(*hogs));
	for (long i = 0; i < nhogs; i++) {
		hogs[i] = fork();
		if (hogs[i] < 0) {
			perror("fork");
			return 1;
		}
		if (hogs[i] == 0) {
			for (;;) {
				burn_sink = burn(HOG_CHUNK, burn_sink);
				atomic_fetch_add_explicit(&chunks[i], 1, memory_order_relaxed);
			}
		}
	}

	cap = (uint64_t)(runtime * 1000000 / period_us) + 16;
	lat = malloc(cap * sizeof(*lat));
	t0 = now_ns();
	end = t0 + (uint64_t)(warmup + runtime) * 1000000000ull;
	t1 = t0 + (uint64_t)warmup * 1000000000ull;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		uint64_t deadline, woke;

		next.tv_nsec += period_us * 1000;
		while (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		woke = now_ns();
		deadline = (uint64_t)next.tv_sec * 1000000000ull + (uint64_t)next.tv_nsec;
		if (woke >= end)
			break;
		if (woke >= t1) {
			if (nlat == 0)
				for (long i = 0; i < nhogs; i++)
					before += atomic_load(&chunks[i]);
			if (nlat < cap)
				lat[nlat++] = woke > deadline ? woke - deadline : 0;
		}
		burn_sink = burn((uint64_t)burst, woke);
		/* A missed period is not made up with a burst of catch-up wakeups. */
		if (now_ns() > deadline + (uint64_t)period_us * 1000) {
			clock_gettime(CLOCK_MONOTONIC, &next);
		}
	}
	for (long i = 0; i < nhogs; i++)
		after += atomic_load(&chunks[i]);
	t1 = now_ns() - t1;
	for (long i = 0; i < nhogs; i++)
		kill(hogs[i], SIGKILL);
	for (long i = 0; i < nhogs; i++)
		waitpid(hogs[i], NULL, 0);

	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("{\"fg_wakeup_p50_us\": %.3f, \"fg_wakeup_p99_us\": %.3f, \"fg_wakeup_max_us\": %.3f, "
	       "\"hog_mops_per_s\": %.3f, \"samples\": %llu, \"measured_s\": %.3f}\n",
	       pct_us(lat, nlat, 50), pct_us(lat, nlat, 99),
	       nlat ? (double)lat[nlat - 1] / 1000.0 : 0.0,
	       (double)(after - before) * HOG_CHUNK / 1e6 / ((double)t1 / 1e9),
	       (unsigned long long)nlat, (double)t1 / 1e9);
	return 0;
}
