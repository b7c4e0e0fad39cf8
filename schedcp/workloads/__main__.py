"""``python -m schedcp.workloads``: list, build and run the reference workloads.

``run NAME [--param KEY=VALUE]...`` prints exactly one JSON object on stdout
(the last line), which is what a node hands back to ``schedcp bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from schedcp.errors import SchedcpError
from schedcp.workloads import WORKLOADS, get_workload, prepare, run_workload
from schedcp.workloads.native import set_cache_dir


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param wants KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _send_result(line: str) -> None:
    """Also write the result to the micro-VM's results channel, if there is one.

    Inside a schedcp guest ``$SCHEDCP_RESULTS`` names a FIFO the guest agent
    forwards to the host apart from the console; one write of one line under
    4 KiB never interleaves with other writers.
    """
    path = os.environ.get("SCHEDCP_RESULTS")
    if not path or len(line) >= 4096:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no reader: stdout still carries the result
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def render_reference() -> str:
    """Markdown tables of every workload's metrics and parameters."""
    lines: list[str] = []
    for w in WORKLOADS.values():
        lines += [f"### `{w.name}` ({w.workload_class})", "", w.summary, "",
                  f"Primary metric (what a performance check judges): `{w.primary_metric}`.", "",
                  "| metric | unit | better | meaning |", "|---|---|---|---|"]
        lines += [f"| `{m.name}` | {m.unit} | {'higher' if m.higher_is_better else 'lower'} | {m.description} |"
                  for m in w.metrics]
        lines += ["", "| parameter | default | range | meaning |", "|---|---|---|---|"]
        for p in w.params:
            rng = f"{p.minimum}..{p.maximum}" if p.maximum is not None else f">= {p.minimum}"
            lines.append(f"| `{p.name}` | {p.default} | {rng} | {p.description} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schedcp.workloads")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the workloads as JSON")
    sub.add_parser("markdown", help="print the workload reference tables (for docs/workloads.md)")
    build = sub.add_parser("build", help="build the workloads' C programs into the cache")
    build.add_argument("names", nargs="*")
    run = sub.add_parser("run", help="run one repetition and print its JSON result")
    run.add_argument("name")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--cache-dir", type=Path, default=None,
                     help="where the host built the workload programs")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "list":
            print(json.dumps([{
                "name": w.name, "class": w.workload_class, "summary": w.summary,
                "primary_metric": w.primary_metric,
                "metrics": [vars(m) for m in w.metrics],
                "params": [vars(p) for p in w.params],
            } for w in WORKLOADS.values()], indent=2))
        elif args.cmd == "markdown":
            print(render_reference(), end="")
        elif args.cmd == "build":
            for name in args.names or list(WORKLOADS):
                prepare(name)
        else:
            get_workload(args.name)
            set_cache_dir(args.cache_dir)
            line = run_workload(args.name, _params(args.param)).to_json()
            print(line, flush=True)
            _send_result(line)
    except SchedcpError as exc:
        print(f"schedcp.workloads: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
