"""Choosing the micro-VMs' qemu: package parsing, version rules, resolution
order (SCHEDCP_QEMU > fetched > PATH) and a manifest that survives a move."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from schedcp.substrate import VmError
from schedcp.substrate import qemu as q

INDEX = """\
Package: qemu-system-x86
Version: 1:10.0.2+ds-2+deb13u1~bpo12+1
Depends: qemu-system-common

Package: qemu-system-x86
Version: 1:9.2.1+ds-1~bpo12+1

Package: qemu-system-x86-xen
Version: 1:11.0.0+ds-1

Package: qemu-system-data
Version: 1:10.0.2+ds-2+deb13u1~bpo12+1
"""


def test_package_versions_match_the_exact_name_only() -> None:
    assert q.package_versions(INDEX, "qemu-system-x86") == [
        "1:10.0.2+ds-2+deb13u1~bpo12+1", "1:9.2.1+ds-1~bpo12+1"]


def test_upstream_major_ignores_epoch_and_revision() -> None:
    assert q.upstream_major("1:10.0.2+ds-2+deb13u1~bpo12+1") == 10
    assert q.upstream_major("7.2+dfsg-7") == 7
    assert q.upstream_major("garbage") == 0


def test_newest_uses_debian_ordering() -> None:
    assert q.newest(["1:9.2.1+ds-1", "1:10.0.2+ds-2", "1:10.0.2+ds-2~bpo12+1"]) == "1:10.0.2+ds-2"
    assert q.newest([]) is None


def test_host_codename_reads_debian_os_release(tmp_path: Path) -> None:
    f = tmp_path / "os-release"
    f.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n')
    assert q.host_codename(f) == "bookworm"
    f.write_text('ID=fedora\nVERSION_CODENAME=""\n')
    assert q.host_codename(f) is None
    assert q.host_codename(tmp_path / "missing") is None


def _fake_tree(cache: Path) -> Path:
    root = cache / "qemu"
    tree = root / "1_10.0.2"
    (tree / "usr" / "share" / "qemu").mkdir(parents=True)
    binary = tree / q.BINARY
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\necho 'QEMU emulator version 10.0.2'\n")
    binary.chmod(0o755)
    (root / "manifest.json").write_text(json.dumps({"version": q.MANIFEST_VERSION, "selected": {
        "binary": f"1_10.0.2/{q.BINARY}", "datadir": f"1_10.0.2/{q.DATADIR}",
        "qemu_version": "QEMU emulator version 10.0.2"}}))
    return binary


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = _fake_tree(tmp_path)
    fetched = q.find_qemu({}, cache=tmp_path)
    assert fetched.source == "fetched" and fetched.binary == str(binary)
    # A fetched qemu must be pointed at its own firmware, not the host's.
    assert fetched.args == [str(binary), "-L", str(binary.parents[1] / "share" / "qemu")]
    assert q.binary_version(*fetched.args[::2]) == "QEMU emulator version 10.0.2"

    assert q.find_qemu({"SCHEDCP_QEMU": "/opt/q"}, cache=tmp_path).args == ["/opt/q"]

    monkeypatch.setattr(q.shutil, "which", lambda name: "/usr/bin/" + name)
    assert q.find_qemu({"SCHEDCP_QEMU_FETCH": "0"}, cache=tmp_path).source == "path"
    binary.unlink()  # a manifest pointing at a deleted tree is ignored
    assert q.find_qemu({}, cache=tmp_path) == q.Qemu("/usr/bin/qemu-system-x86_64")


def test_manifest_paths_are_relative_so_a_moved_cache_works(tmp_path: Path) -> None:
    _fake_tree(tmp_path / "a")
    os.rename(tmp_path / "a", tmp_path / "b")
    found = q.find_qemu({}, cache=tmp_path / "b")
    assert found.source == "fetched" and found.binary.startswith(str(tmp_path / "b"))


def test_no_qemu_anywhere_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(q.shutil, "which", lambda name: None)
    with pytest.raises(VmError) as exc:
        q.find_qemu({}, cache=tmp_path)
    assert "install.sh" in str(exc.value.hint) and "SCHEDCP_QEMU" in str(exc.value.hint)


def test_a_binary_that_does_not_run_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "qemu"
    bad.write_text("#!/bin/sh\necho 'error while loading shared libraries' >&2; exit 127\n")
    bad.chmod(0o755)
    with pytest.raises(VmError, match="shared libraries"):
        q.binary_version(str(bad))


def test_fetch_on_a_non_debian_host_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    monkeypatch.setattr(q, "host_codename", lambda *a, **k: None)
    assert q.QemuCache(tmp_path, progress=lines.append).fetch() is None
    assert lines and "PATH" in lines[0]
