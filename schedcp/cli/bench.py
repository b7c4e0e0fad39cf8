"""``schedcp bench``: a workload under EEVDF and a scheduler, A/B in one run.

    schedcp bench WORKLOAD --sched NAME [--set KEY=VALUE]... [--param KEY=VALUE]...
                  [--repeat N] [--warmup N] [--node vm|host] [--json] [--out FILE.json]
                  [--plot FILE.png]
    schedcp bench --list

``--sched eevdf`` measures only the baseline (useful on a host without
sched_ext). Progress goes to stderr; the result (a table, or JSON with
``--json``) to stdout. Exit 0 when the comparison ran, whatever its outcome.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from schedcp.errors import InvalidArgument


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="A/B a workload under EEVDF and a sched_ext scheduler",
        description="Run WORKLOAD under EEVDF and under --sched, interleaved in one run "
                    "(one VM boot), and report medians, spreads and ratios (>1 = better than EEVDF).")
    p.add_argument("workload", nargs="?", help="reference workload (see --list)")
    p.add_argument("--list", action="store_true", help="list the workloads and their metrics")
    p.add_argument("--sched", help="scheduler name in bpf/, a .bpf.c path, or 'eevdf' for baseline only")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="scheduler tunable (repeatable)")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="workload parameter (repeatable)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions per arm (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="unrecorded EEVDF runs first (default 1)")
    p.add_argument("--node", choices=("vm", "host"), default="vm", help="where to run (default vm)")
    p.add_argument("--vcpus", type=int, default=2, help="micro-VM vCPUs (default 2)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", type=Path, help="also write the JSON result to this file")
    p.add_argument("--plot", type=Path, help="write a PNG plot of the comparison")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"{flag} {item!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    from schedcp.workloads import WORKLOADS, get_workload

    if args.list:
        for w in WORKLOADS.values():
            metrics = ", ".join(f"{m.name} [{m.unit}, {'higher' if m.higher_is_better else 'lower'} better]"
                                for m in w.metrics)
            defaults = " ".join(f"{p.name}={p.default}" for p in w.params)
            print(f"{w.name:16} {w.workload_class:22} {w.summary}\n{'':16} metrics: {metrics}\n"
                  f"{'':16} params:  {defaults}")
        return 0
    if not args.workload:
        raise InvalidArgument("name a workload", hint="schedcp bench --list shows them")
    if not args.sched:
        raise InvalidArgument("--sched is required",
                              hint="name a scheduler from bpf/ (e.g. --sched fifo), or --sched eevdf "
                                   "to measure only the baseline")
    spec = get_workload(args.workload)
    params = spec.resolve_params(_pairs(args.params, "--param"))
    if args.sched == "eevdf" and args.sets:
        raise InvalidArgument("EEVDF takes no --set tunables")

    from schedcp.bench.engine import ABRunner
    from schedcp.bench.nodes import open_node

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    with open_node(args.node, vcpus=args.vcpus, progress=progress) as node:
        candidate = node.scheduler(args.sched, _pairs(args.sets, "--set"))
        result = ABRunner(node=node, progress=progress).compare(
            spec, candidate=candidate, repetitions=args.repeat, params=params, warmup=args.warmup)
    doc = result.to_dict()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    if args.plot:
        from schedcp.bench.plot import plot_result

        plot_result(result, args.plot)
        progress(f"plot written to {args.plot}")
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(render_table(result))
    return 0


def render_table(result) -> str:
    """A plain-text table of an ``ABResult`` for people."""
    from schedcp.bench.stats import format_ratio

    tun = ", ".join(f"{k}={v}" for k, v in sorted(result.tunables.items()))
    who = "EEVDF baseline only" if result.baseline_only else \
        f"{result.scheduler}{f' [{tun}]' if tun else ''} vs EEVDF"
    head = (f"{result.workload} ({result.workload_class}) on {result.node}: {who}, "
            f"{result.repetitions} interleaved repetitions, {result.duration_s:.0f} s")
    rows = [("metric", "EEVDF median (spread)", f"{result.scheduler} median (spread)", "ratio vs EEVDF (range)")]
    for m in result.metrics:
        direction = "higher" if m.higher_is_better else "lower"
        base = f"{m.baseline:.4g} {m.unit} (±{m.baseline_spread * 50:.0f}%)"
        if result.baseline_only:
            rows.append((f"{m.metric} [{direction} better]", base, "-", "-"))
            continue
        cand = f"{m.candidate:.4g} {m.unit} (±{m.spread * 50:.0f}%)"
        rng = "" if not (math.isfinite(m.ratio_min) and math.isfinite(m.ratio_max)) else \
            f" ({m.ratio_min:.2f}-{m.ratio_max:.2f})"
        rows.append((f"{m.metric} [{direction} better]", base, cand, format_ratio(m.ratio) + rng))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [head, ""]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if not result.baseline_only:
        lines += ["", f"score ({result.primary_metric}): {format_ratio(result.score)}; "
                      "spread = (max-min)/median / 2; range = worst..best pairing of runs"]
    return "\n".join(lines)
