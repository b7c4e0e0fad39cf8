/*
 * cpuburn: one compiler-like (or batch) task with a fixed amount of work.
 *
 * usage: cpuburn ITERATIONS [ID]
 *
 * Prints "ID START_NS END_NS" (CLOCK_MONOTONIC) on one line when done, so a
 * parent collecting many children through one pipe learns each task's own
 * start and finish without depending on when it gets around to reaping them.
 * The line is shorter than PIPE_BUF, so concurrent writers never interleave.
 */
#include "common.h"

#include <unistd.h>

int main(int argc, char **argv)
{
	uint64_t start, end, iters;
	long id = 0;
	char line[96];
	int len;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: cpuburn ITERATIONS [ID]\n");
		return 2;
	}
	iters = (uint64_t)parse_long(argv[1], "iterations");
	if (argc == 3)
		id = parse_long(argv[2], "id");
	start = now_ns();
	burn_sink = burn(iters, start);
	end = now_ns();
	len = snprintf(line, sizeof(line), "%ld %llu %llu\n", id,
		       (unsigned long long)start, (unsigned long long)end);
	return write(1, line, (size_t)len) == len ? 0 : 1;
}
