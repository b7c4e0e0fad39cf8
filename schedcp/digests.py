"""Content digests and the canonical form of tunables.

The verifier signs, and the executor checks, digests of exactly these forms,
so they must never change meaning: ``sha256:<hex>`` over raw bytes, and over
the canonical JSON of a tunables mapping (sorted keys, no whitespace).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping

from schedcp.errors import InvalidArgument

TunableScalar = int | float | bool | str


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_tunables_json(tunables: Mapping[str, TunableScalar]) -> str:
    for key, value in tunables.items():
        if not isinstance(key, str) or not key:
            raise InvalidArgument(f"tunable name {key!r} must be a non-empty string")
        if not isinstance(value, bool | int | float | str):
            raise InvalidArgument(f"tunable {key} has unsupported type {type(value).__name__}",
                                  hint="tunables are integers, floats, booleans or strings")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgument(f"tunable {key} must be finite, not {value}")
    return json.dumps(dict(tunables), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_digest(tunables: Mapping[str, TunableScalar]) -> str:
    return sha256_digest(canonical_tunables_json(tunables).encode())


def tunables_from_proto(values: Mapping[str, object]) -> dict[str, TunableScalar]:
    """Convert a ``map<string, TunableValue>`` to plain Python values."""
    out: dict[str, TunableScalar] = {}
    for name, tv in values.items():
        kind = tv.WhichOneof("kind")  # type: ignore[attr-defined]
        if kind is None:
            raise InvalidArgument(f"tunable {name} has no value")
        out[name] = getattr(tv, kind)
    return out


def tunables_to_proto(tunables: Mapping[str, TunableScalar], target: object) -> None:
    """Fill a ``map<string, TunableValue>`` field (``target``) from plain values."""
    for name, value in tunables.items():
        tv = target[name]  # type: ignore[index]
        if isinstance(value, bool):
            tv.bool_value = value
        elif isinstance(value, int):
            tv.int_value = value
        elif isinstance(value, float):
            tv.float_value = value
        elif isinstance(value, str):
            tv.string_value = value
        else:
            raise InvalidArgument(f"tunable {name} has unsupported type {type(value).__name__}")
