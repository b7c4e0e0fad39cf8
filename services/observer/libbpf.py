"""A minimal ctypes binding of libbpf for the observer's tracing probes.

Why ctypes and not ``bpftool prog loadall ... autoattach``: every link and map
lives in this process's file descriptors, so detaching is closing them, and a
crash of the observer detaches the probes by itself. Nothing is pinned in
bpffs, so nothing can be left behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from schedcp.errors import SchedcpError, Unavailable


class ProbeError(SchedcpError):
    """A tracing probe could not be opened, loaded or attached."""

    code = "probe"


_lib: ctypes.CDLL | None = None

# struct bpf_prog_info is uapi (append-only ABI): these offsets never move.
_PROG_INFO_SIZE = 232
_PROG_INFO_ID = 4
_PROG_INFO_RUN_TIME_NS = 192
_PROG_INFO_RUN_CNT = 200
BPF_STATS_RUN_TIME = 0


def lib() -> ctypes.CDLL:
    """Load libbpf.so.1 once and declare the signatures used here."""
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        so = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise Unavailable(f"libbpf cannot be loaded ({exc})",
                          hint="install libbpf1 (scripts/install-system.sh)") from exc
    vp, cp, i, u32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32
    sigs: dict[str, tuple[object, list[object]]] = {
        "bpf_object__open_file": (vp, [cp, vp]),
        "bpf_object__load": (i, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__next_program": (vp, [vp, vp]),
        "bpf_object__next_map": (vp, [vp, vp]),
        "bpf_object__find_map_by_name": (vp, [vp, cp]),
        "bpf_program__attach": (vp, [vp]),
        "bpf_program__fd": (i, [vp]),
        "bpf_program__name": (cp, [vp]),
        "bpf_link__destroy": (i, [vp]),
        "bpf_map__fd": (i, [vp]),
        "bpf_map__name": (cp, [vp]),
        "bpf_map__max_entries": (u32, [vp]),
        "bpf_map__key_size": (u32, [vp]),
        "bpf_map__value_size": (u32, [vp]),
        "bpf_map_update_elem": (i, [i, vp, vp, ctypes.c_uint64]),
        "bpf_map_lookup_elem": (i, [i, vp, vp]),
        "bpf_map_get_next_key": (i, [i, vp, vp]),
        "bpf_prog_get_info_by_fd": (i, [i, vp, ctypes.POINTER(u32)]),
        "bpf_enable_stats": (i, [i]),
        "libbpf_set_print": (vp, [vp]),
    }
    for fn, (res, args) in sigs.items():
        f = getattr(so, fn)
        f.restype = res
        f.argtypes = args
    # libbpf prints verifier chatter to stderr by default; errors come back as codes.
    so.libbpf_set_print(None)
    _lib = so
    return so


def _err(ret: int) -> str:
    code = -ret if ret < 0 else ctypes.get_errno()
    return f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"


class BpfMap:
    """A loaded map, by fd, with its declared sizes."""

    def __init__(self, ptr: int) -> None:
        so = lib()
        self.name = so.bpf_map__name(ptr).decode()
        self.fd = so.bpf_map__fd(ptr)
        self.max_entries = so.bpf_map__max_entries(ptr)
        self.key_size = so.bpf_map__key_size(ptr)
        self.value_size = so.bpf_map__value_size(ptr)

    @property
    def bytes_bound(self) -> int:
        """Upper bound of the data this map can hold (keys + values)."""
        return self.max_entries * (self.key_size + self.value_size)

    def update(self, key: bytes, value: bytes) -> None:
        k = ctypes.create_string_buffer(key, self.key_size)
        v = ctypes.create_string_buffer(value, self.value_size)
        ret = lib().bpf_map_update_elem(self.fd, k, v, 0)
        if ret != 0:
            raise ProbeError(f"cannot update map {self.name}: {_err(ret)}")

    def lookup(self, key: bytes) -> bytes | None:
        k = ctypes.create_string_buffer(key, self.key_size)
        v = ctypes.create_string_buffer(self.value_size)
        if lib().bpf_map_lookup_elem(self.fd, k, v) != 0:
            return None
        return v.raw

    def items(self, limit: int = 1 << 20) -> Iterator[tuple[bytes, bytes]]:
        """Iterate (key, value) pairs; entries deleted concurrently are skipped."""
        so = lib()
        cur = ctypes.create_string_buffer(self.key_size)
        nxt = ctypes.create_string_buffer(self.key_size)
        prev: ctypes.Array[ctypes.c_char] | None = None
        for _ in range(limit):
            if so.bpf_map_get_next_key(self.fd, prev, nxt) != 0:
                return
            ctypes.memmove(cur, nxt, self.key_size)
            prev = cur
            val = self.lookup(cur.raw)
            if val is not None:
                yield cur.raw, val

    def array_u64(self) -> list[int]:
        """All values of an ARRAY map of u64, in index order."""
        out = []
        for idx in range(self.max_entries):
            v = self.lookup(struct.pack("<I", idx))
            out.append(struct.unpack("<Q", v[:8])[0] if v else 0)
        return out


class BpfObject:
    """One opened+loaded BPF object; ``attach()`` links all its programs, ``close()`` undoes all."""

    def __init__(self, path: Path) -> None:
        so = lib()
        ctypes.set_errno(0)
        self._obj = so.bpf_object__open_file(str(path).encode(), None)
        if not self._obj:
            raise ProbeError(f"cannot open BPF object {path}: {_err(0)}",
                             hint="rebuild the probe; is the object for this kernel?")
        self._links: list[int] = []
        self.path = path
        ret = so.bpf_object__load(self._obj)
        if ret != 0:
            so.bpf_object__close(self._obj)
            self._obj = None
            hint = ("the probes need root (CAP_BPF + CAP_PERFMON)" if -ret in (errno.EPERM, errno.EACCES)
                    else "the kernel rejected the probe; check `dmesg` and the kernel's BTF")
            raise ProbeError(f"cannot load BPF object {path.name}: {_err(ret)}", hint=hint)

    def programs(self) -> list[tuple[str, int]]:
        so = lib()
        out = []
        prog = so.bpf_object__next_program(self._obj, None)
        while prog:
            out.append((so.bpf_program__name(prog).decode(), so.bpf_program__fd(prog)))
            prog = so.bpf_object__next_program(self._obj, prog)
        return out

    def maps(self) -> dict[str, BpfMap]:
        so = lib()
        out: dict[str, BpfMap] = {}
        m = so.bpf_object__next_map(self._obj, None)
        while m:
            bm = BpfMap(m)
            out[bm.name] = bm
            m = so.bpf_object__next_map(self._obj, m)
        return out

    def attach(self) -> None:
        so = lib()
        prog = so.bpf_object__next_program(self._obj, None)
        while prog:
            ctypes.set_errno(0)
            link = so.bpf_program__attach(prog)
            if not link:
                name = so.bpf_program__name(prog).decode()
                raise ProbeError(f"cannot attach {name} of {self.path.name}: {_err(0)}",
                                 hint="the tracepoint may not exist on this kernel")
            self._links.append(link)
            prog = so.bpf_object__next_program(self._obj, prog)

    def detach(self) -> None:
        so = lib()
        while self._links:
            so.bpf_link__destroy(self._links.pop())

    def close(self) -> None:
        self.detach()
        if self._obj:
            lib().bpf_object__close(self._obj)
            self._obj = None


def prog_stats(fd: int) -> tuple[int, int, int]:
    """(prog id, run_time_ns, run_cnt) of a loaded program (times need stats enabled)."""
    buf = ctypes.create_string_buffer(_PROG_INFO_SIZE)
    n = ctypes.c_uint32(_PROG_INFO_SIZE)
    ret = lib().bpf_prog_get_info_by_fd(fd, buf, ctypes.byref(n))
    if ret != 0:
        return 0, 0, 0
    raw = buf.raw
    (pid,) = struct.unpack_from("<I", raw, _PROG_INFO_ID)
    run_ns, run_cnt = struct.unpack_from("<QQ", raw, _PROG_INFO_RUN_TIME_NS)
    return pid, run_ns, run_cnt


def enable_run_time_stats() -> int:
    """Turn on BPF run-time accounting for as long as the returned fd is open (-1 if refused)."""
    fd = lib().bpf_enable_stats(BPF_STATS_RUN_TIME)
    return fd if fd >= 0 else -1
