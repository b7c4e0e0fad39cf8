"""Benchmark of the policy repository: embedding throughput, search latency at scale, store size.

    .venv/bin/python bench/repository.py [--policies 10000] [--threads 1] [--out docs/benchmarks-repository.md]

Builds an embedded (SQLite) store of synthetic policies in a temporary
directory with the real embedding model, then measures search latency (with
and without filters, end to end including embedding the query), embedding
throughput, and bytes on disk per policy. It also reports search quality on
the labelled workload descriptions with the fixture library hidden among the
synthetic policies. Results are written as markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration" / "repository"))

from library import FIXTURE_LIBRARY, LABELLED_QUERIES  # noqa: E402

from services.repository.embeddings import MiniLmEmbedder  # noqa: E402
from services.repository.seed import policy_from_metadata  # noqa: E402
from services.repository.sqlite_store import SqliteStore  # noqa: E402
from services.repository.store import (  # noqa: E402
    PerformanceRecord,
    Policy,
    PolicyMetadata,
    PolicyStatus,
    SearchQuery,
    TunableSpec,
    TunableType,
    WorkloadClass,
)

ORDERING = [
    "virtual runtime",
    "arrival order",
    "remaining work",
    "attained service",
    "deadline",
    "wakeup frequency",
    "cgroup weight",
    "cache affinity",
    "task age",
    "queue length",
]
PLACEMENT = [
    "the previous CPU when idle",
    "any idle core",
    "the least loaded CPU",
    "the same LLC domain",
    "a per-NUMA-node queue",
    "a single global queue",
    "per-CPU queues with stealing",
]
GOALS = [
    "throughput of CPU-bound jobs",
    "p99 request latency",
    "batch makespan",
    "desktop responsiveness",
    "fairness between containers",
    "build completion time",
    "energy efficiency",
    "cache hit rate",
]
SLICES = ["short slices", "long slices", "adaptive slices", "slices scaled by priority"]


def synthetic_policies(n: int, rng: random.Random) -> list[Policy]:
    """Varied, plausible policies: descriptions and header comments from combinations of design choices."""
    out = []
    classes = list(WorkloadClass)
    for i in range(n):
        order, place, goal, sl = (
            rng.choice(ORDERING),
            rng.choice(PLACEMENT),
            rng.choice(GOALS),
            rng.choice(SLICES),
        )
        description = f"Orders runnable tasks by {order} and places them on {place}, with {sl}; aimed at {goal}."
        # One header paragraph long enough to be embedded as a passage (real
        # library headers give three or four).
        header = (f"/*\n * synth{i}: {order}.\n *\n"
                  f" * Where it fits: machines where {goal} matters most, using {sl}.\n */\n")
        body = "\n".join(
            f"static int helper_{i}_{k}(int x) {{ return x * {k} + {i}; }}" for k in range(60)
        )
        out.append(
            Policy(
                name=f"synth{i}",
                version="1",
                source=header + body,
                metadata=PolicyMetadata(
                    description=description,
                    target_workloads=(rng.choice(classes),),
                    tags=(order.split()[0], place.split()[-1]),
                ),
                tunables=(
                    TunableSpec("slice_us", TunableType.UINT, 5000, 100, 100000, "slice", "us"),
                ),
            )
        )
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1, choices=(1, 2))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks-repository.md")
    args = parser.parse_args()
    rng = random.Random(7)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    # --- embedding throughput
    throughput = {}
    sentences = [p.metadata.description for p in synthetic_policies(512, random.Random(1))]
    for threads in (1, 2):
        emb = MiniLmEmbedder(threads=threads)
        emb.embed(sentences[:32])  # warm-up
        start = time.perf_counter()
        emb.embed(sentences)
        throughput[threads] = len(sentences) / (time.perf_counter() - start)
    start = time.perf_counter()
    MiniLmEmbedder(threads=1)
    load_s = time.perf_counter() - start

    embedder = MiniLmEmbedder(threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policies.db"
        store = SqliteStore(path, embedder=embedder)
        # The labelled library hides among the synthetic policies.
        for name, meta in FIXTURE_LIBRARY.items():
            store.put(
                policy_from_metadata({"name": name, **meta}, f"/* {name} */\n"),
                status=PolicyStatus.PROMOTED,
            )
        policies = synthetic_policies(args.policies, rng)
        start = time.perf_counter()
        for k in range(0, len(policies), 500):
            store.put_many(policies[k : k + 500], status=PolicyStatus.PROMOTED)
        build_s = time.perf_counter() - start
        # Some history, so ranking reads performance rows as it would in use.
        for i in range(0, args.policies, 10):
            store.record_outcome(
                f"synth{i}",
                "1",
                PerformanceRecord(
                    workload_class=WorkloadClass.CPU_THROUGHPUT,
                    metric="ops",
                    ratio=0.8 + rng.random(),
                    source="deployment",
                    source_id=f"o{i}",
                ),
                event_id=f"perf:deployment:o{i}",
            )
        counts = store.counts()
        store.close()
        conn_store = SqliteStore(path, embedder=embedder)  # cold start: index rebuilt from disk
        start = time.perf_counter()
        conn_store.search(SearchQuery(text="warm-up query"))
        first_search_s = time.perf_counter() - start
        store = conn_store

        texts = [q for q, _ in LABELLED_QUERIES] + [
            f"workload that needs {rng.choice(GOALS)} with {rng.choice(SLICES)}"
            for _ in range(args.queries)
        ]
        plain, filtered, embed_only = [], [], []
        for text in texts:
            t0 = time.perf_counter()
            embedder.embed([text])
            embed_only.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.search(SearchQuery(text=text, limit=5))
            plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.search(
                SearchQuery(
                    text=text,
                    limit=5,
                    workload_classes=(WorkloadClass.LATENCY_SERVER,),
                    keywords=("deadline",),
                )
            )
            filtered.append(time.perf_counter() - t0)
        ranks = []
        for text, expected in LABELLED_QUERIES:
            names = [h.policy.name for h in store.search(SearchQuery(text=text, limit=100))]
            ranks.append(names.index(expected) + 1 if expected in names else 101)
        store.close()
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
        source_bytes = sum(len(p.source.encode()) for p in policies) / len(policies)

    n_total = args.policies + len(FIXTURE_LIBRARY)
    ms = 1000.0
    say("# Repository benchmarks")
    say()
    say(
        f"Reproduce: `.venv/bin/python bench/repository.py --policies {args.policies} --threads {args.threads}` "
        f"(writes this file). Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other work, "
        f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}. Load average when finished: "
        f"{os.getloadavg()[0]:.1f} (other helpers' VMs were running: treat latencies as upper bounds)."
    )
    say()
    say("## Embedding (all-MiniLM-L6-v2 int8 ONNX, onnxruntime, CPU)")
    say()
    say("| threads | sentences/s (batch 32, ~25-word policy descriptions) |")
    say("|---|---|")
    for threads, value in throughput.items():
        say(f"| {threads} | {value:.0f} |")
    say()
    say(f"Model + tokenizer load: {load_s:.2f} s.")
    say()
    say(f"## Search at {n_total} policies ({counts['vectors']} vectors)")
    say()
    say(
        f"Embedded SQLite store, {args.threads} embedding thread(s); {len(texts)} queries, limit 5. "
        "Latency is end to end: embed the query, filter in SQL, score every vector with numpy, re-rank the "
        "best 50 policies with history and class affinity, load the hits."
    )
    say()
    say("| query | p50 ms | p99 ms |")
    say("|---|---|---|")
    say(f"| text only | {percentile(plain, 50) * ms:.1f} | {percentile(plain, 99) * ms:.1f} |")
    say(
        f"| text + class filter + keyword | {percentile(filtered, 50) * ms:.1f} | "
        f"{percentile(filtered, 99) * ms:.1f} |"
    )
    say(
        f"| (of which embedding the query) | {percentile(embed_only, 50) * ms:.1f} | "
        f"{percentile(embed_only, 99) * ms:.1f} |"
    )
    say()
    say(
        f"First search after opening the store (index rebuilt from SQLite): {first_search_s * ms:.0f} ms."
    )
    say(
        f"Building the store: {build_s:.0f} s for {args.policies} policies "
        f"({args.policies / build_s:.0f} policies/s, dominated by embedding ~3 texts per policy)."
    )
    say()
    say("## Store size")
    say()
    say(
        f"{size / 1e6:.1f} MB on disk for {n_total} policies: **{size / n_total / 1024:.1f} KiB per policy**, "
        f"of which the scheduler source is {source_bytes / 1024:.1f} KiB on average and each 384-d float32 "
        f"vector 1.5 KiB (~{counts['vectors'] / n_total:.1f} vectors per policy: description + header passages)."
    )
    say()
    say("## Search quality at scale")
    say()
    say(f"The {len(LABELLED_QUERIES)} labelled workload descriptions (tests/integration/repository/library.py) "
        f"against the 8 fixture policies hidden among {args.policies} synthetic ones. The synthetic policies are "
        "deliberately on-topic (\"aimed at p99 request latency\", \"batch makespan\"...), so many of them are "
        "legitimate answers too; this shows how far the hand-written policy sinks in a crowded repository, "
        "not an error rate.")
    say()
    say(f"Rank of the expected policy: median {statistics.median(ranks):.0f}, "
        f"in the top 3 for {sum(r <= 3 for r in ranks)}/{len(ranks)}, in the top 10 for "
        f"{sum(r <= 10 for r in ranks)}/{len(ranks)}, not in the top 100 for {sum(r > 100 for r in ranks)}.")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
