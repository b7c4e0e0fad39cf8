"""Fetch and cache a newer qemu for the micro-VMs, without installing it.

Why: with multi-threaded TCG, bookworm's qemu 7.2 lets a vCPU execute a stale
translation of a code byte the guest kernel has just patched. The 7.3 guest
kernel flips static keys (``text_poke_bp``: int3, sync, new bytes, sync)
whenever a sched_ext scheduler is enabled or disabled; a vCPU that then runs
the old int3 finds no patch in progress and the kernel dies with
``Oops: int3`` in update_rq_clock or __schedule. Measured here on 2 cores:
two VMs cycling eight schedulers crashed on qemu 7.2 within 1 and 22 cycles;
qemu 10.0 (bookworm-backports) ran 48 cycles in two VMs and 72 in three with
no oops. Single-threaded TCG also avoids the race but serialises the vCPUs,
which turns every parallel measurement into a sequential one.

How: the same private apt configuration the kernel fetch uses (own sources,
lists and status under ``<cache>/qemu/apt``) downloads ``qemu-system-x86``
and ``qemu-system-data`` from the host's ``<codename>-backports`` suite and
unpacks them with ``dpkg-deb -x`` under ``<cache>/qemu/<version>/``. The
host's qemu packages are never touched; the host's virtiofsd (qemu 7.2's C
one) keeps serving the guest, since vhost-user is a stable protocol.

Resolution (``find_qemu``): ``SCHEDCP_QEMU`` if set, else the fetched qemu,
else ``qemu-system-x86_64`` on PATH. ``SCHEDCP_QEMU_FETCH=0`` skips the
fetch (install-time) for hosts whose own qemu is new enough.

Run ``python -m schedcp.substrate.qemu`` to fetch (idempotent, cached).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schedcp.substrate import VmError
from schedcp.substrate.kernel import (
    DEFAULT_MIRROR,
    KernelFetchError,
    PrivateApt,
    Progress,
    _deb_path,
    _dpkg_extract,
    cache_dir,
    compare_debian_versions,
    dir_lock,
)

#: The first upstream release measured free of the stale-int3 race here.
#: Older candidates are refused rather than fetched.
MIN_MAJOR = 10
PACKAGES = ("qemu-system-x86", "qemu-system-data")
BINARY = "usr/bin/qemu-system-x86_64"
DATADIR = "usr/share/qemu"
MANIFEST_VERSION = 1


def _default_progress(msg: str) -> None:
    print(f"schedcp qemu: {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Qemu:
    """A qemu binary and the firmware directory it must be given with ``-L``."""

    binary: str
    datadir: str | None = None
    version: str = ""
    source: str = "path"  # "env", "fetched" or "path"

    @property
    def args(self) -> list[str]:
        """The command prefix: the binary, plus ``-L`` for a fetched qemu
        (its compiled-in data dir is the host's, which belongs to the older
        host qemu)."""
        return [self.binary, *(["-L", self.datadir] if self.datadir else [])]


def host_codename(os_release: Path = Path("/etc/os-release")) -> str | None:
    """The Debian codename of this host (``bookworm``), or None elsewhere."""
    try:
        text = os_release.read_text()
    except OSError:
        return None
    fields = dict(re.findall(r'^([A-Z_]+)="?([^"\n]*)"?$', text, re.M))
    if fields.get("ID") != "debian" and "debian" not in fields.get("ID_LIKE", ""):
        return None
    return fields.get("VERSION_CODENAME") or None


def package_versions(index: str, package: str) -> list[str]:
    """Every version of ``package`` in one apt ``Packages`` index."""
    out = []
    for stanza in index.split("\n\n"):
        m = re.search(r"^Package: (\S+)$", stanza, re.M)
        v = re.search(r"^Version: (\S+)$", stanza, re.M)
        if m and v and m.group(1) == package:
            out.append(v.group(1))
    return out


def upstream_major(version: str) -> int:
    """``1:10.0.2+ds-2~bpo12+1`` -> 10 (epoch and Debian revision dropped)."""
    m = re.match(r"(?:\d+:)?(\d+)\.", version)
    return int(m.group(1)) if m else 0


def newest(versions: list[str]) -> str | None:
    best: str | None = None
    for v in versions:
        if best is None or compare_debian_versions(v, best) > 0:
            best = v
    return best


def binary_version(binary: str, datadir: str | None = None) -> str:
    """``QEMU emulator version 10.0.2 (...)`` from running the binary, or raise."""
    cmd = [binary, *(["-L", datadir] if datadir else []), "--version"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VmError(f"{binary} does not run: {exc}") from None
    if proc.returncode != 0 or not proc.stdout:
        raise VmError(f"{binary} --version failed: {(proc.stderr or proc.stdout).strip()[-300:]}",
                      hint="a fetched qemu needs the host's shared libraries; set "
                           "SCHEDCP_QEMU to a qemu that runs here")
    return proc.stdout.splitlines()[0]


class QemuCache:
    """``<cache>/qemu``: private apt state, debs, unpacked trees, manifest.json."""

    def __init__(self, root: Path | None = None, *, progress: Progress | None = None,
                 mirror: str | None = None, codename: str | None = None) -> None:
        self.root = (root or cache_dir()) / "qemu"
        self.root.mkdir(parents=True, exist_ok=True)
        self.progress = progress or _default_progress
        self.mirror = mirror or os.environ.get("SCHEDCP_DEBIAN_MIRROR", "").strip() or DEFAULT_MIRROR
        self.codename = codename
        self.manifest_path = self.root / "manifest.json"

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return dir_lock(self.root)

    def load_manifest(self) -> dict:
        try:
            data = json.loads(self.manifest_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if data.get("version") == MANIFEST_VERSION else {}

    def save_manifest(self, data: dict) -> None:
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": MANIFEST_VERSION, **data}, indent=2,
                                  sort_keys=True) + "\n")
        tmp.replace(self.manifest_path)

    def cached(self) -> Qemu | None:
        """The fetched qemu if one is recorded and still on disk. Paths in the
        manifest are relative to the cache so a moved or bind-mounted cache
        keeps working."""
        entry = self.load_manifest().get("selected")
        if not entry:
            return None
        binary = self.root / entry["binary"]
        datadir = self.root / entry["datadir"]
        if not os.access(binary, os.X_OK) or not datadir.is_dir():
            return None
        return Qemu(str(binary), str(datadir), entry.get("qemu_version", ""), "fetched")

    def fetch(self, *, refresh: bool = False) -> Qemu | None:
        """Fetch the newest qemu of at least MIN_MAJOR from the host's
        backports suite. None (with a progress line saying why) when this host
        has no such suite or no such package: the PATH qemu is used then."""
        codename = self.codename or host_codename()
        if not codename:
            self.progress("not a Debian host: using the qemu on PATH")
            return None
        suite = f"{codename}-backports"
        apt = PrivateApt(self.root / "apt", suites=(suite,), mirror=self.mirror)
        age = apt.lists_age()
        if refresh or age is None or age > 6 * 3600:
            self.progress(f"updating package lists for {suite} from {self.mirror}")
            apt.update()
        versions: list[str] = []
        for f in sorted((self.root / "apt" / "lists").glob("*_Packages")):
            versions += package_versions(f.read_text(errors="replace"), PACKAGES[0])
        good = [v for v in versions if upstream_major(v) >= MIN_MAJOR]
        version = newest(good)
        if version is None:
            self.progress(f"no qemu >= {MIN_MAJOR} in {suite} (found: {', '.join(versions) or 'none'});"
                          " using the qemu on PATH")
            return None
        tree = self.root / re.sub(r"[^A-Za-z0-9.+~-]", "_", version)
        debs = self.root / "debs"
        t0 = time.monotonic()
        if not (tree / BINARY).exists():
            self.progress(f"downloading qemu {version} from {suite}")
            staging = tree.with_name(tree.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            for pkg in PACKAGES:
                deb = _deb_path(debs, pkg, version) or apt.download(pkg, version, debs)
                _dpkg_extract(deb, staging)
            # Rename last: a tree that exists is complete.
            shutil.rmtree(tree, ignore_errors=True)
            staging.rename(tree)
        found = binary_version(str(tree / BINARY), str(tree / DATADIR))
        self.save_manifest({"selected": {
            "package_version": version, "suite": suite, "qemu_version": found,
            "binary": str((tree / BINARY).relative_to(self.root)),
            "datadir": str((tree / DATADIR).relative_to(self.root)),
        }})
        self.progress(f"qemu ready: {found} [{time.monotonic() - t0:.1f}s]")
        return self.cached()


def fetch_enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("SCHEDCP_QEMU_FETCH", "1").strip().lower() not in ("0", "false", "no", "off")


def ensure_qemu(*, refresh: bool = False, progress: Progress | None = None,
                cache: Path | None = None) -> Qemu | None:
    """The fetched qemu, fetching it on first use; None where there is none to
    fetch (then :func:`find_qemu` falls back to PATH)."""
    qc = QemuCache(cache, progress=progress)
    with qc.locked():
        found = qc.cached()
        if found is not None and not refresh:
            return found
        try:
            return qc.fetch(refresh=refresh) or found
        except KernelFetchError as exc:
            if found is None:
                raise VmError(f"could not fetch a newer qemu: {exc.message}",
                              hint="check network access to the Debian mirror, set "
                                   "SCHEDCP_QEMU_FETCH=0 to use the host's qemu, or "
                                   "SCHEDCP_QEMU to one of your own") from None
            qc.progress(f"refresh failed ({exc.message}); keeping {found.version}")
            return found


def find_qemu(environ: dict[str, str] | None = None, *, cache: Path | None = None) -> Qemu:
    """``SCHEDCP_QEMU``, else the fetched qemu, else the one on PATH.

    Never downloads: fetching is an install step (``scripts/install.sh``),
    not something a VM boot should wait on.
    """
    env = os.environ if environ is None else environ
    override = env.get("SCHEDCP_QEMU", "").strip()
    if override:
        return Qemu(override, source="env")
    if fetch_enabled(env):
        fetched = QemuCache(cache).cached()
        if fetched is not None:
            return fetched
    found = shutil.which("qemu-system-x86_64")
    if not found:
        raise VmError("qemu-system-x86_64 not found",
                      hint="run scripts/install.sh (fetches a qemu into the cache), install "
                           "qemu-system-x86, or set SCHEDCP_QEMU")
    return Qemu(found, source="path")


def main(argv: list[str] | None = None) -> int:
    """``python -m schedcp.substrate.qemu [--refresh] [--json]``."""
    ap = argparse.ArgumentParser(prog="python -m schedcp.substrate.qemu",
                                 description="Fetch (or show) the qemu the micro-VMs use.")
    ap.add_argument("--refresh", action="store_true", help="re-read package lists and re-select")
    ap.add_argument("--json", action="store_true", help="print the choice as JSON")
    args = ap.parse_args(argv)
    try:
        if fetch_enabled():
            ensure_qemu(refresh=args.refresh)
        q = find_qemu()
        version = q.version or binary_version(q.binary, q.datadir)
    except VmError as exc:
        print(f"schedcp qemu: error: {exc}", file=sys.stderr)
        return 2
    doc = {"binary": q.binary, "datadir": q.datadir, "version": version, "source": q.source}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"qemu: {version}\n  binary {q.binary} ({q.source})"
              + (f"\n  firmware {q.datadir}" if q.datadir else ""))
        if q.source == "path" and upstream_major(version.split("version ")[-1]) < MIN_MAJOR:
            print(f"  note: qemu < {MIN_MAJOR} with multi-threaded TCG can crash the guest while "
                  "it enables a scheduler; SCHEDCP_TCG_THREAD=single avoids that, more slowly",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
