"""A fixture scheduler library and workload descriptions labelled with the policy that suits them.

The library mirrors the kinds of schedulers schedcp ships (FIFO, weighted
vtime, longest-job-first, least-attained-service, interactive boost, cache
locality, EDF, cgroup fair). The queries are written as an operator would
describe a workload; none reuses the policies' wording, so a hit must come
from meaning rather than shared words.
"""

from __future__ import annotations

# name -> (kind keywords used to find the counterpart in the real bpf/ library,
#          metadata in the bpf/<name>.json format)
FIXTURE_LIBRARY: dict[str, dict] = {
    "fifo": {
        "description": "Global first-in-first-out queue: every task runs its full slice in arrival order. "
                       "Minimal scheduling overhead for CPU-bound throughput work where fairness and "
                       "latency do not matter.",
        "target_workloads": ["CPU_THROUGHPUT"],
        "tags": ["fifo", "simple", "throughput"],
        "tunables": [{"name": "slice_us", "type": "uint", "default": 20000, "min": 1000, "max": 100000,
                      "description": "time slice", "unit": "us"}],
    },
    "vtime_fair": {
        "description": "Weighted fair sharing: tasks are ordered by virtual runtime scaled by their nice "
                       "weight, so each task receives CPU in proportion to its weight. A general-purpose "
                       "default for mixed systems.",
        "target_workloads": ["UNKNOWN_WORKLOAD"],
        "tags": ["fair", "vtime", "weighted"],
        "tunables": [{"name": "slice_us", "type": "uint", "default": 5000, "min": 500, "max": 50000,
                      "description": "base slice", "unit": "us"}],
    },
    "ljf_batch": {
        "description": "Longest job first for batch processing: tasks expected to run longest are dispatched "
                       "first, so stragglers start early and the makespan of the batch shrinks.",
        "target_workloads": ["BATCH_LONG_TAIL"],
        "tags": ["batch", "makespan", "ljf"],
        "tunables": [{"name": "long_threshold_ms", "type": "uint", "default": 100, "min": 1, "max": 10000,
                      "description": "runtime above which a task counts as long", "unit": "ms"}],
    },
    "las": {
        "description": "Least attained service (shortest job first without knowing sizes): the task that "
                       "has used the least CPU so far runs next, so short jobs finish quickly while long "
                       "ones yield. Reduces mean completion time when many short processes are spawned.",
        "target_workloads": ["PARALLEL_BUILD"],
        "tags": ["sjf", "las", "short-tasks"],
        "tunables": [],
    },
    "interactive_boost": {
        "description": "Boosts tasks that sleep often and wake briefly (input handling, audio, UI threads) "
                       "ahead of CPU hogs; background tasks get longer slices at lower priority.",
        "target_workloads": ["INTERACTIVE_BACKGROUND"],
        "tags": ["interactive", "desktop", "latency"],
        "tunables": [{"name": "boost", "type": "bool", "default": True, "description": "enable wake boost"}],
    },
    "cache_locality": {
        "description": "Keeps each task on the CPU it last ran on when that CPU is idle, preserving warm "
                       "caches, and only then looks for another idle core. For cache-sensitive compute.",
        "target_workloads": ["CPU_THROUGHPUT"],
        "tags": ["locality", "cache", "prev-cpu"],
        "tunables": [],
    },
    "edf_latency": {
        "description": "Earliest deadline first: each task gets a deadline of its wakeup time plus a latency "
                       "budget weighted by priority, and the earliest deadline runs next. Keeps request "
                       "tail latency low.",
        "target_workloads": ["LATENCY_SERVER"],
        "tags": ["edf", "deadline", "tail-latency"],
        "tunables": [{"name": "latency_budget_us", "type": "uint", "default": 2000, "min": 100,
                      "max": 100000, "description": "deadline budget", "unit": "us"}],
    },
    "cgroup_fair": {
        "description": "Fair share between cgroups by their cpu.weight, then fair within each cgroup, so one "
                       "group of processes cannot starve another.",
        "target_workloads": ["UNKNOWN_WORKLOAD"],
        "tags": ["cgroup", "fair", "multi-tenant"],
        "tunables": [],
    },
}

#: Kind of each fixture policy, as words that would appear in a real library
#: scheduler's name or tags (used to map labels onto bpf/). Checked in this
#: order, most specific first: real fair schedulers also carry "vtime" tags.
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "cgroup_fair": ("cgroup",),
    "edf_latency": ("edf", "deadline"),
    "ljf_batch": ("ljf", "longest"),
    "las": ("las", "sjf", "shortest"),
    "interactive_boost": ("interactive", "iboost"),
    "cache_locality": ("locality",),
    "fifo": ("fifo",),
    "vtime_fair": ("vtime", "weighted"),
}

#: (workload description, the fixture policy that suits it)
LABELLED_QUERIES: list[tuple[str, str]] = [
    ("nightly data pipeline where a handful of huge jobs finish last and hold up the whole run", "ljf_batch"),
    ("the batch is only done when its slowest tasks are done; get the big ones going early", "ljf_batch"),
    ("kernel compile with make -j spawning thousands of short gcc processes", "las"),
    ("lots of tiny jobs mixed with a few big ones; want the small ones out of the way fast", "las"),
    ("nginx web server where the 99th percentile response time must stay under 5 ms", "edf_latency"),
    ("memcached key-value cache with a strict response-time SLO", "edf_latency"),
    ("desktop session: keep the editor and the music player responsive while a backup runs", "interactive_boost"),
    ("a video game stutters whenever a compile job runs alongside it", "interactive_boost"),
    ("dense matrix multiplication whose threads lose performance when moved between cores", "cache_locality"),
    ("scientific simulation that thrashes the L2 cache when migrated across processors", "cache_locality"),
    ("docker containers of different tenants sharing one host, each entitled to its share", "cgroup_fair"),
    ("kubernetes pods with CPU weights; a noisy neighbour pod must not starve the others", "cgroup_fair"),
    ("embarrassingly parallel number crunching, lowest scheduling overhead, no fairness needed", "fifo"),
    ("every process should get CPU time proportional to its nice value", "vtime_fair"),
    ("proportional CPU sharing between processes according to their priority", "vtime_fair"),
]
