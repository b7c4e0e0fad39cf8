"""Load, watch and unload a sched_ext scheduler with libbpf (ctypes).

Runs wherever sched_ext is: inside a micro-VM guest (host python over
virtiofs, driven by :class:`schedcp.substrate.nodes.VmNode`) or on a real host
(:class:`schedcp.substrate.nodes.HostNode`). ``python -m
schedcp.substrate.loader`` is the JSON entry point the nodes call.

Why ctypes on libbpf.so.1 instead of ``bpftool struct_ops register``: bpftool
cannot set ``const volatile`` tunables before load, cannot change ops fields
such as ``timeout_ms``, and its verifier log goes to a terminal. Here:

1. open the object; write tunables into ``.rodata`` by variable name, each
   type- and range-checked against the program's BTF (and the metadata when
   given); optionally patch ops fields in the struct_ops map;
2. load, capturing everything libbpf prints, which includes the kernel
   verifier log on rejection;
3. attach the struct_ops map and pin the link under
   ``/sys/fs/bpf/schedcp/<name>/link`` so the scheduler outlives this process;
   the exit-info map (schedcp/exit_info.bpf.h) is pinned beside it;
4. confirm ``/sys/kernel/sched_ext/state`` is ``enabled`` and ``root/ops``
   names the scheduler;
5. later: :func:`watch` notices an ejection (watchdog stall, scx_bpf_error)
   and reports kind + reason from the exit-info map and the kernel log;
   :func:`unload` removes the pins, which detaches the scheduler.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import json
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from schedcp.substrate import SubstrateError
from schedcp.substrate.sched_metadata import (
    SchedulerMetadata,
    TunableError,
    decode_scalar,
    encode_scalar,
    load_metadata,
    parse_set_args,
)

SCX_SYSFS = Path("/sys/kernel/sched_ext")
BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "schedcp"
EXIT_MAP_NAME = "schedcp_exit"

#: struct schedcp_exit_info in bpf/include/schedcp/exit_info.bpf.h
EXIT_INFO_LAYOUT = {"kind": (0, 4), "recorded": (4, 4), "exit_code": (8, 8),
                    "reason": (16, 128), "msg": (144, 1024)}
EXIT_INFO_SIZE = 1168

#: enum scx_exit_kind, for humans
EXIT_KINDS = {0: "none", 1: "done", 64: "unregistered", 65: "unregistered by BPF",
              66: "unregistered by kernel", 67: "sysrq", 68: "parent",
              1024: "error", 1025: "scx_bpf_error", 1026: "runnable task stall"}

_BTF_KIND_INT, _BTF_KIND_ENUM, _BTF_KIND_TYPEDEF = 1, 6, 8
_BTF_KIND_VOLATILE, _BTF_KIND_CONST, _BTF_KIND_RESTRICT = 9, 10, 11
_BTF_KIND_STRUCT, _BTF_KIND_VAR, _BTF_KIND_DATASEC, _BTF_KIND_TYPE_TAG = 4, 14, 15, 18
_BTF_INT_SIGNED, _BTF_INT_BOOL = 0x1, 0x4
_BPF_MAP_TYPE_STRUCT_OPS = 26


# ---------------------------------------------------------------- errors

class LoaderError(SubstrateError):
    """Loading, watching or unloading a scheduler failed."""

    code = "loader"

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"code": self.code, "message": self.message, "hint": self.hint}
        for k, v in self.details.items():
            d[k] = v
        return d


class NoSchedExt(LoaderError):
    """This kernel has no sched_ext, or we may not use it."""

    code = "no_sched_ext"


class SchedulerBusy(LoaderError):
    """Another sched_ext scheduler is already enabled."""

    code = "busy"


class VerifierRejected(LoaderError):
    """The kernel (or libbpf, before it) refused the program; ``log`` says why."""

    code = "verifier_rejected"


class AttachFailed(LoaderError):
    """The program loaded but the kernel refused to enable it."""

    code = "attach_failed"


class Ejected(LoaderError):
    """The kernel disabled the scheduler after it was enabled."""

    code = "ejected"


# ---------------------------------------------------------------- data

@dataclass
class ExitInfo:
    """Why the kernel disabled a scheduler (from ops.exit and/or the kernel log)."""

    kind: int = 0
    kind_name: str = "none"
    exit_code: int = 0
    reason: str = ""
    msg: str = ""
    recorded: bool = False  # ops.exit() ran and the exit-info map has it
    kernel_log: list[str] = field(default_factory=list)  # "sched_ext: ..." lines

    @classmethod
    def from_bytes(cls, data: bytes) -> ExitInfo:
        def field_(name: str) -> bytes:
            off, size = EXIT_INFO_LAYOUT[name]
            return data[off:off + size]

        kind = int.from_bytes(field_("kind"), "little", signed=True)
        return cls(kind=kind, kind_name=EXIT_KINDS.get(kind, f"kind {kind}"),
                   exit_code=int.from_bytes(field_("exit_code"), "little", signed=True),
                   reason=field_("reason").split(b"\0", 1)[0].decode(errors="replace"),
                   msg=field_("msg").split(b"\0", 1)[0].decode(errors="replace"),
                   recorded=bool(int.from_bytes(field_("recorded"), "little")))

    def summary(self) -> str:
        text = self.reason or self.kind_name
        if self.msg and self.msg != self.reason:
            text += f": {self.msg}"
        return text


@dataclass
class LoadResult:
    name: str  # ops name, as /sys/kernel/sched_ext/root/ops shows it
    pin_dir: str
    state: str
    tunables: dict[str, int | bool]
    ops_overrides: dict[str, int]
    open_ms: float
    load_ms: float  # bpf_object__load: verification included
    attach_ms: float  # attach + pin + state confirmed enabled
    total_ms: float
    libbpf_log: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class SchedState:
    sched_ext_state: str  # enabled | disabled | enabling | disabling | ...
    root_ops: str  # "" when none
    name: str | None = None
    pinned: bool = False
    enabled: bool = False  # this scheduler (name) is the enabled one
    ejected: bool = False  # pinned (we did not unload) but no longer enabled
    exit: ExitInfo | None = None

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        return d


# ---------------------------------------------------------------- sysfs

def read_sched_ext_state() -> tuple[str, str]:
    """(state, root ops name) from sysfs; raises :class:`NoSchedExt` if absent."""
    if not SCX_SYSFS.is_dir():
        raise NoSchedExt(
            "this kernel has no sched_ext (/sys/kernel/sched_ext is missing)",
            hint="it needs CONFIG_SCHED_CLASS_EXT=y; use --node vm to run in a micro-VM")
    state = (SCX_SYSFS / "state").read_text().strip()
    ops_file = SCX_SYSFS / "root" / "ops"
    try:
        ops = ops_file.read_text().strip()
    except OSError:
        ops = ""
    return state, ops


CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def effective_capabilities(status: str | None = None) -> int:
    """The CapEff bitmask of this process (0 when /proc is unreadable)."""
    if status is None:
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            return 0
    m = re.search(r"^CapEff:\s*([0-9a-fA-F]+)$", status, re.M)
    return int(m.group(1), 16) if m else 0


def can_load_struct_ops(caps: int) -> bool:
    """Measured on the sched_ext kernel (docs/executor.md): CAP_BPF together
    with CAP_PERFMON loads and attaches a scheduler; CAP_SYS_ADMIN alone also
    does (the kernel accepts it in place of both)."""
    has = lambda bit: bool(caps >> bit & 1)  # noqa: E731
    return (has(CAP_BPF) and has(CAP_PERFMON)) or has(CAP_SYS_ADMIN)


def check_privileges() -> None:
    """Fail clearly unless we can load struct_ops programs here."""
    read_sched_ext_state()
    if not can_load_struct_ops(effective_capabilities()):
        raise NoSchedExt("loading a sched_ext scheduler needs CAP_BPF + CAP_PERFMON "
                         "(or CAP_SYS_ADMIN); this process has neither",
                         hint="run as root, grant those capabilities (see "
                              "deploy/systemd/schedcp-executor.service), or use --node vm")


def _ensure_bpffs() -> None:
    if not BPFFS.is_dir():
        raise NoSchedExt(f"{BPFFS} does not exist", hint="mount sysfs first")
    if not os.path.ismount(BPFFS):
        rc = os.system(f"mount -t bpf bpf {BPFFS} 2>/dev/null")  # noqa: S605 - fixed string
        if rc != 0:
            raise NoSchedExt(f"bpffs is not mounted at {BPFFS} and mounting it failed",
                             hint="mount -t bpf bpf /sys/fs/bpf")


# ---------------------------------------------------------------- kernel log

_KLOG_RE = re.compile(r'sched_ext: BPF scheduler "(?P<name>[^"]+)" disabled \((?P<reason>.*)\)')


def kernel_log_lines(match: str = "sched_ext") -> list[str]:
    """Every kernel log line mentioning ``match`` (from /dev/kmsg, non-blocking)."""
    lines: list[str] = []
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return lines
    try:
        while True:
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:  # EPIPE: a record was overwritten; keep reading
                if exc.errno == errno.EPIPE:
                    continue
                break
            if not rec:
                break
            text = rec.decode(errors="replace")
            msg = text.split(";", 1)[1] if ";" in text else text
            msg = msg.split("\n", 1)[0]
            if match in msg:
                lines.append(msg)
    finally:
        os.close(fd)
    return lines


def disable_reason_from_log(lines: list[str], name: str) -> str | None:
    """The reason in the LAST 'BPF scheduler "NAME" disabled (REASON)' line."""
    reason = None
    for line in lines:
        m = _KLOG_RE.search(line)
        if m and m["name"] == name:
            reason = m["reason"]
    return reason


# ---------------------------------------------------------------- libbpf

class _BtfType(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32),
                ("size_type", ctypes.c_uint32)]


_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class _Libbpf:
    """The few libbpf 1.x calls we need, with types declared once."""

    _instance: _Libbpf | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        path = ctypes.util.find_library("bpf") or "libbpf.so.1"
        try:
            lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        except OSError:
            try:
                lib = ctypes.CDLL(path, use_errno=True)
            except OSError as exc:
                raise NoSchedExt("libbpf.so.1 is not installed",
                                 hint="apt-get install libbpf1/bookworm-backports (>= 1.3)") from exc
        self.lib = lib
        self.libc = ctypes.CDLL(None, use_errno=True)
        vp, cp, i, u32, sz = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32,
                              ctypes.c_size_t)
        sigs: dict[str, tuple[object, list[object]]] = {
            "bpf_object__open_file": (vp, [cp, vp]),
            "bpf_object__load": (i, [vp]),
            "bpf_object__close": (None, [vp]),
            "bpf_object__btf": (vp, [vp]),
            "bpf_object__next_map": (vp, [vp, vp]),
            "bpf_object__find_map_by_name": (vp, [vp, cp]),
            "bpf_map__name": (cp, [vp]),
            "bpf_map__type": (i, [vp]),
            "bpf_map__fd": (i, [vp]),
            "bpf_map__btf_value_type_id": (u32, [vp]),
            "bpf_map__initial_value": (vp, [vp, ctypes.POINTER(sz)]),
            "bpf_map__pin": (i, [vp, cp]),
            "bpf_map__attach_struct_ops": (vp, [vp]),
            "bpf_link__pin": (i, [vp, cp]),
            "bpf_link__disconnect": (None, [vp]),
            "bpf_link__destroy": (i, [vp]),
            "btf__find_by_name_kind": (ctypes.c_int32, [vp, cp, u32]),
            "btf__type_by_id": (ctypes.POINTER(_BtfType), [vp, u32]),
            "btf__name_by_offset": (cp, [vp, u32]),
            "btf__resolve_size": (ctypes.c_long, [vp, u32]),
            "bpf_obj_get": (i, [cp]),
            "bpf_map_lookup_elem": (i, [i, vp, vp]),
            "libbpf_set_print": (vp, [_PRINT_FN]),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        self.libc.vsnprintf.restype = i
        self.libc.vsnprintf.argtypes = [cp, sz, cp, vp]
        self._log: list[str] = []
        self._print_cb = _PRINT_FN(self._on_print)  # keep a reference: libbpf holds it
        lib.libbpf_set_print(self._print_cb)

    @classmethod
    def get(cls) -> _Libbpf:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_print(self, level: int, fmt: bytes, va: int) -> int:
        # libbpf's debug chatter (level 2) is hundreds of lines per load; the
        # verifier log and real problems come at WARN (0) and INFO (1).
        if level > 1:
            return 0
        buf = ctypes.create_string_buffer(65536)
        n = self.libc.vsnprintf(buf, len(buf), fmt, va)
        self._log.append(buf.value.decode(errors="replace"))
        return n

    def take_log(self) -> str:
        text = "".join(self._log)
        self._log.clear()
        return text

    @staticmethod
    def errno() -> int:
        return ctypes.get_errno()


def _kind(t: _BtfType) -> int:
    return (t.info >> 24) & 0x1F


def _vlen(t: _BtfType) -> int:
    return t.info & 0xFFFF


class _Btf:
    """Read-only walk over an object's BTF through libbpf."""

    def __init__(self, lb: _Libbpf, btf: int) -> None:
        self.lb, self.btf = lb, btf

    def type(self, tid: int) -> _BtfType:
        return self.lb.lib.btf__type_by_id(self.btf, tid).contents

    def name(self, t: _BtfType) -> str:
        raw = self.lb.lib.btf__name_by_offset(self.btf, t.name_off)
        return raw.decode() if raw else ""

    def _extra(self, tid: int, count: int, words: int) -> list[tuple[int, ...]]:
        """The u32 records that follow a btf_type (members, secinfos, int info)."""
        ptr = ctypes.cast(self.lb.lib.btf__type_by_id(self.btf, tid), ctypes.c_void_p).value
        assert ptr is not None
        arr = (ctypes.c_uint32 * (count * words)).from_address(ptr + ctypes.sizeof(_BtfType))
        return [tuple(arr[i * words:(i + 1) * words]) for i in range(count)]

    def skip_mods(self, tid: int) -> int:
        while True:
            t = self.type(tid)
            if _kind(t) in (_BTF_KIND_TYPEDEF, _BTF_KIND_VOLATILE, _BTF_KIND_CONST,
                            _BTF_KIND_RESTRICT, _BTF_KIND_TYPE_TAG):
                tid = t.size_type
                continue
            return tid

    def scalar_info(self, tid: int) -> tuple[int, bool, bool] | None:
        """(size, signed, is_bool) for an int/enum type, None for anything else."""
        tid = self.skip_mods(tid)
        t = self.type(tid)
        if _kind(t) == _BTF_KIND_INT:
            (enc,) = self._extra(tid, 1, 1)[0]
            encoding = (enc >> 24) & 0xF
            return t.size_type, bool(encoding & _BTF_INT_SIGNED), bool(encoding & _BTF_INT_BOOL)
        if _kind(t) == _BTF_KIND_ENUM:
            return t.size_type, bool(t.info >> 31), False
        return None

    def datasec_vars(self, section: str) -> dict[str, tuple[int, int, int]]:
        """{var name: (offset, size, type id)} of a DATASEC such as .rodata."""
        sid = self.lb.lib.btf__find_by_name_kind(self.btf, section.encode(), _BTF_KIND_DATASEC)
        if sid < 0:
            return {}
        out = {}
        for vtype, off, size in self._extra(sid, _vlen(self.type(sid)), 3):
            var = self.type(vtype)
            if _kind(var) == _BTF_KIND_VAR:
                out[self.name(var)] = (off, size, var.size_type)
        return out

    def struct_members(self, tid: int) -> dict[str, tuple[int, int]]:
        """{member name: (byte offset, member type id)} of a struct."""
        tid = self.skip_mods(tid)
        t = self.type(tid)
        if _kind(t) != _BTF_KIND_STRUCT:
            return {}
        kflag = bool(t.info >> 31)
        out = {}
        for name_off, mtype, off in self._extra(tid, _vlen(t), 3):
            bits = off & 0xFFFFFF if kflag else off
            raw = self.lb.lib.btf__name_by_offset(self.btf, name_off)
            out[raw.decode() if raw else ""] = (bits // 8, mtype)
        return out


# ---------------------------------------------------------------- the loader

#: ops fields a caller may override before load (name -> byte size check)
OPS_OVERRIDES = ("timeout_ms", "dispatch_max_batch", "exit_dump_len", "flags")


def _pin_dir(name: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise LoaderError(f"bad scheduler name {name!r} for a pin directory")
    return PIN_ROOT / name


def _coerce_tunables(tunables: Mapping[str, object],
                     metadata: SchedulerMetadata | None) -> dict[str, object]:
    if metadata is None:
        return dict(tunables)
    return dict(metadata.resolve(tunables))


def load(obj_path: str | Path, *, tunables: Mapping[str, object] | None = None,
         metadata: SchedulerMetadata | None = None,
         ops_overrides: Mapping[str, int] | None = None, name: str | None = None,
         enable_timeout_s: float = 10.0) -> LoadResult:
    """Load, attach, pin and confirm a scheduler; see the module docstring.

    Raises :class:`VerifierRejected` (with ``details['log']``), :class:`AttachFailed`,
    :class:`Ejected` (enabled then disabled before confirmation), :class:`SchedulerBusy`,
    :class:`NoSchedExt` or :class:`TunableError`.
    """
    t0 = time.monotonic()
    check_privileges()
    state, ops = read_sched_ext_state()
    if state != "disabled":
        raise SchedulerBusy(f"sched_ext is {state} with scheduler {ops or '?'!r}",
                            hint=f"unload it first (schedcp loader unload {ops})")
    _ensure_bpffs()
    values = _coerce_tunables(tunables or {}, metadata)
    overrides = dict(ops_overrides or {})
    bad = [k for k in overrides if k not in OPS_OVERRIDES]
    if bad:
        raise LoaderError(f"cannot override ops field(s) {bad}",
                          hint=f"allowed: {', '.join(OPS_OVERRIDES)}")

    lb = _Libbpf.get()
    lb.take_log()
    obj = lb.lib.bpf_object__open_file(str(obj_path).encode(), None)
    if not obj:
        err = lb.errno()
        raise LoaderError(f"libbpf could not open {obj_path}: {os.strerror(err)}",
                          log=lb.take_log(), hint="is it a BPF ELF object built by schedcp?")
    link = None
    try:
        btf = _Btf(lb, lb.lib.bpf_object__btf(obj))
        applied = _apply_tunables(lb, btf, obj, values)
        st_map, ops_name = _struct_ops_map(lb, btf, obj, overrides)
        name = name or ops_name
        pin_dir = _pin_dir(name)
        t_open = time.monotonic()

        rc = lb.lib.bpf_object__load(obj)
        t_load = time.monotonic()
        if rc != 0:
            log = lb.take_log()
            raise VerifierRejected(
                f"the kernel refused to load {name}: {_rejection_summary(log, -rc)}",
                hint="see the verifier log (details['log'])", log=log, errno=-rc)

        _clean_stale_pins(pin_dir)
        pin_dir.mkdir(parents=True, exist_ok=True)
        exit_map = lb.lib.bpf_object__find_map_by_name(obj, EXIT_MAP_NAME.encode())
        if exit_map and lb.lib.bpf_map__pin(exit_map, str(pin_dir / "exit_info").encode()) != 0:
            raise LoaderError(f"could not pin the exit-info map under {pin_dir}",
                              log=lb.take_log())
        klog_before = len(kernel_log_lines())
        link = lb.lib.bpf_map__attach_struct_ops(st_map)
        if not link:
            err = lb.errno()
            ei = _read_exit_map(pin_dir) if exit_map else None
            klog = kernel_log_lines()[klog_before:]
            _remove_pins(pin_dir)
            raise AttachFailed(
                f"the kernel refused to enable {name}: {os.strerror(err)}"
                + (f" ({ei.summary()})" if ei and ei.recorded else ""),
                hint="see kernel_log; ops.init() failing or a missing _impl kfunc are common causes",
                errno=err, log=lb.take_log(), kernel_log=klog,
                exit=asdict(ei) if ei else None)
        if lb.lib.bpf_link__pin(link, str(pin_dir / "link").encode()) != 0:
            err = lb.errno()
            lb.lib.bpf_link__destroy(link)
            link = None
            _remove_pins(pin_dir)
            raise LoaderError(f"could not pin the struct_ops link under {pin_dir}: "
                              f"{os.strerror(err)}")
        # From here the pin owns the link. For a real struct_ops link,
        # bpf_link__destroy() only closes our fd (the finally below), which
        # must happen even in a long-lived process: a leaked fd would keep the
        # scheduler attached after unload() removes the pin.
        final = _wait_enabled(name, pin_dir, enable_timeout_s)
        t_end = time.monotonic()
        return LoadResult(name=name, pin_dir=str(pin_dir), state=final, tunables=applied,
                          ops_overrides=overrides, open_ms=(t_open - t0) * 1e3,
                          load_ms=(t_load - t_open) * 1e3, attach_ms=(t_end - t_load) * 1e3,
                          total_ms=(t_end - t0) * 1e3, libbpf_log=lb.take_log())
    finally:
        if link:
            lb.lib.bpf_link__destroy(link)
        lb.lib.bpf_object__close(obj)


def _apply_tunables(lb: _Libbpf, btf: _Btf, obj: int,
                    values: Mapping[str, object]) -> dict[str, int | bool]:
    applied: dict[str, int | bool] = {}
    if not values:
        return applied
    rodata_vars = btf.datasec_vars(".rodata")
    rodata = lb.lib.bpf_object__find_map_by_name(obj, b".rodata")
    size = ctypes.c_size_t(0)
    base = lb.lib.bpf_map__initial_value(rodata, ctypes.byref(size)) if rodata else None
    for key, value in values.items():
        if key not in rodata_vars:
            known = ", ".join(sorted(rodata_vars)) or "none"
            raise TunableError(f"the program has no const volatile variable {key!r}",
                               hint=f"tunables in this object: {known}")
        off, vsize, vtype = rodata_vars[key]
        info = btf.scalar_info(vtype)
        if info is None:
            raise TunableError(f"tunable {key} is not a scalar in the program")
        tsize, signed, is_bool = info
        if isinstance(value, str):  # no metadata: interpret by the BTF type
            value = _parse_untyped(key, value, is_bool)
        data = encode_scalar(value, size=tsize, signed=signed, is_bool=is_bool,  # type: ignore[arg-type]
                             name=key)
        if base is None or off + len(data) > size.value:
            raise LoaderError(f"cannot reach .rodata to set {key}")
        ctypes.memmove(base + off, data, len(data))
        applied[key] = decode_scalar(data, signed=signed, is_bool=is_bool)
    return applied


def _parse_untyped(key: str, value: str, is_bool: bool) -> int | bool:
    v = value.strip().lower()
    if is_bool:
        if v in ("true", "1", "yes", "on"):
            return True
        if v in ("false", "0", "no", "off"):
            return False
        raise TunableError(f"tunable {key} is a bool, got {value!r}")
    try:
        return int(v, 0)
    except ValueError:
        raise TunableError(f"tunable {key} is an integer, got {value!r}") from None


def _struct_ops_map(lb: _Libbpf, btf: _Btf, obj: int,
                    overrides: Mapping[str, int]) -> tuple[int, str]:
    maps = []
    m = lb.lib.bpf_object__next_map(obj, None)
    while m:
        if lb.lib.bpf_map__type(m) == _BPF_MAP_TYPE_STRUCT_OPS:
            maps.append(m)
        m = lb.lib.bpf_object__next_map(obj, m)
    if len(maps) != 1:
        raise LoaderError(f"expected exactly one struct_ops map, found {len(maps)}",
                          hint='declare one SEC(".struct_ops.link") struct sched_ext_ops')
    st = maps[0]
    size = ctypes.c_size_t(0)
    data = lb.lib.bpf_map__initial_value(st, ctypes.byref(size))
    members = btf.struct_members(lb.lib.bpf_map__btf_value_type_id(st))
    if not data or "name" not in members:
        raise LoaderError("cannot read the struct_ops data of this object",
                          hint="libbpf >= 1.4 is needed to read and patch struct_ops fields")
    off, _ = members["name"]
    name = ctypes.string_at(data + off, 128).split(b"\0", 1)[0].decode()
    if not name:
        raise LoaderError("the scheduler's ops have no .name", hint='set .name = "myname"')
    for field_name, value in overrides.items():
        foff, ftype = members[field_name]
        info = btf.scalar_info(ftype)
        assert info is not None
        raw = encode_scalar(int(value), size=info[0], signed=info[1], is_bool=False,
                            name=field_name)
        ctypes.memmove(data + foff, raw, len(raw))
    return st, name


def _rejection_summary(log: str, err: int) -> str:
    """The most telling line of a libbpf/verifier log."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for pat in (r"invalid mem access|R\d+ .*(invalid|unbounded|!read_ok)|unreleased reference|"
                r"back-edge|too large|unknown func|not allowed|misaligned|out of bounds|"
                r"invalid (indirect )?read|arg#\d|expected",
                r"not found in kernel|incompatible", r"^libbpf: .*(failed|error)"):
        for ln in lines:
            if re.search(pat, ln) and not ln.startswith("-- END"):
                return ln.removeprefix("libbpf: ")
    return os.strerror(err) if err > 0 else "unknown error"


def _wait_enabled(name: str, pin_dir: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        state, ops = read_sched_ext_state()
        if state == "enabled" and ops == name:
            return state
        if state == "disabled" or (ops and ops != name):
            ei = _read_exit_map(pin_dir) or ExitInfo()
            ei.kernel_log = kernel_log_lines()[-20:]
            reason = disable_reason_from_log(ei.kernel_log, name)
            _remove_pins(pin_dir)
            raise Ejected(f"{name} was disabled right after attaching: "
                          f"{ei.summary() if ei.recorded else (reason or state)}",
                          exit=asdict(ei))
        if time.monotonic() > deadline:
            raise LoaderError(f"{name} did not reach state enabled within {timeout_s}s "
                              f"(state {state}, ops {ops!r})")
        time.sleep(0.01)


def _read_exit_map(pin_dir: Path) -> ExitInfo | None:
    path = pin_dir / "exit_info"
    if not path.exists():
        return None
    lb = _Libbpf.get()
    fd = lb.lib.bpf_obj_get(str(path).encode())
    if fd < 0:
        return None
    try:
        key = ctypes.c_uint32(0)
        buf = ctypes.create_string_buffer(EXIT_INFO_SIZE)
        if lb.lib.bpf_map_lookup_elem(fd, ctypes.byref(key), buf) != 0:
            return None
        return ExitInfo.from_bytes(buf.raw)
    finally:
        os.close(fd)


def _remove_pins(pin_dir: Path) -> None:
    for child in ("link", "exit_info"):
        try:
            (pin_dir / child).unlink()
        except FileNotFoundError:
            pass
    try:
        pin_dir.rmdir()
    except OSError:
        pass


def _clean_stale_pins(pin_dir: Path) -> None:
    """A pin dir left by an ejected or crashed load blocks nothing but confuses
    state(); we only get here when sched_ext is disabled, so it is dead."""
    if pin_dir.exists():
        _remove_pins(pin_dir)


def state(name: str | None = None) -> SchedState:
    """What sched_ext is doing, and (given ``name``) whether that scheduler was ejected."""
    st, ops = read_sched_ext_state()
    out = SchedState(sched_ext_state=st, root_ops=ops, name=name)
    if name is None:
        return out
    pin_dir = _pin_dir(name)
    out.pinned = (pin_dir / "link").exists()
    out.enabled = st == "enabled" and ops == name
    out.ejected = out.pinned and not out.enabled and st not in ("enabling",)
    if out.ejected:
        ei = _read_exit_map(pin_dir) or ExitInfo()
        ei.kernel_log = kernel_log_lines()[-20:]
        if not ei.recorded:
            reason = disable_reason_from_log(ei.kernel_log, name)
            if reason:
                ei.reason = reason
        out.exit = ei
    return out


def watch(name: str, *, duration_s: float, poll_s: float = 0.1) -> SchedState:
    """Watch ``name`` for up to ``duration_s``; return early on ejection.

    The returned state has ``ejected`` set (and ``exit`` filled) if the kernel
    disabled it; otherwise it is still enabled after the whole duration.
    """
    deadline = time.monotonic() + duration_s
    while True:
        s = state(name)
        if s.ejected:
            return _settled_exit(name, s, poll_s)
        if not s.enabled or time.monotonic() >= deadline:
            return s
        time.sleep(poll_s)


def _settled_exit(name: str, s: SchedState, poll_s: float, settle_s: float = 5.0) -> SchedState:
    """An ejection seen while the kernel is still "disabling": ops.exit() (which
    records the exit kind and message) runs at the end of the kernel's disable
    work, so the record can lag the log line by a moment on a busy machine.
    Wait a bounded while for it rather than report an unrecorded exit."""
    deadline = time.monotonic() + settle_s
    while (s.ejected and s.exit is not None and not s.exit.recorded
           and s.sched_ext_state == "disabling" and time.monotonic() < deadline):
        time.sleep(poll_s)
        s = state(name)
    return s


def unload(name: str, *, timeout_s: float = 10.0) -> SchedState:
    """Detach ``name`` by removing its pins; returns the final state with exit info."""
    check_privileges()
    pin_dir = _pin_dir(name)
    if not pin_dir.exists():
        raise LoaderError(f"no scheduler {name!r} is pinned under {PIN_ROOT}",
                          hint="was it loaded by schedcp? list with: ls /sys/fs/bpf/schedcp")
    was = state(name)
    try:
        (pin_dir / "link").unlink()
    except FileNotFoundError:
        pass
    deadline = time.monotonic() + timeout_s
    st, ops = read_sched_ext_state()
    while (st != "disabled" and ops == name) and time.monotonic() < deadline:
        time.sleep(0.01)
        st, ops = read_sched_ext_state()
    ei = _read_exit_map(pin_dir)
    _remove_pins(pin_dir)
    final = SchedState(sched_ext_state=st, root_ops=ops, name=name, pinned=False,
                       enabled=st == "enabled" and ops == name, ejected=was.ejected,
                       exit=ei)
    if final.enabled:
        raise LoaderError(f"{name} is still enabled {timeout_s}s after its link was unpinned",
                          hint="another process may hold the link fd")
    return final


# ---------------------------------------------------------------- JSON CLI

def _cmd(args: argparse.Namespace) -> dict[str, object]:
    if args.cmd == "load":
        meta = load_metadata(Path(args.meta)) if args.meta else None
        overrides = {}
        if args.timeout_ms is not None:
            overrides["timeout_ms"] = args.timeout_ms
        res = load(args.object, tunables=parse_set_args(args.set), metadata=meta,
                   ops_overrides=overrides, name=args.name)
        out: dict[str, object] = {"ok": True, "result": res.to_dict()}
        if args.watch:
            s = watch(res.name, duration_s=args.watch)
            out["watch"] = s.to_dict()
            if s.ejected:
                out["ok"] = False
        return out
    if args.cmd == "state":
        return {"ok": True, "result": state(args.name).to_dict()}
    if args.cmd == "watch":
        s = watch(args.name, duration_s=args.seconds)
        return {"ok": not s.ejected, "result": s.to_dict()}
    if args.cmd == "unload":
        return {"ok": True, "result": unload(args.name).to_dict()}
    if args.cmd == "check":
        check_privileges()
        st, ops = read_sched_ext_state()
        return {"ok": True, "result": {"state": st, "root_ops": ops}}
    raise AssertionError(args.cmd)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m schedcp.substrate.loader")
    sub = p.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("load")
    lp.add_argument("object")
    lp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    lp.add_argument("--meta", help="metadata JSON to type/range-check tunables")
    lp.add_argument("--timeout-ms", type=int, help="override ops.timeout_ms (watchdog)")
    lp.add_argument("--name", help="pin name (default: the ops name)")
    lp.add_argument("--watch", type=float, default=0.0, help="then watch this many seconds")
    sp = sub.add_parser("state")
    sp.add_argument("name", nargs="?")
    wp = sub.add_parser("watch")
    wp.add_argument("name")
    wp.add_argument("--seconds", type=float, default=5.0)
    up = sub.add_parser("unload")
    up.add_argument("name")
    sub.add_parser("check")
    sv = sub.add_parser("serve", help="answer requests on a FIFO (see serve())")
    sv.add_argument("dir")
    return p


_PARSER: argparse.ArgumentParser | None = None


def handle(argv: list[str]) -> dict[str, object]:
    """Run one loader command; always returns the JSON answer, never raises."""
    global _PARSER
    try:
        if _PARSER is None:
            _PARSER = _parser()
        args = _PARSER.parse_args(argv)
        if args.cmd == "serve":
            raise LoaderError("serve cannot be nested")
        return _cmd(args)
    except SystemExit as exc:  # argparse usage error
        return {"ok": False, "error": {"code": "invalid_argument",
                                       "message": f"bad loader arguments {argv} ({exc})"}}
    except SubstrateError as exc:
        d = exc.to_dict() if isinstance(exc, LoaderError) else {
            "code": exc.code, "message": exc.message, "hint": exc.hint}
        return {"ok": False, "error": d}
    except Exception as exc:  # noqa: BLE001 - a JSON answer beats a traceback for the caller
        from schedcp.errors import SchedcpError

        if isinstance(exc, SchedcpError):
            return {"ok": False, "error": {"code": exc.code, "message": exc.message,
                                           "hint": exc.hint}}
        return {"ok": False, "error": {"code": "internal", "message": repr(exc)}}


def serve(directory: Path) -> None:
    """Answer loader requests until told to stop.

    Python starts slowly in a TCG guest (seconds), and so does every exec, so
    a VM node starts this once and then talks to it with a shell one-liner
    made of builtins only: write one line ``{"id": ID, "argv": [...]}`` to the
    FIFO ``<dir>/req`` (atomic: < PIPE_BUF), then read lines from the FIFO
    ``<dir>/resp`` until the one carrying ``"id": ID`` (a client that timed
    out may have left an answer nobody read). ``argv == ["shutdown"]`` stops
    the server. Requests are served one at a time.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for fifo_name in ("resp", "req"):  # req last: clients wait for it
        if not (directory / fifo_name).exists():
            os.mkfifo(directory / fifo_name, 0o600)
    (directory / "pid").write_text(str(os.getpid()))
    req, resp = directory / "req", directory / "resp"
    while True:
        with open(req) as fifo:  # blocks until a client writes
            for line in fifo:
                try:
                    msg = json.loads(line)
                    rid = str(msg["id"])
                    argv = [str(a) for a in msg["argv"]]
                except (ValueError, KeyError, TypeError):
                    continue
                stop = argv == ["shutdown"]
                answer = {"ok": True, "result": "bye"} if stop else handle(argv)
                with open(resp, "w") as out:  # blocks until the client reads
                    out.write(json.dumps({"id": rid, **answer}, default=str) + "\n")
                if stop:
                    req.unlink(missing_ok=True)
                    resp.unlink(missing_ok=True)
                    return


def main(argv: list[str] | None = None) -> int:
    """JSON in, JSON out: ``{"ok": bool, "result"|"error": {...}}`` on stdout."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        args = _parser().parse_args(argv)
        serve(Path(args.dir))
        return 0
    out = handle(argv)
    json.dump(out, sys.stdout, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
