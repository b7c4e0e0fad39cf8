"""Scheduler metadata (``bpf/<name>.json``) and tunable values.

Every scheduler ships a JSON file next to its source (format in docs/bpf.md)::

    {"name": "fifo", "description": "...",
     "target_workloads": ["CPU_THROUGHPUT"], "tags": ["baseline"],
     "tunables": [{"name": "slice_us", "type": "uint", "default": 20000,
                   "min": 100, "max": 1000000, "description": "...", "unit": "us"}]}

Tunables are the scheduler's ``const volatile`` globals; the loader writes them
into ``.rodata`` before load. This module is pure: parsing, validation and the
byte encoding, no I/O beyond reading a file the caller names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from schedcp.errors import InvalidArgument

TUNABLE_TYPES = ("int", "uint", "bool")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_SCHED_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def _workload_classes() -> frozenset[str]:
    from schedcp.v1 import common_pb2

    names = common_pb2.WorkloadClass.keys()
    return frozenset(n for n in names if n != "WORKLOAD_CLASS_UNSPECIFIED")


class MetadataError(InvalidArgument):
    """A scheduler's metadata file is malformed."""

    code = "invalid_metadata"


class TunableError(InvalidArgument):
    """A tunable value is unknown, of the wrong type, or out of range."""

    code = "invalid_tunable"


@dataclass(frozen=True)
class TunableSpec:
    name: str
    type: str  # "int" | "uint" | "bool"
    default: int | bool
    min: int | None = None
    max: int | None = None
    description: str = ""
    unit: str = ""

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"name": self.name, "type": self.type, "default": self.default,
                                "description": self.description, "unit": self.unit}
        if self.type != "bool":
            d["min"], d["max"] = self.min, self.max
        return d

    def coerce(self, value: object) -> int | bool:
        """Convert ``value`` (a Python value or a ``--set`` string) and range-check it."""
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
                return _BOOL_WORDS[value.strip().lower()]
            raise TunableError(f"tunable {self.name} is a bool, got {value!r}",
                               hint="use true/false (or 1/0)")
        if isinstance(value, bool):
            raise TunableError(f"tunable {self.name} is an {self.type}, got bool {value!r}")
        if isinstance(value, str):
            try:
                value = int(value.strip(), 0)
            except ValueError:
                raise TunableError(f"tunable {self.name} is an {self.type}, got {value!r}",
                                   hint="use a decimal (or 0x hex) integer") from None
        if not isinstance(value, int):
            raise TunableError(f"tunable {self.name} is an {self.type}, got {type(value).__name__}")
        if self.type == "uint" and value < 0:
            raise TunableError(f"tunable {self.name} is unsigned, got {value}")
        if self.min is not None and value < self.min:
            raise TunableError(f"tunable {self.name}={value} is below its minimum {self.min}",
                               hint=f"allowed range {self.min}..{self.max}")
        if self.max is not None and value > self.max:
            raise TunableError(f"tunable {self.name}={value} is above its maximum {self.max}",
                               hint=f"allowed range {self.min}..{self.max}")
        return value


_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
               "on": True, "off": False}


@dataclass(frozen=True)
class SchedulerMetadata:
    name: str
    description: str
    target_workloads: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    tunables: tuple[TunableSpec, ...] = field(default=())

    def tunable(self, name: str) -> TunableSpec:
        for t in self.tunables:
            if t.name == name:
                return t
        known = ", ".join(t.name for t in self.tunables) or "none"
        raise TunableError(f"scheduler {self.name} has no tunable {name!r}",
                           hint=f"known tunables: {known}")

    def resolve(self, values: Mapping[str, object]) -> dict[str, int | bool]:
        """Check ``values`` and return them coerced (defaults are NOT filled in:
        the compiled-in default already is the default)."""
        return {k: self.tunable(k).coerce(v) for k, v in values.items()}

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description,
                "target_workloads": list(self.target_workloads), "tags": list(self.tags),
                "tunables": [t.to_dict() for t in self.tunables]}


def _int_field(d: Mapping[str, object], key: str, where: str) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise MetadataError(f"{where}: {key} must be an integer, got {v!r}")
    return v


def parse_metadata(data: Mapping[str, object], *, source: str = "metadata") -> SchedulerMetadata:
    """Validate a decoded metadata document; raise :class:`MetadataError` naming the field."""
    if not isinstance(data, Mapping):
        raise MetadataError(f"{source}: must be a JSON object")
    unknown = set(data) - {"name", "description", "target_workloads", "tags", "tunables"}
    if unknown:
        raise MetadataError(f"{source}: unknown field(s) {sorted(unknown)}",
                            hint="allowed: name, description, target_workloads, tags, tunables")
    name = data.get("name")
    if not isinstance(name, str) or not _SCHED_NAME_RE.match(name):
        raise MetadataError(f"{source}: name must match {_SCHED_NAME_RE.pattern}, got {name!r}")
    desc = data.get("description")
    if not isinstance(desc, str) or not desc.strip():
        raise MetadataError(f"{source}: description must be a non-empty string")
    classes = _workload_classes()
    workloads = data.get("target_workloads", [])
    if not isinstance(workloads, list) or not all(isinstance(w, str) for w in workloads):
        raise MetadataError(f"{source}: target_workloads must be a list of strings")
    bad = [w for w in workloads if w not in classes]
    if bad:
        raise MetadataError(f"{source}: unknown workload class(es) {bad}",
                            hint=f"use WorkloadClass names: {', '.join(sorted(classes))}")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise MetadataError(f"{source}: tags must be a list of non-empty strings")
    raw_tunables = data.get("tunables", [])
    if not isinstance(raw_tunables, list):
        raise MetadataError(f"{source}: tunables must be a list")
    specs: list[TunableSpec] = []
    seen: set[str] = set()
    for i, t in enumerate(raw_tunables):
        where = f"{source}: tunables[{i}]"
        if not isinstance(t, Mapping):
            raise MetadataError(f"{where} must be an object")
        extra = set(t) - {"name", "type", "default", "min", "max", "description", "unit"}
        if extra:
            raise MetadataError(f"{where}: unknown field(s) {sorted(extra)}")
        tname = t.get("name")
        if not isinstance(tname, str) or not _NAME_RE.match(tname):
            raise MetadataError(f"{where}: name must be a C identifier, got {tname!r}")
        if tname in seen:
            raise MetadataError(f"{where}: duplicate tunable {tname}")
        seen.add(tname)
        ttype = t.get("type")
        if ttype not in TUNABLE_TYPES:
            raise MetadataError(f"{where} ({tname}): type must be one of {TUNABLE_TYPES}, "
                                f"got {ttype!r}")
        tdesc = t.get("description", "")
        unit = t.get("unit", "")
        if not isinstance(tdesc, str) or not isinstance(unit, str):
            raise MetadataError(f"{where} ({tname}): description and unit must be strings")
        default = t.get("default")
        if ttype == "bool":
            if not isinstance(default, bool):
                raise MetadataError(f"{where} ({tname}): default of a bool must be true/false")
            if "min" in t or "max" in t:
                raise MetadataError(f"{where} ({tname}): a bool has no min/max")
            specs.append(TunableSpec(tname, ttype, default, None, None, tdesc, unit))
            continue
        lo, hi = _int_field(t, "min", where), _int_field(t, "max", where)
        if lo is None or hi is None:
            raise MetadataError(f"{where} ({tname}): int/uint tunables need min and max")
        if lo > hi:
            raise MetadataError(f"{where} ({tname}): min {lo} > max {hi}")
        if ttype == "uint" and lo < 0:
            raise MetadataError(f"{where} ({tname}): a uint cannot have a negative min")
        if isinstance(default, bool) or not isinstance(default, int) or not lo <= default <= hi:
            raise MetadataError(f"{where} ({tname}): default must be an integer in [{lo}, {hi}], "
                                f"got {default!r}")
        specs.append(TunableSpec(tname, ttype, default, lo, hi, tdesc, unit))
    return SchedulerMetadata(name=name, description=desc.strip(),
                             target_workloads=tuple(workloads), tags=tuple(tags),
                             tunables=tuple(specs))


def load_metadata(path: Path) -> SchedulerMetadata:
    """Read and validate ``<name>.json``."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MetadataError(f"metadata file {path} does not exist",
                            hint="every scheduler in bpf/ needs a <name>.json next to it") from None
    except json.JSONDecodeError as exc:
        raise MetadataError(f"{path}: not valid JSON: {exc}") from None
    return parse_metadata(data, source=str(path))


def metadata_for_source(source: Path) -> SchedulerMetadata | None:
    """The metadata next to ``X.bpf.c`` (``X.json``), or None if there is none."""
    p = Path(source)
    cand = p.with_name(p.name.removesuffix(".c").removesuffix(".bpf") + ".json")
    return load_metadata(cand) if cand.is_file() else None


def parse_set_args(items: list[str]) -> dict[str, str]:
    """``["slice_us=5000", ...]`` -> ``{"slice_us": "5000"}`` (values still strings)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _NAME_RE.match(key):
            raise TunableError(f"--set {item!r} is not KEY=VALUE",
                               hint="for example --set slice_us=5000")
        out[key] = value.strip()
    return out


# ---- rodata encoding (used by the loader; pure so it can be unit-tested) ----

def encode_scalar(value: int | bool, *, size: int, signed: bool, is_bool: bool, name: str) -> bytes:
    """Little-endian bytes for a ``const volatile`` global of ``size`` bytes.

    ``signed``/``is_bool`` come from the variable's BTF type, so a tunable is
    checked against what the program really declared, not just the metadata.
    """
    if size not in (1, 2, 4, 8):
        raise TunableError(f"tunable {name} has unsupported size {size} bytes",
                           hint="tunables must be scalar integers or bools")
    if is_bool:
        if not isinstance(value, bool) and value not in (0, 1):
            raise TunableError(f"tunable {name} is a bool in the program, got {value!r}")
        return int(bool(value)).to_bytes(size, "little")
    if isinstance(value, bool):
        value = int(value)
    bits = size * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= value <= hi:
        kind = "signed" if signed else "unsigned"
        raise TunableError(f"tunable {name}={value} does not fit the program's {bits}-bit "
                           f"{kind} variable", hint=f"range {lo}..{hi}")
    return value.to_bytes(size, "little", signed=signed)


def decode_scalar(data: bytes, *, signed: bool, is_bool: bool) -> int | bool:
    v = int.from_bytes(data, "little", signed=signed)
    return bool(v) if is_bool else v
