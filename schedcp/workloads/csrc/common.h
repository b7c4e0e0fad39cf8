/*
 * Shared helpers of the schedcp reference workloads.
 *
 * Work is measured in loop iterations, never in wall time: a task that must
 * burn "N iterations" takes longer when the scheduler gives it less CPU, which
 * is exactly what the workloads want to expose. One iteration is a few
 * dependent integer operations (about 1 ns natively, 2-3.5x that under
 * qemu TCG).
 */
#ifndef SCHEDCP_WORKLOAD_COMMON_H
#define SCHEDCP_WORKLOAD_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The dependent multiply-add chain cannot be vectorised or folded away, so
 * the cost per iteration is stable across compilers and flags. */
static inline uint64_t burn(uint64_t iters, uint64_t seed)
{
	uint64_t x = seed | 1;

	for (uint64_t i = 0; i < iters; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	return x;
}

/*
 * The same chain, but every 64th iteration also reads one random cache line
 * of @mem (@lines lines of 64 bytes) and folds it in, so the task has a
 * working set the way a compiler does: what it costs depends on whether the
 * caches and TLB still hold that set when the task runs again. Natively one
 * iteration is still a few ns while the set fits the caches.
 */
static inline uint64_t burn_mem(uint64_t iters, uint64_t seed, const volatile uint8_t *mem, uint64_t lines)
{
	uint64_t x = seed | 1;

	for (uint64_t i = 0; i < iters; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		if ((i & 63) == 0)
			x ^= mem[((x >> 29) % lines) * 64];
	}
	return x;
}

/* The result is written to a volatile sink so the loop is never dead code. */
static volatile uint64_t burn_sink;

static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static inline double pct_us(const uint64_t *sorted, size_t n, double p)
{
	size_t idx;

	if (n == 0)
		return 0.0;
	idx = (size_t)(p / 100.0 * (double)n);
	if (idx >= n)
		idx = n - 1;
	return (double)sorted[idx] / 1000.0;
}

static inline long parse_long(const char *s, const char *what)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 0) {
		fprintf(stderr, "invalid %s: '%s' (want a non-negative integer)\n", what, s);
		exit(2);
	}
	return v;
}

#endif
