"""Build the workloads' C programs once, into a cache keyed by source digest.

The binaries are compiled on the host with its C compiler and then executed
either on the host or inside a micro-VM guest, which sees the host's files
read-only; a guest therefore never compiles, it finds the binary the host
built for the same sources (``ensure_native(..., build=False)``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from schedcp.settings import REPO_ROOT, env_path
from schedcp.workloads.spec import WorkloadError

CSRC = Path(__file__).resolve().parent / "csrc"
CFLAGS = ("-O2", "-pthread", "-Wall")


#: Set by ``python -m schedcp.workloads run --cache-dir`` so a guest looks
#: where the host built, whatever the guest's own environment says.
_override: Path | None = None


def set_cache_dir(path: Path | None) -> None:
    global _override
    _override = path


def cache_dir() -> Path:
    """Where built workload binaries live (``<schedcp cache>/workloads``).

    The schedcp cache is ``$SCHEDCP_CACHE_DIR``, else ``<repo>/.cache`` in a
    checkout, else ``~/.cache/schedcp`` (the same rule as the substrate's).
    """
    if _override is not None:
        return _override
    default = REPO_ROOT / ".cache" if (REPO_ROOT / ".git").exists() else Path.home() / ".cache" / "schedcp"
    root = env_path("SCHEDCP_CACHE_DIR", default,
                    doc="Cache for derived artefacts (kernels, VM images, BPF objects, built workloads); safe to delete.")
    assert root is not None
    return root / "workloads"


def source_digest(name: str) -> str:
    """Digest over the program's source, the shared header and the flags."""
    h = hashlib.sha256()
    for path in (CSRC / f"{name}.c", CSRC / "common.h"):
        try:
            h.update(path.read_bytes())
        except FileNotFoundError:
            raise WorkloadError(f"no workload program source {path}") from None
    h.update(" ".join(CFLAGS).encode())
    return h.hexdigest()[:16]


def native_path(name: str) -> Path:
    return cache_dir() / f"{name}-{source_digest(name)}"


#: Other names a program is run under, so a workload looks like the several
#: programs it stands for: a build runs a configure step, the compiler, the
#: archiver and the linker, and an observer tells a build from a batch of one
#: program partly by how many distinct programs (comms) it sees.
ALIASES: dict[str, tuple[str, ...]] = {"cpuburn": ("configure", "cc1", "ar", "ld")}


def alias_path(name: str, alias: str) -> Path:
    """Where ``alias`` (a symlink to the built ``name``) lives; the kernel names
    a process after the path it was exec'd by, so it runs with comm ``alias``."""
    return cache_dir() / f"{name}-{source_digest(name)}.d" / alias


def native_alias(name: str, alias: str, *, build: bool = True) -> Path:
    """The path that runs program ``name`` under the name ``alias``."""
    if alias not in ALIASES.get(name, ()):
        raise WorkloadError(f"{alias!r} is not a name of workload program {name}",
                            hint=f"known: {', '.join(ALIASES.get(name, ())) or 'none'}")
    path = alias_path(name, alias)
    if not path.exists():
        ensure_native(name, build=build)
    return path


def _ensure_aliases(name: str, target: Path, *, build: bool) -> None:
    aliases = ALIASES.get(name, ())
    if not aliases or all(alias_path(name, a).exists() for a in aliases):
        return
    if not build:
        raise WorkloadError(f"the program names of {name} are not set up ({alias_path(name, aliases[0]).parent})",
                            hint="build on the host first: python -m schedcp.workloads build")
    d = alias_path(name, aliases[0]).parent
    d.mkdir(parents=True, exist_ok=True)
    for alias in aliases:
        # Made under a temporary name and renamed, as the binary is, so a
        # concurrent run never finds a half-made directory of links.
        tmp = d / f".{alias}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(Path("..") / target.name)  # relative: the cache may move
        os.replace(tmp, d / alias)


def ensure_native(name: str, *, build: bool = True) -> Path:
    """The path of the built program ``name``, compiling it first if needed
    (and setting up the other names it runs under, see :data:`ALIASES`)."""
    target = native_path(name)
    if target.exists():
        _ensure_aliases(name, target, build=build)
        return target
    if not build:
        raise WorkloadError(f"workload program {name} is not built ({target} is missing)",
                            hint="build it on the host first: python -m schedcp.workloads build")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise WorkloadError("no C compiler found to build the workload programs",
                            hint="install gcc (scripts/install-system.sh) or set CC")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name and rename, so a concurrent run never
    # executes a half-written binary.
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *CFLAGS, "-o", tmp, str(CSRC / f"{name}.c")],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise WorkloadError(f"compiling workload program {name} failed",
                                hint=proc.stderr.strip()[-800:] or f"{cc} exited {proc.returncode}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _ensure_aliases(name, target, build=True)
    return target
