"""BPF build chain: compile a sched_ext scheduler for a given kernel's BTF.

``clang-19 -target bpf -O2 -g`` against a ``vmlinux.h`` generated from the
TARGET kernel's BTF (``bpftool btf dump file <vmlinux> format c``), cached by
the BTF's digest, plus libbpf's headers and ``bpf/include`` (the schedcp
compat layer). The verifier service compiles agent-written sources with this,
so a source is either a file or a string, and compiler diagnostics come back
structured (:class:`Diagnostic`) instead of as a wall of text.

A build never loads anything; what the kernel thinks of the object is the
loader's business (:mod:`schedcp.substrate.loader`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from schedcp.digests import sha256_digest
from schedcp.substrate import SubstrateError

REPO_ROOT = Path(__file__).resolve().parents[2]
BPF_DIR = REPO_ROOT / "bpf"
BPF_INCLUDE_DIR = BPF_DIR / "include"
LIBBPF_INCLUDE_DIR = Path("/usr/include")  # <bpf/bpf_helpers.h> from libbpf-dev
DEFAULT_CLANG = "clang-19"
DEFAULT_BPFTOOL = "bpftool"

# Compile flags every object gets. -isystem for vmlinux.h because bpftool's
# output trips -Wmissing-declarations on forward declarations, and those
# warnings would bury the candidate's own diagnostics.
BASE_CFLAGS = ("-target", "bpf", "-O2", "-g", "-D__TARGET_ARCH_x86", "-Wall",
               "-Wno-unused-function", "-fno-stack-protector")


class BuildError(SubstrateError):
    """The scheduler did not compile; ``diagnostics`` holds clang's errors."""

    code = "build"

    def __init__(self, message: str, *, diagnostics: Sequence[Diagnostic] = (),
                 log: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.diagnostics = tuple(diagnostics)
        self.log = log


class ToolMissing(SubstrateError):
    """clang or bpftool is not installed."""

    code = "tool_missing"


@dataclass(frozen=True)
class Diagnostic:
    """One compiler message, located in the candidate's source."""

    file: str
    line: int
    column: int
    severity: str  # "error" | "warning" | "note" | "fatal error"
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "column": self.column,
                "severity": self.severity, "message": self.message}

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


@dataclass(frozen=True)
class BuildResult:
    """A compiled object and what it was built against."""

    object_path: Path
    digest: str  # "sha256:<hex>" of the object bytes
    btf_digest: str  # "sha256:<hex>" of the BTF the vmlinux.h came from
    diagnostics: tuple[Diagnostic, ...] = field(default=())  # warnings of a good build

    def to_dict(self) -> dict[str, object]:
        return {"object": str(self.object_path), "digest": self.digest,
                "btf_digest": self.btf_digest,
                "diagnostics": [d.to_dict() for d in self.diagnostics]}


_DIAG_RE = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): "
    r"(?P<sev>fatal error|error|warning|note|remark): (?P<msg>.*)$")
# Errors without a location ("error: unknown argument", linker-ish failures).
_BARE_RE = re.compile(r"^(?:clang(?:-\d+)?: )?(?P<sev>fatal error|error|warning): (?P<msg>.*)$")


def parse_diagnostics(stderr: str) -> list[Diagnostic]:
    """Turn clang's stderr into structured diagnostics, in order.

    Only the headline of each message is kept: the caret/snippet lines and
    "In file included from" chains that follow are noise for an agent.
    """
    out: list[Diagnostic] = []
    for raw in stderr.splitlines():
        m = _DIAG_RE.match(raw)
        if m:
            out.append(Diagnostic(m["file"], int(m["line"]), int(m["col"]), m["sev"],
                                  m["msg"].strip()))
            continue
        b = _BARE_RE.match(raw)
        if b:
            out.append(Diagnostic("", 0, 0, b["sev"], b["msg"].strip()))
    return out


def default_cache_dir() -> Path:
    """The substrate cache root shared with the kernel fetcher
    (``$SCHEDCP_CACHE_DIR``, else ``<repo>/.cache`` in a checkout). It must be
    visible inside micro-VM guests (host root over virtiofs), so not /tmp."""
    from schedcp.substrate.kernel import cache_dir

    return cache_dir()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _require_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise ToolMissing(f"{name} not found on PATH",
                          hint="run scripts/install-system.sh (clang-19, bpftool from bookworm-backports)")
    return found


@dataclass(frozen=True)
class KernelKfuncs:
    """Which sched_ext kfuncs a kernel's BTF offers (read, not assumed)."""

    names: frozenset[str]

    @property
    def has_sched_ext(self) -> bool:
        return any(n.startswith("scx_bpf_") for n in self.names)

    def missing_impl(self) -> list[str]:
        """kfuncs whose implicit-argument ``_impl`` twin is absent.

        A kernel that has some ``_impl`` twins has the implicit-argument scheme;
        if it lacks one that should be there, calling it fails at load. A kernel
        with none at all (before 6.19) does not need them. The Debian +deb13
        7.2.x builds have the scheme half-broken: no ``_impl`` anywhere.
        """
        known_implicit = ("scx_bpf_create_dsq", "scx_bpf_kick_cpu", "scx_bpf_error_bstr",
                          "scx_bpf_pick_idle_cpu", "scx_bpf_task_set_dsq_vtime")
        # The ___v2 kfuncs and the implicit-argument scheme arrived together;
        # before them no _impl twin is needed.
        new_scheme = any(n.endswith("_impl") or "___v2" in n for n in self.names)
        if not new_scheme:
            return []
        return [n for n in known_implicit if n in self.names and n + "_impl" not in self.names]


def kernel_kfuncs(btf_path: Path, *, bpftool: str = DEFAULT_BPFTOOL) -> KernelKfuncs:
    """List the ``scx_bpf_*`` FUNCs in a kernel's BTF (vmlinux ELF or raw BTF)."""
    tool = _require_tool(bpftool)
    proc = subprocess.run([tool, "btf", "dump", "file", str(btf_path)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"bpftool could not read BTF from {btf_path}: {proc.stderr.strip()}",
                         hint="pass an uncompressed vmlinux with .BTF or /sys/kernel/btf/vmlinux")
    names = re.findall(r"FUNC '(scx_bpf_[A-Za-z0-9_]+)'", proc.stdout)
    return KernelKfuncs(frozenset(names))


_BTF_DIGESTS: dict[tuple[str, int, int], str] = {}


class BpfBuilder:
    """Compiles sched_ext sources against one kernel's BTF.

    ``btf`` is an uncompressed vmlinux (ELF with .BTF) or a raw BTF file such as
    ``/sys/kernel/btf/vmlinux``. The generated ``vmlinux.h`` is cached under
    ``cache_dir/vmlinux/<btf digest>/`` so switching kernels is cheap and a
    stale header can never be used for a different kernel.
    """

    def __init__(self, *, btf: Path, cache_dir: Path | None = None, clang: str = DEFAULT_CLANG,
                 bpftool: str = DEFAULT_BPFTOOL,
                 include_dirs: Sequence[Path] = (BPF_INCLUDE_DIR,)) -> None:
        self.btf = Path(btf)
        if not self.btf.exists():
            raise BuildError(f"BTF source {self.btf} does not exist",
                             hint="use ensure_kernel().vmlinux or /sys/kernel/btf/vmlinux")
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.clang = clang
        self.bpftool = bpftool
        self.include_dirs = tuple(Path(p) for p in include_dirs)
        self._btf_digest: str | None = None

    @property
    def btf_digest(self) -> str:
        if self._btf_digest is None:
            st = self.btf.stat()
            key = (str(self.btf.resolve()), st.st_mtime_ns, st.st_size)
            # Hashing a 60 MB vmlinux costs ~0.2 s; builders are created per build.
            if key not in _BTF_DIGESTS:
                _BTF_DIGESTS[key] = file_digest(self.btf)
            self._btf_digest = _BTF_DIGESTS[key]
        return self._btf_digest

    def vmlinux_h(self) -> Path:
        """Generate (once per BTF digest) and return the ``vmlinux.h`` path."""
        hexd = self.btf_digest.split(":", 1)[1]
        out_dir = self.cache_dir / "vmlinux" / hexd[:32]
        header = out_dir / "vmlinux.h"
        if header.exists():
            return header
        tool = _require_tool(self.bpftool)
        out_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([tool, "btf", "dump", "file", str(self.btf), "format", "c"],
                              capture_output=True, check=False)
        if proc.returncode != 0 or not proc.stdout:
            raise BuildError(f"bpftool could not dump BTF of {self.btf}: "
                             f"{proc.stderr.decode(errors='replace').strip()}",
                             hint="is it an uncompressed vmlinux built with CONFIG_DEBUG_INFO_BTF?")
        # Write-then-rename so a concurrent builder never reads half a header.
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".vmlinux.h.")
        with os.fdopen(fd, "wb") as f:
            f.write(proc.stdout)
        os.replace(tmp, header)
        return header

    def kfuncs(self) -> KernelKfuncs:
        return kernel_kfuncs(self.btf, bpftool=self.bpftool)

    def build_file(self, source: Path, *, out: Path | None = None,
                   extra_cflags: Sequence[str] = ()) -> BuildResult:
        """Compile ``source`` (a ``.bpf.c`` file) to a BPF object."""
        source = Path(source)
        if not source.is_file():
            raise BuildError(f"scheduler source {source} does not exist",
                             hint="pass a .bpf.c file or a name from bpf/")
        if out is None:
            stem = source.name.removesuffix(".c").removesuffix(".bpf")
            out = self._objects_dir() / f"{stem}-{self.btf_digest[7:19]}.bpf.o"
        return self._compile(source, Path(out), extra_cflags, extra_includes=(source.parent,))

    def build_source(self, text: str, *, name: str = "candidate", out: Path | None = None,
                     extra_cflags: Sequence[str] = ()) -> BuildResult:
        """Compile source text (e.g. written by an agent) to a BPF object.

        Diagnostics name the file ``<name>.bpf.c`` so they read naturally.
        """
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise BuildError(f"bad candidate name {name!r}",
                             hint="use 1-64 letters, digits, '_', '.' or '-'")
        digest = sha256_digest(text.encode())[7:23]
        work = self._objects_dir() / "src" / digest
        work.mkdir(parents=True, exist_ok=True)
        src = work / f"{name}.bpf.c"
        src.write_text(text)
        if out is None:
            out = work / f"{name}-{self.btf_digest[7:19]}.bpf.o"
        result = self._compile(src, Path(out), extra_cflags, extra_includes=(), cwd=work,
                               display=f"{name}.bpf.c")
        return result

    def _objects_dir(self) -> Path:
        d = self.cache_dir / "objects"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def command(self, source: Path, out: Path, extra_cflags: Sequence[str] = (),
                extra_includes: Sequence[Path] = ()) -> list[str]:
        """The exact clang command line (useful in logs and reports)."""
        header = self.vmlinux_h()
        cmd = [self.clang, *BASE_CFLAGS, "-isystem", str(header.parent)]
        for inc in (*extra_includes, *self.include_dirs):
            cmd += ["-I", str(inc)]
        # libbpf headers: plain /usr/include is on the default path of a native
        # clang but not of -target bpf, and asm/ types live in the multiarch dir.
        cmd += ["-idirafter", str(LIBBPF_INCLUDE_DIR),
                "-idirafter", str(LIBBPF_INCLUDE_DIR / "x86_64-linux-gnu")]
        cmd += [*extra_cflags, "-c", str(source), "-o", str(out)]
        return cmd

    def _compile(self, source: Path, out: Path, extra_cflags: Sequence[str],
                 extra_includes: Sequence[Path], cwd: Path | None = None,
                 display: str | None = None) -> BuildResult:
        _require_tool(self.clang)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        cmd = self.command(source if cwd is None else Path(source.name), tmp_out,
                           extra_cflags, extra_includes)
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False)
        log = proc.stderr
        if display:
            log = log.replace(str(source), display)
        diags = parse_diagnostics(log)
        if proc.returncode != 0 or not tmp_out.exists():
            tmp_out.unlink(missing_ok=True)
            errors = [d for d in diags if d.severity in ("error", "fatal error")]
            first = str(errors[0]) if errors else (log.strip().splitlines() or ["clang failed"])[-1]
            raise BuildError(f"{display or source.name} does not compile: {first}",
                             diagnostics=diags, log=log,
                             hint=f"{len(errors)} error(s); see diagnostics")
        os.replace(tmp_out, out)
        data = out.read_bytes()
        return BuildResult(object_path=out, digest=sha256_digest(data),
                           btf_digest=self.btf_digest,
                           diagnostics=tuple(d for d in diags if d.severity == "warning"))


def find_scheduler_source(name_or_path: str) -> Path:
    """Resolve ``fifo`` to ``bpf/fifo.bpf.c``; a path is returned as is."""
    p = Path(name_or_path)
    if p.suffix == ".c" or os.sep in name_or_path:
        if not p.is_file():
            raise BuildError(f"scheduler source {p} does not exist")
        return p
    cand = BPF_DIR / f"{name_or_path}.bpf.c"
    if not cand.is_file():
        known = sorted(q.name.removesuffix(".bpf.c") for q in BPF_DIR.glob("*.bpf.c"))
        raise BuildError(f"no scheduler named {name_or_path!r} in {BPF_DIR}",
                         hint=f"known: {', '.join(known)}; or pass a FILE.bpf.c")
    return cand
