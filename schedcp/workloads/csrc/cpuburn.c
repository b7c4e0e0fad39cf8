/*
 * cpuburn: one compiler-like (or batch) task with a fixed amount of work.
 *
 * usage: cpuburn ITERATIONS [ID [gate]]
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
	uint64_t start, end, iters;
	long id = 0;
	char line[96];
	int len;

	if (argc < 2 || argc > 4 || (argc == 4 && strcmp(argv[3], "gate") != 0)) {
		fprintf(stderr, "usage: cpuburn ITERATIONS [ID [gate]]\n");
		return 2;
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
	burn_sink = burn(iters, start);
	end = now_ns();
	len = snprintf(line, sizeof(line), "%ld %llu %llu\n", id,
		       (unsigned long long)start, (unsigned long long)end);
	return write(1, line, (size_t)len) == len ? 0 : 1;
}
