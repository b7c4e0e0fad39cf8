"""The newc writer produces what the kernel's unpacker expects."""

from __future__ import annotations

import json
import stat

from schedcp.substrate.initramfs import CpioWriter, JobArchive


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    out, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        pos += 110
        name = data[pos:pos + namesize - 1].decode()
        pos = (pos + namesize + 3) & ~3
        body = data[pos:pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            assert len(data) % 512 == 0  # so another archive can be appended
            return out
        out[name] = (mode, body)


def test_files_dirs_and_symlinks_round_trip() -> None:
    w = CpioWriter()
    w.file("a/b/c.txt", b"hello", 0o600)
    w.symlink("bin/sh", "busybox")
    entries = parse_newc(w.finish())
    assert list(entries)[:3] == ["a", "a/b", "a/b/c.txt"]
    mode, body = entries["a/b/c.txt"]
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o600 and body == b"hello"
    assert stat.S_ISDIR(entries["a"][0])
    assert stat.S_ISLNK(entries["bin/sh"][0]) and entries["bin/sh"][1] == b"busybox"


def test_job_archive_carries_config_and_files() -> None:
    arch = JobArchive(python="/usr/bin/python3.11", env={"A": "1"},
                      files={"schedcp/files/run.sh": b"#!/bin/sh\necho hi\n"},
                      extra={"name": "vm-1"}).build()
    entries = parse_newc(arch)
    assert json.loads(entries["schedcp/job.json"][1]) == {"env": {"A": "1"}, "name": "vm-1"}
    assert entries["schedcp/python"][1] == b"/usr/bin/python3.11\n"
    assert stat.S_IMODE(entries["schedcp/files/run.sh"][0]) == 0o755  # scripts are executable
