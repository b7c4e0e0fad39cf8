"""Entry point of the ``schedcp`` CLI.

Each area registers its own subcommands from a module listed in
``COMMAND_MODULES``; a module exposes ``register(subparsers)`` and its handlers
return the process exit code. Exit codes: 0 success, 1 the operation ran and
failed (e.g. a verdict of fail), 2 usage or internal error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from schedcp.errors import SchedcpError

COMMAND_MODULES = [
    "schedcp.cli.stack",  # up, down, status, watch
    "schedcp.cli.vm",  # vm run
    "schedcp.cli.sched",  # sched load
    "schedcp.cli.bench",  # bench
    "schedcp.cli.verify",  # verify
    "schedcp.cli.deploy",  # deploy, rollback, nodes
    "schedcp.cli.observe",  # observe
    "schedcp.cli.policies",  # policies ...
    "schedcp.cli.optimize",  # optimize
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="schedcp",
        description="Control plane for agent-driven sched_ext scheduler optimisation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Areas land independently during development; a missing module
            # simply contributes no commands.
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Library warnings (e.g. a NATS reconnect) reach the user as plain lines.
    logging.basicConfig(level=logging.WARNING, format="schedcp: %(levelname)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SchedcpError as exc:
        print(f"schedcp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("schedcp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
