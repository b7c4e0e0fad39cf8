"""Tunables: validation and clamping against a policy's schema, and a deterministic search.

A policy's tunables schema (``TunableSpec``: type, default, min, max) is the
only authority on what a value may be. Anything proposed for a tunable (by the
LLM, by history, by the search below) passes through :func:`sanitize_tunables`
before it can reach a Plan: unknown names are dropped, wrong types rejected,
numbers clamped into range. The verifier then checks the same ranges again.

:func:`search_tunables` needs no LLM: it starts from the defaults and moves the
tunables whose meaning it can infer from their names (time slices, sleeper
credit) in the direction the workload's validated features suggest, then walks
each tunable alone (coordinate search). The verifier measures; the best wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from schedcp.digests import TunableScalar
from schedcp.errors import InvalidArgument
from schedcp.v1 import common_pb2, policy_pb2, profile_pb2

_INTEGER_TYPES = (policy_pb2.TUNABLE_INT, policy_pb2.TUNABLE_UINT)

#: Classes whose goal favours responsiveness: shorter slices, more sleeper credit.
LATENCY_CLASSES = frozenset({common_pb2.LATENCY_SERVER, common_pb2.INTERACTIVE_BACKGROUND})
#: Classes whose goal favours throughput/makespan: longer slices, fewer switches.
THROUGHPUT_CLASSES = frozenset(
    {common_pb2.BATCH_LONG_TAIL, common_pb2.CPU_THROUGHPUT, common_pb2.PARALLEL_BUILD}
)


class InvalidTunable(InvalidArgument):
    """A proposed tunable value has the wrong type or cannot be made valid."""


@dataclass(frozen=True)
class Range:
    """One tunable's schema in plain Python terms."""

    name: str
    kind: int
    default: TunableScalar
    minimum: float
    maximum: float

    @classmethod
    def from_spec(cls, spec: policy_pb2.TunableSpec) -> Range:
        field = spec.default.WhichOneof("kind")
        default: TunableScalar = getattr(spec.default, field) if field else 0
        lo, hi = float(spec.min), float(spec.max)
        if spec.type == policy_pb2.TUNABLE_UINT:
            lo = max(lo, 0.0)
        if hi < lo or (spec.min == 0 and spec.max == 0):
            # No usable range in the schema: the only value known to be valid is the default.
            hi = lo = float(default) if not isinstance(default, str) else 0.0
        return cls(name=spec.name, kind=spec.type, default=default, minimum=lo, maximum=hi)


def ranges(specs: Iterable[policy_pb2.TunableSpec]) -> dict[str, Range]:
    return {spec.name: Range.from_spec(spec) for spec in specs if spec.name}


def coerce(r: Range, value: object) -> TunableScalar:
    """Return ``value`` as a valid value of tunable ``r``: typed and clamped into range.

    Raises InvalidTunable when the value cannot mean anything for this tunable
    (a string or NaN for a number, a number for a boolean).
    """
    if r.kind == policy_pb2.TUNABLE_BOOL:
        if isinstance(value, bool):
            return value
        raise InvalidTunable(f"tunable {r.name} is a boolean, got {type(value).__name__}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTunable(f"tunable {r.name} is a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidTunable(f"tunable {r.name} must be finite, got {value}")
    clamped = min(max(float(value), r.minimum), r.maximum)
    if r.kind in _INTEGER_TYPES:
        # Round inward so the value stays inside a range with fractional bounds.
        rounded = round(clamped)
        if rounded < r.minimum:
            rounded = math.ceil(r.minimum)
        if rounded > r.maximum:
            rounded = math.floor(r.maximum)
        return int(rounded)
    return clamped


def sanitize_tunables(
    proposed: Mapping[str, object], specs: Mapping[str, Range], *, fill_defaults: bool = True
) -> tuple[dict[str, TunableScalar], list[str]]:
    """Make ``proposed`` valid for ``specs``; return the values and notes on what was changed."""
    notes: list[str] = []
    out: dict[str, TunableScalar] = {}
    for name, value in proposed.items():
        r = specs.get(name)
        if r is None:
            notes.append(f"dropped unknown tunable {str(name)[:40]!r}")
            continue
        try:
            fixed = coerce(r, value)
        except InvalidTunable as exc:
            notes.append(f"dropped {name}: {exc.message}")
            continue
        if fixed != value or type(fixed) is not type(value):
            notes.append(f"{name}: {value!r} -> {fixed!r} (range [{r.minimum:g}, {r.maximum:g}])")
        out[name] = fixed
    if fill_defaults:
        for name, r in specs.items():
            if name not in out:
                out[name] = r.default
    return out, notes


def _direction(name: str, profile: profile_pb2.WorkloadProfile) -> int:
    """+1 to grow, -1 to shrink, 0 when the name says nothing we can use."""
    cls = profile.workload_class
    goal = profile.goal.kind
    latency = cls in LATENCY_CLASSES or goal == common_pb2.GOAL_TAIL_LATENCY
    throughput = cls in THROUGHPUT_CLASSES or goal in (
        common_pb2.GOAL_MAKESPAN,
        common_pb2.GOAL_THROUGHPUT,
    )
    if latency == throughput:  # neither, or contradictory signals
        # Fall back on the measured shape: lots of waiting per wakeup wants
        # shorter slices; long CPU bursts with few wakeups want longer ones.
        f = profile.features
        if f.runqueue_wait_fraction > 0.2 or f.wakeups_per_s > 2000:
            latency, throughput = True, False
        elif f.cpu_utilization > 0.5 and f.wakeups_per_s < 200:
            latency, throughput = False, True
        else:
            return 0
    lowered = name.lower()
    if "slice" in lowered:
        return -1 if latency else 1
    if "lag" in lowered or "boost" in lowered:
        return 1 if latency else -1
    return 0


def search_tunables(
    specs: Sequence[policy_pb2.TunableSpec] | Mapping[str, Range],
    profile: profile_pb2.WorkloadProfile,
    *,
    limit: int = 4,
) -> list[dict[str, TunableScalar]]:
    """Deterministic candidate configurations, most promising first, all within range.

    Order: feature-informed move (x2, then x4) of the tunables whose direction
    is known, the defaults, then one-at-a-time steps (x0.5, x2) and boolean
    flips. Duplicates after clamping are dropped.
    """
    rs = specs if isinstance(specs, Mapping) else ranges(specs)
    if limit <= 0:
        return []
    defaults = {name: r.default for name, r in rs.items()}
    numeric = [r for r in rs.values() if r.kind != policy_pb2.TUNABLE_BOOL and r.kind != 0]
    numeric = [r for r in numeric if isinstance(r.default, int | float)]
    directed = {r.name: _direction(r.name, profile) for r in numeric}

    def moved(factor: float, only: str | None = None) -> dict[str, TunableScalar]:
        values: dict[str, TunableScalar] = dict(defaults)
        for r in numeric:
            if only is not None and r.name != only:
                continue
            d = directed[r.name] if only is None else 1
            if d == 0:
                continue
            base = float(r.default) if r.default else max(r.minimum, 1.0)
            values[r.name] = coerce(r, base * (factor if d > 0 else 1.0 / factor))
        return values

    ordered: list[dict[str, TunableScalar]] = []
    if any(directed.values()):
        ordered += [moved(2.0), moved(4.0)]
    ordered.append(dict(defaults))
    for r in numeric:
        for factor in (0.5, 2.0):
            ordered.append(moved(factor, only=r.name))
    for r in rs.values():
        if r.kind == policy_pb2.TUNABLE_BOOL and isinstance(r.default, bool):
            flipped = dict(defaults)
            flipped[r.name] = not r.default
            ordered.append(flipped)
    unique: list[dict[str, TunableScalar]] = []
    seen: set[tuple[tuple[str, TunableScalar], ...]] = set()
    for values in ordered:
        key = tuple(sorted(values.items()))
        if key not in seen:
            seen.add(key)
            unique.append(values)
    return unique[:limit]
