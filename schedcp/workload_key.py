"""A stable key for "the same workload", shared by observer, planner, learner and repository.

The observer's classification of a short run can differ between two runs of
the same command (a batch job read as CPU_THROUGHPUT once and BATCH_LONG_TAIL
the next), so history keyed by workload class alone misses exact repeats. The
workload key is a digest of the command's *shape*: the executable's basename
and each argument with the parts that vary between runs of one workload
normalised away, so ``make -j8`` and ``make -j4``, or one script run with a
different seed, input path or pid, get the same key, and different programs
get different keys.

Normalisation (version 1; changing a rule changes every key, so bump the tag):

- argv[0] becomes its basename without a trailing version (``/usr/bin/python3.11``
  -> ``python``, ``gcc-12`` -> ``gcc``);
- after an interpreter or wrapper (python, sh, node, env, timeout, ...) the
  first plain argument is the program: its basename is kept (``bench.py``);
- numbers (``8``, ``-3``, ``1.5``, ``0x1f``, ``10k``, ``250ms``) become ``<n>``,
  digit runs inside a word become ``#`` (``-j8`` -> ``-j#``), paths become
  ``<path>``, long hex or uuid-like tokens become ``<id>``; ``--opt=value`` and
  ``NAME=value`` keep the option or name and normalise the value.

The argv comes from /proc and is untrusted (see services/observer/untrusted.py):
it is only classified by regular expressions and digested. Nothing is executed,
looked up on disk, or interpreted, and no part of it appears in the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from schedcp.digests import sha256_digest

#: Part of the digested document: a new normalisation rule must change it.
KEY_VERSION = "schedcp.workload-key/v1"

#: Shape of a valid key, for checking keys that arrive on the wire.
KEY_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")

#: Most arguments that contribute (the observer keeps at most 32 anyway).
MAX_ARGS = 32
#: Longest normalised token kept verbatim; longer ones are shortened with a digest.
MAX_TOKEN = 64

#: Programs that run another program named by their first plain argument.
_RUNNERS = frozenset(
    {
        "python", "pypy", "sh", "bash", "dash", "zsh", "ksh", "fish", "node", "nodejs", "deno",
        "bun", "perl", "ruby", "php", "lua", "luajit", "rscript", "java", "julia", "env", "nice",
        "ionice", "taskset", "chrt", "numactl", "timeout", "time", "stdbuf", "nohup", "setsid",
        "exec", "uv", "poetry", "pipenv",
    }
)

_NUMBER = re.compile(
    r"[-+]?(?:0x[0-9a-f]+|\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+)"
    r"(?:[kmgtp]i?b?|b|ns|us|ms|s|m|h|%|x)?",
    re.IGNORECASE,
)
# Numeric-looking lists and ranges: "0-3", "1,2,4", "2x4", "10:20".
_NUMERIC_LIST = re.compile(r"[-+]?[\d.]+(?:[-,:x/][\d.]+)+", re.IGNORECASE)
_ID = re.compile(r"(?=[^-]*\d)[0-9a-f]{8,}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                 re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_VERSION_SUFFIX = re.compile(r"(?<=[A-Za-z]{2})[-_.]?\d+(?:\.\d+)*$")


def _bounded(token: str) -> str:
    if len(token) <= MAX_TOKEN:
        return token
    # Two long arguments that share a prefix must still differ.
    return token[: MAX_TOKEN - 13] + "~" + sha256_digest(token.encode("utf-8", "surrogatepass"))[7:19]


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] or path


def executable_name(arg0: str) -> str:
    """argv[0] as a program name: basename, lower case, trailing version dropped."""
    name = _basename(arg0).lower()
    return _bounded(_VERSION_SUFFIX.sub("", name) or name)


def _value_shape(value: str) -> str:
    if not value:
        return ""
    if _NUMBER.fullmatch(value) or _NUMERIC_LIST.fullmatch(value):
        return "<n>"
    if "/" in value or value.startswith("~"):
        return "<path>"
    if _ID.fullmatch(value):
        return "<id>"
    return _bounded(_DIGITS.sub("#", value))


def argument_shape(arg: str) -> str:
    """One argument with its run-to-run variable parts normalised (see the module docstring)."""
    if arg.startswith("-") and "=" in arg:
        option, value = arg.split("=", 1)
        return f"{_value_shape(option)}={_value_shape(value)}"
    if _ASSIGNMENT.match(arg):
        name, value = arg.split("=", 1)
        return f"{_bounded(name)}={_value_shape(value)}"
    return _value_shape(arg)


def _is_plain(arg: str) -> bool:
    """A candidate for "the program" after a runner: not an option, number or assignment."""
    return bool(arg) and not arg.startswith("-") and not _ASSIGNMENT.match(arg) and (
        _value_shape(arg) not in ("<n>", "<id>")
    )


def command_shape(argv: Sequence[str]) -> list[str]:
    """The normalised tokens of a command line; [] for an empty one."""
    argv = [str(a) for a in argv[:MAX_ARGS]]
    if not argv or not argv[0]:
        return []
    shape = [executable_name(argv[0])]
    runner = shape[0] in _RUNNERS
    for arg in argv[1:]:
        if runner and _is_plain(arg):
            # The script or program a runner starts is the workload's identity:
            # keep its basename ("bench.py"), not just "<path>".
            # Inline code ("sh -c 'a; b'") is kept whole, a path by its basename.
            program = arg if any(c.isspace() for c in arg) else _basename(arg)
            shape.append(_bounded(program))
            runner = executable_name(program) in _RUNNERS  # "env python x.py"
            continue
        shape.append(argument_shape(arg))
    return shape


def workload_key(cmdline: Sequence[str], *, comm: str = "", name: str = "") -> str:
    """``sha256:<hex>`` of the command's shape; '' when there is nothing to identify.

    ``cmdline`` wins; without it the label ``name`` (split on spaces) and then
    the kernel's ``comm`` stand in, so a profile that only carries a label
    still gets a key.
    """
    argv: Sequence[str] = [a for a in cmdline if a] or name.split() or ([comm] if comm else [])
    shape = command_shape(argv)
    if not shape:
        return ""
    document = json.dumps([KEY_VERSION, shape], separators=(",", ":"), ensure_ascii=True)
    return sha256_digest(document.encode())


def identity_key(identity: Any) -> str:
    """The key of a ``WorkloadIdentity`` message (cmdline, then name, then comm)."""
    return workload_key(list(identity.cmdline), comm=identity.comm, name=identity.name)


def profile_workload_key(profile: Any) -> str:
    """The key of a ``WorkloadProfile``: derived from its identity, else its carried key.

    Derived whenever the identity allows, so a key cannot be claimed without
    the command that produces it; the carried ``workload_key`` only serves
    profiles whose identity was stripped, and only when it is well formed.
    """
    derived = identity_key(profile.workload)
    if derived:
        return derived
    carried = str(getattr(profile, "workload_key", ""))
    return carried if is_workload_key(carried) else ""


def is_workload_key(value: str) -> bool:
    return bool(KEY_PATTERN.fullmatch(value))
