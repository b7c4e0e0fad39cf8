"""Fetch, check and cache a sched_ext kernel for the micro-VMs.

The host kernel here (and on CI) is built without CONFIG_SCHED_CLASS_EXT, so
schedulers run in guests booting a Debian cloud kernel from a newer suite.
The kernel packages are downloaded with a *private* apt configuration (own
sources list, lists, cache and status under the cache dir) and unpacked with
``dpkg-deb -x``: the host's apt state and /boot are never touched.

Which kernel: the newest candidate whose BTF really carries the
``scx_bpf_*_impl`` kfunc variants (some Debian builds lack them and then
reject any scheduler that creates its own DSQ) and whose config has
CONFIG_SCHED_CLASS_EXT=y. Versions are checked, never assumed; rejected
candidates are remembered with the reason so later runs do not download them
again. A second, older kernel can be fetched only for its BTF (selector
``"oldest"``; Debian's 6.12 builds have no sched_ext) so the BPF build chain
can show one source builds for both.

``SCHEDCP_KERNEL=/path/to/vmlinux-or-bzImage`` (plus optional
``SCHEDCP_KERNEL_MODULES``, ``SCHEDCP_KERNEL_CONFIG``) uses a user-supplied
kernel instead of fetching.

Run ``python -m schedcp.substrate.kernel`` to fetch (idempotent, cached).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from schedcp.substrate import KernelError

Progress = Callable[[str], None]


class KernelFetchError(KernelError):
    """apt could not reach the mirror or download a package (says nothing about the kernel)."""

    code = "kernel_fetch"

#: Functions whose presence in BTF proves the kernel exports the implicit-
#: argument kfunc variants (the "+deb13" 7.2 builds lack them).
REQUIRED_IMPL_KFUNC = "scx_bpf_create_dsq_impl"

MANIFEST_VERSION = 1
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


# ---------------------------------------------------------------------------
# Where things live


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """The substrate cache: SCHEDCP_CACHE_DIR, else ``<repo>/.cache`` in a
    checkout, else ``~/.cache/schedcp``."""
    env = os.environ if environ is None else environ
    raw = env.get("SCHEDCP_CACHE_DIR", "").strip()
    if raw:
        return Path(raw).expanduser()
    root = repo_root()
    if (root / ".git").exists():
        return root / ".cache"
    return Path(env.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "schedcp"


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class BtfInfo:
    """What the kernel's BTF says about sched_ext."""

    has_sched_ext: bool
    #: ``scx_bpf_*_impl`` kfuncs present (empty on builds with the BTF defect).
    impl_kfuncs: tuple[str, ...] = ()
    #: Number of ``scx_bpf_*`` functions in BTF.
    scx_kfunc_count: int = 0

    @property
    def has_impl_kfuncs(self) -> bool:
        return REQUIRED_IMPL_KFUNC in self.impl_kfuncs


@dataclass(frozen=True)
class Kernel:
    """A kernel ready to boot (or to read BTF from)."""

    #: ``uname -r`` inside the guest, e.g. ``7.3.4+deb13-cloud-amd64``.
    release: str
    #: Debian package version, or "" for a user-supplied kernel.
    version: str
    #: Uncompressed ELF vmlinux: boot with ``-kernel`` (PVH) and read BTF from it.
    vmlinux: Path
    #: Kernel config file, if known.
    config: Path | None
    #: ``lib/modules/<release>`` directory with the .ko files, if any.
    modules_dir: Path | None
    btf: BtfInfo
    #: Where it came from, e.g. ``debian:experimental linux-binary-...=7.3~rc7-1~exp1``.
    source: str
    #: Selector that chose it ("sched_ext", "oldest", "user").
    selector: str = "sched_ext"

    def to_json(self, relative_to: Path | None = None) -> dict[str, object]:
        """Paths under ``relative_to`` are stored relative to it, so a cache
        that is moved or mounted elsewhere (a container) still resolves."""
        d = asdict(self)
        for k in ("vmlinux", "config", "modules_dir"):
            p = d[k]
            if p is not None and relative_to is not None and Path(p).is_relative_to(relative_to):
                p = Path(p).relative_to(relative_to)
            d[k] = None if p is None else str(p)
        d["btf"] = asdict(self.btf)
        return d

    @classmethod
    def from_json(cls, d: dict[str, object], base: Path | None = None) -> Kernel:
        btf = dict(d["btf"])  # type: ignore[call-overload]
        btf["impl_kfuncs"] = tuple(btf.get("impl_kfuncs", ()))

        def path(key: str) -> Path | None:
            if d.get(key) is None:
                return None
            p = Path(str(d[key]))
            return base / p if base is not None and not p.is_absolute() else p

        return cls(
            release=str(d["release"]),
            version=str(d["version"]),
            vmlinux=path("vmlinux"),  # type: ignore[arg-type]
            config=path("config"),
            modules_dir=path("modules_dir"),
            btf=BtfInfo(**btf),
            source=str(d["source"]),
            selector=str(d.get("selector", "sched_ext")),
        )


@dataclass(frozen=True)
class KernelSelector:
    """Which Debian packages to consider and what a kernel must pass."""

    name: str
    suites: tuple[str, ...]
    #: Regex over package names; group ``abi`` is the kernel release.
    package_re: str
    require_impl_kfuncs: bool
    #: Packaging layout: "binary" (linux-binary/-modules/-base split, 6.19+)
    #: or "image" (one linux-image package with /boot and /lib/modules).
    layout: str = "binary"
    #: "newest" or "oldest" candidate first.
    prefer: str = "newest"


SELECTORS: dict[str, KernelSelector] = {
    # The boot kernel: newest good sched_ext kernel from the newer suites.
    "sched_ext": KernelSelector(
        name="sched_ext",
        suites=("trixie-backports", "unstable", "experimental"),
        package_re=r"^linux-binary-(?:unsigned-)?(?P<abi>\d[^\s]*-cloud-amd64)$",
        require_impl_kfuncs=True,
        layout="binary",
    ),
    # An older kernel used only for its BTF, so the BPF build chain can show
    # one source builds for two kernels. Debian's 6.12 builds (bookworm-
    # backports, trixie) have CONFIG_SCHED_CLASS_EXT unset, so this is the
    # oldest cloud kernel in trixie-backports that has sched_ext (6.16 at the
    # time of writing: it still exports the pre-6.13 scx_bpf_dispatch names).
    "oldest": KernelSelector(
        name="oldest",
        suites=("trixie-backports",),
        package_re=r"^linux-image-(?P<abi>6\.\d+\.[^\s]*-cloud-amd64)$",
        require_impl_kfuncs=False,
        layout="image",
        prefer="oldest",
    ),
}


@dataclass(frozen=True)
class Candidate:
    """One kernel package version available from a suite."""

    package: str
    version: str
    suite: str
    abi: str
    size: int = 0

    @property
    def key(self) -> str:
        return f"{self.package}={self.version}"


# ---------------------------------------------------------------------------
# Pure logic: Debian version ordering, package lists, BTF and config parsing


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or revision string."""
    i = j = 0
    while i < len(a) or j < len(b):
        diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not diff:
                diff = (a[i] > b[j]) - (a[i] < b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if diff:
            return diff
    return 0


def compare_debian_versions(a: str, b: str) -> int:
    """Compare two Debian versions like ``dpkg --compare-versions``: -1, 0 or 1."""

    def split(v: str) -> tuple[int, str, str]:
        epoch = 0
        if ":" in v:
            e, v = v.split(":", 1)
            epoch = int(e)
        if "-" in v:
            up, rev = v.rsplit("-", 1)
        else:
            up, rev = v, ""
        return epoch, up, rev

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


class _DebVersion:
    __slots__ = ("v",)

    def __init__(self, v: str) -> None:
        self.v = v

    def __lt__(self, other: _DebVersion) -> bool:
        return compare_debian_versions(self.v, other.v) < 0

    # Tuple ordering tests == first; without this equal versions never tie.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, _DebVersion) and compare_debian_versions(self.v, other.v) == 0


def parse_packages_index(text: str, suite: str, pattern: str) -> list[Candidate]:
    """Kernel candidates from one apt ``Packages`` index whose names match ``pattern``."""
    rx = re.compile(pattern)
    out: list[Candidate] = []
    for stanza in text.split("\n\n"):
        if not stanza.startswith("Package: linux-"):
            continue
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            fields[k] = v.strip()
        m = rx.match(fields.get("Package", ""))
        if not m or "Version" not in fields:
            continue
        out.append(Candidate(package=fields["Package"], version=fields["Version"], suite=suite,
                             abi=m.group("abi"), size=int(fields.get("Size", "0") or 0)))
    return out


def order_candidates(cands: Iterable[Candidate]) -> list[Candidate]:
    """Newest first; for one version prefer the signed package; drop duplicates."""
    seen: set[tuple[str, str]] = set()
    ranked = sorted(cands, key=lambda c: (_DebVersion(c.version), "unsigned" not in c.package),
                    reverse=True)
    out = []
    for c in ranked:
        if (c.abi, c.version) in seen:
            continue
        seen.add((c.abi, c.version))
        out.append(c)
    return out


_BTF_FUNC = re.compile(r"^\[\d+\] FUNC '([^']+)'", re.M)


def parse_btf_dump(text: str) -> BtfInfo:
    """Summarise ``bpftool btf dump file VMLINUX`` (raw format) output."""
    funcs = set(_BTF_FUNC.findall(text))
    scx = sorted(f for f in funcs if f.startswith("scx_bpf_"))
    impl = tuple(f for f in scx if f.endswith("_impl"))
    has_scx = "STRUCT 'sched_ext_ops'" in text and bool(scx)
    return BtfInfo(has_sched_ext=has_scx, impl_kfuncs=impl, scx_kfunc_count=len(scx))


def parse_config(text: str) -> dict[str, str]:
    """``CONFIG_X=value`` lines of a kernel config; unset options are absent."""
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v.strip().strip('"')
    return out


def check_candidate(btf: BtfInfo, config: dict[str, str] | None, *, require_impl: bool) -> str | None:
    """Why a kernel is unusable, or None when it passes."""
    if not btf.has_sched_ext:
        return "BTF has no sched_ext (no struct sched_ext_ops / scx_bpf_* kfuncs)"
    if require_impl and not btf.has_impl_kfuncs:
        return f"BTF lacks the _impl kfunc variants ({REQUIRED_IMPL_KFUNC} missing)"
    if config is not None and config.get("CONFIG_SCHED_CLASS_EXT") != "y":
        return "CONFIG_SCHED_CLASS_EXT is not y"
    return None


_ZSTD = b"\x28\xb5\x2f\xfd"
_XZ = b"\xfd7zXZ\x00"
_GZIP = b"\x1f\x8b\x08"


def bzimage_payload(image: bytes) -> tuple[bytes, str]:
    """The compressed kernel inside a bzImage and its format (zstd, xz, gzip).

    Uses the setup header's ``payload_offset``/``payload_length`` rather than
    scanning for a magic, which can match by accident in the setup code.
    """
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        raise KernelError("not a bzImage (no HdrS setup header)",
                          hint="point SCHEDCP_KERNEL at an x86 bzImage or an uncompressed vmlinux")
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = image[start:start + length]
    for magic, kind in ((_ZSTD, "zstd"), (_XZ, "xz"), (_GZIP, "gzip")):
        if payload.startswith(magic):
            return payload, kind
    raise KernelError(f"bzImage payload has an unknown compression (magic {payload[:4].hex()})",
                      hint="use a kernel compressed with zstd, xz or gzip, or an uncompressed vmlinux")


def extract_vmlinux(image: bytes) -> bytes:
    """The uncompressed ELF vmlinux from a bzImage (or ``image`` itself if already ELF)."""
    if image.startswith(b"\x7fELF"):
        return image
    payload, kind = bzimage_payload(image)
    if kind == "zstd":
        # The kernel appends the uncompressed size after the frame; zstd calls
        # that trailing garbage and exits 1 after writing the full output.
        proc = subprocess.run(["zstd", "-d", "-c", "-q"], input=payload, capture_output=True)
        out = proc.stdout
    elif kind == "xz":
        out = lzma.LZMADecompressor().decompress(payload)
    else:
        # wbits=31: a gzip stream; bytes after it (the size trailer) are ignored.
        out = zlib.decompressobj(31).decompress(payload)
    if not out.startswith(b"\x7fELF"):
        raise KernelError(f"decompressing the {kind} kernel payload did not yield an ELF vmlinux",
                          hint="check that zstd is installed (scripts/install-system.sh)")
    return out


_BANNER = re.compile(rb"Linux version (\S+) ")


def release_from_vmlinux(vmlinux: bytes) -> str:
    """The ``uname -r`` string from the kernel's version banner."""
    m = _BANNER.search(vmlinux)
    if not m:
        raise KernelError("no 'Linux version' banner in the kernel image",
                          hint="is SCHEDCP_KERNEL really a Linux kernel?")
    return m.group(1).decode()


# ---------------------------------------------------------------------------
# Side effects: apt, dpkg-deb, bpftool


def _default_progress(msg: str) -> None:
    print(f"schedcp kernel: {msg}", file=sys.stderr, flush=True)


def btf_info(vmlinux: Path) -> BtfInfo:
    """Run bpftool over ``vmlinux`` and summarise its sched_ext BTF."""
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    try:
        proc = subprocess.run([bpftool, "btf", "dump", "file", str(vmlinux)],
                              capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise KernelError("bpftool not found", hint="run scripts/install-system.sh") from None
    if proc.returncode != 0:
        return BtfInfo(has_sched_ext=False)
    return parse_btf_dump(proc.stdout)


class PrivateApt:
    """apt-get with its own sources, lists, cache and status under ``root``.

    The host's /etc/apt/apt.conf.d still applies (so a configured proxy keeps
    working), but its sources, preferences and dpkg status do not.
    """

    def __init__(self, root: Path, *, suites: Iterable[str], mirror: str = DEFAULT_MIRROR) -> None:
        self.root = root
        self.suites = tuple(suites)
        self.mirror = mirror
        for d in ("lists/partial", "cache/archives/partial", "state", "etc/sources.list.d",
                  "etc/preferences.d"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "state" / "status").touch()
        keyring = DEBIAN_KEYRING if Path(DEBIAN_KEYRING).exists() else None
        signed = f" [signed-by={keyring}]" if keyring else ""
        lines = [f"deb{signed} {mirror} {s} main" for s in self.suites]
        src = root / "etc" / "sources.list"
        text = "\n".join(lines) + "\n"
        if not src.exists() or src.read_text() != text:
            src.write_text(text)
            # Stale lists from other suites would otherwise linger.
            for f in (root / "lists").glob("*_Packages"):
                f.unlink()

    def _opts(self) -> list[str]:
        r = self.root
        opts = {
            "Dir::Etc::SourceList": r / "etc" / "sources.list",
            "Dir::Etc::SourceParts": r / "etc" / "sources.list.d",
            "Dir::Etc::Preferences": r / "etc" / "preferences",
            "Dir::Etc::PreferencesParts": r / "etc" / "preferences.d",
            "Dir::State": r / "state",
            "Dir::State::Lists": r / "lists",
            "Dir::State::status": r / "state" / "status",
            "Dir::Cache": r / "cache",
            "APT::Architecture": "amd64",
            "APT::Architectures": "amd64",
            "Acquire::Languages": "none",
            # Keep indexes plain text: we parse them ourselves.
            "Acquire::GzipIndexes": "false",
            # Downloads land in our own directories, so no _apt sandbox user.
            "APT::Sandbox::User": "root",
        }
        out = []
        for k, v in opts.items():
            out += ["-o", f"{k}={v}"]
        return out

    def _run(self, args: list[str], *, cwd: Path | None = None, timeout: float = 900) -> None:
        cmd = ["apt-get", "-q", *self._opts(), *args]
        try:
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise KernelError("apt-get not found",
                              hint="fetching kernels needs a Debian host; or set SCHEDCP_KERNEL") from None
        except subprocess.TimeoutExpired:
            raise KernelFetchError(f"apt-get {args[0]} timed out after {timeout:.0f}s",
                              hint="check the network connection to the Debian mirror") from None
        if proc.returncode != 0 or "Failed to fetch" in proc.stderr or re.search(r"^E: ", proc.stderr, re.M):
            err = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise KernelFetchError(f"apt-get {' '.join(args)} failed: " + " | ".join(err),
                              hint=f"check network access to {self.mirror} (or set SCHEDCP_KERNEL "
                                   "to a kernel image you already have)")

    def update(self) -> None:
        self._run(["update"])

    def lists_age(self) -> float | None:
        files = list((self.root / "lists").glob("*_Packages"))
        if not files:
            return None
        return time.time() - min(f.stat().st_mtime for f in files)

    def candidates(self, selector: KernelSelector) -> list[Candidate]:
        out: list[Candidate] = []
        for f in sorted((self.root / "lists").glob("*_Packages")):
            suite = _suite_of_list(f.name)
            if suite not in selector.suites:
                continue
            out += parse_packages_index(f.read_text(errors="replace"), suite, selector.package_re)
        ordered = order_candidates(out)
        return ordered[::-1] if selector.prefer == "oldest" else ordered

    def download(self, package: str, version: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        existing = _deb_path(dest, package, version)
        if existing:
            return existing
        self._run(["download", f"{package}={version}"], cwd=dest)
        found = _deb_path(dest, package, version)
        if not found:
            raise KernelError(f"apt-get download {package}={version} left no .deb in {dest}")
        return found


def _suite_of_list(name: str) -> str:
    # e.g. deb.debian.org_debian_dists_trixie-backports_main_binary-amd64_Packages
    m = re.search(r"_dists_(.+?)_main_binary-", name)
    return m.group(1) if m else ""


def _deb_path(dest: Path, package: str, version: str) -> Path | None:
    quoted = version.replace(":", "%3a")
    for p in dest.glob(f"{package}_*.deb"):
        if p.name.startswith(f"{package}_{quoted}_") or p.name.startswith(f"{package}_{version}_"):
            return p
    return None


def _dpkg_extract(deb: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise KernelError(f"dpkg-deb -x {deb.name} failed: {proc.stderr.strip()}")


# ---------------------------------------------------------------------------
# The cache and its manifest


@contextlib.contextmanager
def dir_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on ``<directory>/.lock`` for the duration."""
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class KernelCache:
    """``<cache>/kernels``: unpacked kernels, debs, private apt state, manifest.json."""

    def __init__(self, root: Path | None = None, *, progress: Progress | None = None,
                 mirror: str | None = None) -> None:
        self.root = (root or cache_dir()) / "kernels"
        self.root.mkdir(parents=True, exist_ok=True)
        self.progress = progress or _default_progress
        self.mirror = mirror or os.environ.get("SCHEDCP_DEBIAN_MIRROR", "").strip() or DEFAULT_MIRROR
        self.manifest_path = self.root / "manifest.json"

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Serialise fetches between processes (tests, helpers, CI steps)."""
        return dir_lock(self.root)

    def load_manifest(self) -> dict[str, dict]:
        try:
            data = json.loads(self.manifest_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            data = {}
        data.setdefault("version", MANIFEST_VERSION)
        data.setdefault("selected", {})
        data.setdefault("rejected", {})
        return data

    def save_manifest(self, data: dict) -> None:
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.manifest_path)

    def cached(self, selector: str) -> Kernel | None:
        entry = self.load_manifest()["selected"].get(selector)
        if not entry:
            return None
        k = Kernel.from_json(entry, base=self.root)
        if not k.vmlinux.exists():
            return None
        return k

    def apt(self) -> PrivateApt:
        suites = sorted({s for sel in SELECTORS.values() for s in sel.suites})
        return PrivateApt(self.root / "apt", suites=suites, mirror=self.mirror)

    # -- fetching ---------------------------------------------------------

    def fetch(self, sel: KernelSelector, *, refresh: bool) -> Kernel:
        apt = self.apt()
        age = apt.lists_age()
        if refresh or age is None or age > 6 * 3600:
            t0 = time.monotonic()
            self.progress(f"updating package lists for {', '.join(apt.suites)} from {self.mirror}")
            apt.update()
            self.progress(f"package lists ready in {time.monotonic() - t0:.1f}s")
        cands = apt.candidates(sel)
        if not cands:
            raise KernelError(f"no {sel.name} kernel packages found in {', '.join(sel.suites)}",
                              hint="the suites may have moved on; check SCHEDCP_DEBIAN_MIRROR or set "
                                   "SCHEDCP_KERNEL")
        manifest = self.load_manifest()
        rejected: dict[str, str] = manifest["rejected"]
        tried: list[str] = []
        for cand in cands:
            reason: str | None
            kernel: Kernel | None
            if cand.key in rejected:
                tried.append(f"{cand.key} ({cand.suite}): {rejected[cand.key]} [cached verdict]")
                continue
            try:
                kernel = self._try(apt, sel, cand)
            except KernelFetchError:
                raise  # network trouble says nothing about the kernel: no verdict
            except KernelError as exc:
                reason = exc.message
                kernel = None
            else:
                reason = None
            if kernel is not None:
                manifest = self.load_manifest()
                manifest["selected"][sel.name] = kernel.to_json(relative_to=self.root)
                manifest["selected"][sel.name]["fetched_at"] = time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                self.save_manifest(manifest)
                return kernel
            assert reason is not None
            self.progress(f"rejected {cand.key} from {cand.suite}: {reason}")
            for p in (self.root / "debs").glob("*.deb"):
                p.unlink()
            rejected[cand.key] = reason
            manifest = self.load_manifest()
            manifest["rejected"][cand.key] = reason
            self.save_manifest(manifest)
            tried.append(f"{cand.key} ({cand.suite}): {reason}")
        raise KernelError(
            f"no {sel.name} kernel passed the checks; tried: " + "; ".join(tried),
            hint="wait for a fixed build in the suites, or set SCHEDCP_KERNEL to a kernel with "
                 "sched_ext and the _impl kfuncs in its BTF")

    def _try(self, apt: PrivateApt, sel: KernelSelector, cand: Candidate) -> Kernel | None:
        debs = self.root / "debs"
        t0 = time.monotonic()
        self.progress(f"downloading {cand.package} {cand.version} from {cand.suite} "
                      f"({cand.size / 1e6:.1f} MB)")
        deb = apt.download(cand.package, cand.version, debs)
        self.progress(f"downloaded {deb.name} in {time.monotonic() - t0:.1f}s")
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            unpack = Path(tmp) / "x"
            _dpkg_extract(deb, unpack)
            images = sorted(unpack.glob("usr/lib/modules/*/vmlinuz*")) + sorted(unpack.glob("boot/vmlinuz-*"))
            if not images:
                raise KernelError(f"{cand.package} contains no vmlinuz")
            vmlinux = extract_vmlinux(images[0].read_bytes())
            staged = Path(tmp) / "vmlinux"
            staged.write_bytes(vmlinux)
            btf = btf_info(staged)
            why = check_candidate(btf, None, require_impl=sel.require_impl_kfuncs)
            if why:
                raise KernelError(why)
            # The image passes: get config and modules.
            dest = self.root / cand.abi
            if dest.exists():
                shutil.rmtree(dest)
            rootfs = dest / "rootfs"
            if sel.layout == "binary":
                for extra in (f"linux-base-{cand.abi}", f"linux-modules-{cand.abi}"):
                    t1 = time.monotonic()
                    self.progress(f"downloading {extra} {cand.version}")
                    xdeb = apt.download(extra, cand.version, debs)
                    self.progress(f"downloaded {xdeb.name} in {time.monotonic() - t1:.1f}s")
                    _dpkg_extract(xdeb, rootfs)
            else:
                _dpkg_extract(deb, rootfs)
            configs = (sorted(rootfs.glob(f"usr/lib/modules/{cand.abi}/config"))
                       + sorted(rootfs.glob(f"boot/config-{cand.abi}")))
            config_text = configs[0].read_text() if configs else None
            why = check_candidate(btf, parse_config(config_text) if config_text else None,
                                  require_impl=sel.require_impl_kfuncs)
            if config_text is None:
                why = why or "package has no kernel config"
            if why:
                shutil.rmtree(dest, ignore_errors=True)
                raise KernelError(why)
            dest.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged), dest / "vmlinux")
            (dest / "config").write_text(config_text or "")
            # Drop the image from rootfs: it is the large, redundant part.
            for p in list(rootfs.glob("usr/lib/modules/*/vmlinuz*")) + list(rootfs.glob("boot/vmlinuz-*")):
                p.unlink()
        mods = [p for p in (rootfs / "usr/lib/modules" / cand.abi, rootfs / "lib/modules" / cand.abi)
                if (p / "kernel").is_dir()]
        kernel = Kernel(
            release=cand.abi,
            version=cand.version,
            vmlinux=dest / "vmlinux",
            config=dest / "config",
            modules_dir=mods[0] if mods else None,
            btf=btf,
            source=f"debian:{cand.suite} {cand.key}",
            selector=sel.name,
        )
        (dest / "kernel.json").write_text(json.dumps(kernel.to_json(), indent=2) + "\n")
        # The verified image package is no longer needed; modules/base stay unpacked.
        for p in debs.glob("*.deb"):
            p.unlink()
        self.progress(f"selected {cand.abi} ({cand.version}, {cand.suite}); "
                      f"{len(btf.impl_kfuncs)} _impl kfuncs in BTF")
        return kernel


# ---------------------------------------------------------------------------
# User-supplied kernel


def user_kernel(image: Path, *, modules: Path | None = None, config: Path | None = None,
                cache: Path | None = None) -> Kernel:
    """A kernel the user points at (vmlinux or bzImage), checked and cached by content hash."""
    if not image.is_file():
        raise KernelError(f"SCHEDCP_KERNEL={image} is not a file",
                          hint="point it at a vmlinux or bzImage, or unset it to fetch Debian's")
    data = image.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    root = (cache or cache_dir()) / "kernels" / f"user-{digest}"
    memo = root / "kernel.json"
    key = {"image": str(image), "modules": str(modules), "config": str(config)}
    # The BTF check costs seconds; remember it per image content and arguments.
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        cached = json.loads(memo.read_text())
        if cached.get("key") == key:
            k = Kernel.from_json(cached["kernel"])
            if k.vmlinux.exists():
                return k
    if data.startswith(b"\x7fELF"):
        vmlinux = image
        raw = data
    else:
        raw = extract_vmlinux(data)
        root.mkdir(parents=True, exist_ok=True)
        vmlinux = root / "vmlinux"
        if not vmlinux.exists():
            vmlinux.write_bytes(raw)
    release = release_from_vmlinux(raw)
    btf = btf_info(vmlinux)
    if not btf.has_sched_ext:
        raise KernelError(f"{image} has no sched_ext in its BTF",
                          hint="build the kernel with CONFIG_SCHED_CLASS_EXT=y and CONFIG_DEBUG_INFO_BTF=y")
    if config is not None and parse_config(config.read_text()).get("CONFIG_SCHED_CLASS_EXT") != "y":
        raise KernelError(f"{config}: CONFIG_SCHED_CLASS_EXT is not y")
    kernel = Kernel(release=release, version="", vmlinux=vmlinux, config=config,
                    modules_dir=modules, btf=btf, source=f"user:{image}", selector="user")
    root.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"key": key, "kernel": kernel.to_json()}, indent=2) + "\n")
    return kernel


# ---------------------------------------------------------------------------
# Public entry points


def ensure_kernel(selector: str = "sched_ext", *, refresh: bool = False,
                  progress: Progress | None = None, cache: Path | None = None,
                  environ: dict[str, str] | None = None) -> Kernel:
    """A usable kernel, fetched on first use and cached afterwards.

    ``selector`` is "sched_ext" (the boot kernel: newest Debian cloud kernel
    with sched_ext and the _impl kfuncs) or "oldest" (the oldest Debian cloud
    kernel with sched_ext, for its BTF only). With the default selector, ``SCHEDCP_KERNEL`` overrides
    the fetch. ``refresh`` re-reads the package lists and re-selects.
    Thread/process safe: concurrent callers wait on a file lock.
    """
    env = os.environ if environ is None else environ
    if selector == "sched_ext" and env.get("SCHEDCP_KERNEL", "").strip():
        mods = env.get("SCHEDCP_KERNEL_MODULES", "").strip()
        conf = env.get("SCHEDCP_KERNEL_CONFIG", "").strip()
        return user_kernel(Path(env["SCHEDCP_KERNEL"].strip()).expanduser(),
                           modules=Path(mods) if mods else None,
                           config=Path(conf) if conf else None, cache=cache)
    sel = SELECTORS.get(selector)
    if sel is None:
        raise KernelError(f"unknown kernel selector {selector!r}",
                          hint=f"use one of: {', '.join(SELECTORS)}")
    kc = KernelCache(cache, progress=progress)
    if not refresh:
        # Manifest writes are atomic renames, so a cached kernel can be read
        # without the lock: a read-only cache mount (Kubernetes) works.
        found = kc.cached(selector)
        if found is not None:
            return found
    with kc.locked():
        found = kc.cached(selector)
        if found is not None and not refresh:
            return found
        try:
            return kc.fetch(sel, refresh=refresh)
        except KernelFetchError as exc:
            if found is None:
                raise
            # A refresh that cannot reach the mirror keeps the kernel we have.
            kc.progress(f"refresh failed ({exc.message}); keeping {found.release}")
            return found


def fetch_btf_kernel(selector: str = "oldest", **kw: object) -> Kernel:
    """An older kernel used only for its BTF (same as ``ensure_kernel(selector)``)."""
    return ensure_kernel(selector, **kw)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """``python -m schedcp.substrate.kernel [--refresh] [--btf-kernel] [--json]``."""
    ap = argparse.ArgumentParser(prog="python -m schedcp.substrate.kernel",
                                 description="Fetch (or show) the cached sched_ext kernel.")
    ap.add_argument("--refresh", action="store_true", help="re-read package lists and re-select")
    ap.add_argument("--selector", action="append", choices=sorted(SELECTORS),
                    help="which kernel(s); default sched_ext")
    ap.add_argument("--all", action="store_true", help="fetch every selector (boot kernel + oldest BTF)")
    ap.add_argument("--json", action="store_true", help="print the kernel(s) as JSON")
    args = ap.parse_args(argv)
    selectors = sorted(SELECTORS) if args.all else (args.selector or ["sched_ext"])
    out = []
    for s in selectors:
        t0 = time.monotonic()
        try:
            k = ensure_kernel(s, refresh=args.refresh)
        except KernelError as exc:
            print(f"schedcp kernel: error: {exc}", file=sys.stderr)
            return 2
        dt = time.monotonic() - t0
        out.append(k.to_json() | {"seconds": round(dt, 2)})
        if not args.json:
            print(f"{s}: {k.release} ({k.version or 'user'}) {k.source}\n  vmlinux {k.vmlinux}\n"
                  f"  modules {k.modules_dir}\n  sched_ext BTF: {k.btf.has_sched_ext}, "
                  f"_impl kfuncs: {len(k.btf.impl_kfuncs)} [{dt:.1f}s]")
    if args.json:
        print(json.dumps(out if len(out) > 1 else out[0], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
