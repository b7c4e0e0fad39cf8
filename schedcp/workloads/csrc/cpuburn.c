/*
 * cpuburn: one compiler-like (or batch) task with a fixed amount of work.
 *
 * usage: cpuburn [-m KIB] ITERATIONS [ID [gate]]
 *
 * With "-m KIB" the task first touches a working set of KIB kibibytes and
 * then reads random cache lines of it as it works (see burn_mem), like a
 * compiler walking its data structures; without it the work is pure ALU.
 *
 * With "gate" it prints "R ID" and then blocks reading stdin until the parent
 * closes the other end, so a batch spawned one by one starts its work together: in a slow
 * guest each spawn costs tens of milliseconds, and a batch whose members
 * start as the launcher gets to them measures the launcher, not the
 * scheduler's ordering of the work.
 *
 * Prints "ID START_NS END_NS" (CLOCK_MONOTONIC) on one line when done, so a
 * parent collecting many children through one pipe learns each task's own
 * start and finish without depending on when it gets around to reaping them.
 * The line is shorter than PIPE_BUF, so concurrent writers never interleave.
 */
#include "common.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	uint64_t start, end, iters, lines = 0;
	uint8_t *mem = NULL;
	long id = 0;
	char line[96];
	int len;

	if (argc >= 3 && strcmp(argv[1], "-m") == 0) {
		lines = (uint64_t)parse_long(argv[2], "working set KiB") * 1024 / 64;
		argc -= 2;
		argv += 2;
	}
	if (argc < 2 || argc > 4 || (argc == 4 && strcmp(argv[3], "gate") != 0)) {
		fprintf(stderr, "usage: cpuburn [-m KIB] ITERATIONS [ID [gate]]\n");
		return 2;
	}
	if (lines) {
		mem = malloc(lines * 64);
		if (!mem) {
			fprintf(stderr, "cpuburn: cannot allocate a %llu KiB working set\n",
				(unsigned long long)(lines * 64 / 1024));
			return 1;
		}
		/* Fault every page in before the clock starts: the work below is
		 * the reads, not the first-touch page faults. */
		memset(mem, 1, lines * 64);
	}
	iters = (uint64_t)parse_long(argv[1], "iterations");
	if (argc >= 3)
		id = parse_long(argv[2], "id");
	if (argc == 4) {
		char c;

		/* "R ID": this task is loaded and waiting, so the parent opens the
		 * gate only when every task can start at once. */
		len = snprintf(line, sizeof(line), "R %ld\n", id);
		if (write(1, line, (size_t)len) != len)
			return 1;
		/* EOF (the parent closed the gate) or a byte both open it. */
		while (read(0, &c, 1) < 0 && errno == EINTR)
			;
	}
	start = now_ns();
	burn_sink = lines ? burn_mem(iters, start, mem, lines) : burn(iters, start);
	end = now_ns();
	len = snprintf(line, sizeof(line), "%ld %llu %llu\n", id,
		       (unsigned long long)start, (unsigned long long)end);
	return write(1, line, (size_t)len) == len ? 0 : 1;
}
