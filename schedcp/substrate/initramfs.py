"""Initramfs images for the micro-VMs: one cached base plus a small per-job archive.

The kernel accepts concatenated cpio archives, so the base (busybox-static,
``/init``, the guest agent) is built once per content hash and cached, and
each VM gets a few-hundred-byte archive appended with its own configuration
(job.json, the python to run the agent with, modules to load, extra files).
Archives are written in the ``newc`` format directly; no cpio binary needed.
Uncompressed, because unpacking ~2 MB costs the kernel less than decompressing.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from schedcp.substrate import VmError
from schedcp.substrate.kernel import Kernel, cache_dir

GUEST_DIR = Path(__file__).resolve().parent / "guest"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
BASE_FORMAT = 1  # bump when the base layout changes


class CpioWriter:
    """Write a ``newc`` cpio archive (what the kernel's initramfs unpacker reads)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1000
        self.dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        self.ino += 1
        name_b = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08X}" for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.buf.write(header.encode() + name_b)
        self._pad()
        self.buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, stat.S_IFDIR | mode, nlink=2)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = path.strip("/")
        if "/" in path:
            self.mkdir(path.rsplit("/", 1)[0])
        self._entry(path, stat.S_IFREG | mode, data)

    def symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        if "/" in path:
            self.mkdir(path.rsplit("/", 1)[0])
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        # Pad to 512 so another archive can follow directly.
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


def find_busybox() -> Path:
    for p in BUSYBOX_CANDIDATES:
        if Path(p).is_file():
            return Path(p)
    found = shutil.which("busybox")
    if found:
        return Path(found)
    raise VmError("busybox not found", hint="install busybox-static (scripts/install-system.sh)")


def resolve_modules(kernel: Kernel, names: Iterable[str]) -> list[tuple[str, Path]]:
    """Module names (``overlay``, ``vsock``) -> (path relative to lib/modules/<rel>, file)."""
    names = list(names)
    if not names:
        return []
    if kernel.modules_dir is None:
        raise VmError(f"kernel {kernel.release} has no modules directory; cannot load {names}",
                      hint="set SCHEDCP_KERNEL_MODULES for a user kernel")
    index: dict[str, Path] = {}
    for p in (kernel.modules_dir / "kernel").rglob("*.ko*"):
        index[p.name.split(".ko")[0].replace("-", "_")] = p
    out = []
    for n in names:
        found = index.get(n.replace("-", "_"))
        if found is None:
            raise VmError(f"module {n!r} not found under {kernel.modules_dir}",
                          hint="check the name (e.g. 'overlay', 'vsock') or whether it is built in")
        rel = found.relative_to(kernel.modules_dir).as_posix().split(".ko")[0] + ".ko"
        out.append((rel, found))
    return out


def _module_bytes(p: Path) -> bytes:
    data = p.read_bytes()
    if p.name.endswith(".xz"):
        return lzma.decompress(data)
    if p.name.endswith(".zst"):
        import subprocess

        return subprocess.run(["zstd", "-d", "-c", "-q"], input=data, capture_output=True,
                              check=True).stdout
    return data


@dataclass
class JobArchive:
    """What goes into one VM's appended archive."""

    python: str
    env: Mapping[str, str] = field(default_factory=dict)
    modules: list[tuple[str, Path]] = field(default_factory=list)
    files: Mapping[str, bytes] = field(default_factory=dict)
    extra: Mapping[str, object] = field(default_factory=dict)

    def build(self) -> bytes:
        w = CpioWriter()
        w.mkdir("schedcp")
        w.file("schedcp/job.json", json.dumps({"env": dict(self.env), **self.extra}).encode())
        w.file("schedcp/python", (self.python + "\n").encode())
        if self.modules:
            w.file("schedcp/modules", "".join(rel + "\n" for rel, _ in self.modules).encode())
            for rel, src in self.modules:
                w.file(f"lib/modules/{rel}", _module_bytes(src))
        for path, data in self.files.items():
            w.file(path, data, 0o755 if data.startswith(b"#!") else 0o644)
        return w.finish()


class InitramfsBuilder:
    """Builds (once) and caches the base image; assembles per-VM images."""

    def __init__(self, *, cache: Path | None = None, busybox: Path | None = None) -> None:
        self.root = (cache or cache_dir()) / "initramfs"
        self.busybox = busybox or find_busybox()

    def _base_parts(self) -> dict[str, tuple[bytes, int]]:
        return {
            "bin/busybox": (self.busybox.read_bytes(), 0o755),
            "init": ((GUEST_DIR / "init.sh").read_bytes(), 0o755),
            "schedcp/agent.py": ((GUEST_DIR / "agent.py").read_bytes(), 0o644),
        }

    def base(self) -> Path:
        """The cached base archive, rebuilt when busybox, init or the agent change."""
        parts = self._base_parts()
        h = hashlib.sha256(str(BASE_FORMAT).encode())
        for name in sorted(parts):
            h.update(name.encode() + b"\0" + parts[name][0])
        path = self.root / f"base-{h.hexdigest()[:16]}.cpio"
        if path.exists():
            return path
        w = CpioWriter()
        for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "host", "lib/modules", "schedcp"):
            w.mkdir(d)
        for name, (data, mode) in parts.items():
            w.file(name, data, mode)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(w.finish())
        tmp.replace(path)
        return path

    def assemble(self, job: JobArchive, dest: Path) -> Path:
        """Write base + the job's archive to ``dest`` (one file qemu can -initrd)."""
        with open(dest, "wb") as out:
            with open(self.base(), "rb") as base:
                shutil.copyfileobj(base, out)
            out.write(job.build())
        return dest
