"""Seed the repository from the scheduler library in ``bpf/``.

Each library scheduler is ``bpf/<name>.bpf.c`` plus ``bpf/<name>.json``::

    {"name": "...", "description": "...", "version": "1" (optional),
     "target_workloads": ["BATCH_LONG_TAIL", ...], "tags": ["..."],
     "tunables": [{"name", "type": "int|uint|bool", "default", "min", "max", "description", "unit"}]}

Library policies enter as PROMOTED: they are reviewed code, not agent output.
Seeding is idempotent: an unchanged file is a no-op, and a changed source or
metadata without a new ``version`` gets the version "<version>+<digest prefix>",
so nothing already stored is ever rewritten.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schedcp.digests import sha256_digest

from .store import (
    InvalidPolicy,
    Policy,
    PolicyMetadata,
    PolicyNotFound,
    PolicyStatus,
    PolicyStore,
    PolicyVersionExists,
    WorkloadClass,
    content_digest,
    normalise_policy,
    tunable_from_json,
)


@dataclass(frozen=True)
class SeedReport:
    """What a seeding run did: refs stored, refs already present, files skipped with why."""

    stored: tuple[str, ...]
    unchanged: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]


def policy_from_metadata(meta: Mapping[str, Any], source: str, *, file_label: str = "") -> Policy:
    """Build a library Policy from a bpf/<name>.json document and its C source."""
    where = file_label or str(meta.get("name", "?"))
    try:
        name = str(meta["name"])
        description = str(meta["description"])
    except KeyError as exc:
        raise InvalidPolicy(f"{where}: metadata lacks {exc}", hint="see docs/bpf.md for the format") from None
    classes = []
    for cls in meta.get("target_workloads", []) or []:
        try:
            classes.append(WorkloadClass[str(cls)])
        except KeyError:
            raise InvalidPolicy(f"{where}: unknown target workload {cls!r}",
                                hint="use WorkloadClass names: " + ", ".join(c.name for c in WorkloadClass)) from None
    tags = tuple(str(t) for t in meta.get("tags", []) or [])
    tunables = tuple(tunable_from_json(t) for t in meta.get("tunables", []) or [])
    version = str(meta.get("version") or "1")
    return Policy(name=name, version=version, source=source,
                  metadata=PolicyMetadata(description=description, target_workloads=tuple(classes), tags=tags,
                                          author=str(meta.get("author", "schedcp library"))),
                  tunables=tunables)


def seed_from_library(store: PolicyStore, bpf_dir: Path | str) -> SeedReport:
    """Put every ``bpf/<name>.bpf.c`` that has a ``<name>.json`` as a PROMOTED policy.

    A scheduler whose files are unreadable or invalid is skipped with the
    reason (one bad file must not keep the rest of the library out); the
    caller decides whether skips are fatal.
    """
    bpf_dir = Path(bpf_dir)
    stored: list[str] = []
    unchanged: list[str] = []
    skipped: list[tuple[str, str]] = []
    for src in sorted(bpf_dir.glob("*.bpf.c")):
        stem = src.name[: -len(".bpf.c")]
        meta_path = src.with_name(f"{stem}.json")
        if not meta_path.exists():
            skipped.append((str(src), f"no metadata file {meta_path.name}"))
            continue
        try:
            meta = json.loads(meta_path.read_text())
            policy = normalise_policy(policy_from_metadata(meta, src.read_text(), file_label=str(meta_path)))
        except (OSError, ValueError, InvalidPolicy) as exc:
            skipped.append((str(meta_path), str(exc)))
            continue
        try:
            existing: Policy | None = store.get(policy.name, policy.version)
        except PolicyNotFound:
            existing = None
        if existing is not None and content_digest(existing) != content_digest(policy):
            # The library changed without a version bump: keep both, never rewrite.
            suffix = sha256_digest(content_digest(policy).encode())[7:19]
            policy = Policy(**{**policy.__dict__, "version": _bump(policy.version, suffix)})
        try:
            before = _exists(store, policy.name, policy.version)
            store.put(policy, status=PolicyStatus.PROMOTED)
        except PolicyVersionExists as exc:
            skipped.append((str(meta_path), str(exc)))
            continue
        (unchanged if before else stored).append(f"{policy.name}@{policy.version}")
    return SeedReport(stored=tuple(stored), unchanged=tuple(unchanged), skipped=tuple(skipped))


def _bump(version: str, suffix: str) -> str:
    base = re.sub(r"\+[0-9a-f]{12}$", "", version)
    return f"{base}+{suffix}"


def _exists(store: PolicyStore, name: str, version: str) -> bool:
    try:
        store.get(name, version)
    except PolicyNotFound:
        return False
    return True
