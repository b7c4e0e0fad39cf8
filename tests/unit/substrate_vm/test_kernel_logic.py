"""Pure parts of the kernel fetcher: version order, package lists, BTF/config checks, bzImage."""

from __future__ import annotations

import struct

import pytest

from schedcp.substrate import KernelError
from schedcp.substrate.kernel import (
    SELECTORS,
    BtfInfo,
    Candidate,
    _suite_of_list,
    bzimage_payload,
    check_candidate,
    compare_debian_versions,
    extract_vmlinux,
    order_candidates,
    parse_btf_dump,
    parse_config,
    parse_packages_index,
    release_from_vmlinux,
)


@pytest.mark.parametrize(("a", "b", "want"), [
    ("7.3.4-1~bpo13+1", "7.3~rc7-1~exp1", 1),      # a release beats its rc
    ("7.3~rc7-1~exp1", "7.2.13-1", 1),             # but an rc of 7.3 beats 7.2.x
    ("7.2.13-1", "7.2.12-1~bpo13+1", 1),
    ("7.2.12-1~bpo13+1", "7.2.12-1", -1),          # backport sorts below the original
    ("6.19.10-1~bpo13+1", "6.19.8-1~bpo13+1", 1),  # numeric, not lexical
    ("1:6.1-1", "7.0-1", 1),                       # epoch wins
    ("6.12.90-2~bpo12+1", "6.12.90-1~bpo12+1", 1),
    ("1.0", "1.0", 0),
    ("1.0a", "1.0", 1),
    ("1.0~", "1.0", -1),
])
def test_debian_version_order(a: str, b: str, want: int) -> None:
    assert compare_debian_versions(a, b) == want
    assert compare_debian_versions(b, a) == -want


PACKAGES = """\
Package: linux-binary-7.2.12+deb13-cloud-amd64
Source: linux-signed-amd64
Version: 7.2.12-1~bpo13+1
Size: 13000000
Description: Binary for Linux 7.2.12 (signed)

Package: linux-binary-unsigned-7.3.4+deb13-cloud-amd64
Version: 7.3.4-1~bpo13+1
Size: 13963776
Depends: linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)

Package: linux-binary-7.2.12+deb13-cloud-amd64-dbg
Version: 7.2.12-1~bpo13+1

Package: linux-modules-7.3.4+deb13-cloud-amd64
Version: 7.3.4-1~bpo13+1

Package: linux-image-6.16.3+deb13-cloud-amd64
Version: 6.16.3-1~bpo13+1
"""


def test_packages_index_keeps_only_kernel_binaries() -> None:
    cands = parse_packages_index(PACKAGES, "trixie-backports", SELECTORS["sched_ext"].package_re)
    assert [(c.package, c.abi, c.size) for c in cands] == [
        ("linux-binary-7.2.12+deb13-cloud-amd64", "7.2.12+deb13-cloud-amd64", 13000000),
        ("linux-binary-unsigned-7.3.4+deb13-cloud-amd64", "7.3.4+deb13-cloud-amd64", 13963776),
    ]
    old = parse_packages_index(PACKAGES, "trixie-backports", SELECTORS["oldest"].package_re)
    assert [c.abi for c in old] == ["6.16.3+deb13-cloud-amd64"]


def test_order_newest_first_signed_preferred_and_deduplicated() -> None:
    def c(pkg: str, ver: str) -> Candidate:
        return Candidate(package=pkg, version=ver, suite="s", abi=pkg.split("-")[-3] + "-cloud-amd64")

    cands = [
        c("linux-binary-unsigned-7.2.13+deb14-cloud-amd64", "7.2.13-1"),
        c("linux-binary-7.2.12+deb13-cloud-amd64", "7.2.12-1~bpo13+1"),
        c("linux-binary-7.3-cloud-amd64", "7.3~rc7-1~exp1"),
        c("linux-binary-7.2.13+deb14-cloud-amd64", "7.2.13-1"),
    ]
    got = [(x.package, x.version) for x in order_candidates(cands)]
    assert got == [
        ("linux-binary-7.3-cloud-amd64", "7.3~rc7-1~exp1"),
        ("linux-binary-7.2.13+deb14-cloud-amd64", "7.2.13-1"),
        ("linux-binary-7.2.12+deb13-cloud-amd64", "7.2.12-1~bpo13+1"),
    ]


BTF_GOOD = """\
[104700] STRUCT 'sched_ext_ops' size=1024 vlen=33
[104787] FUNC 'scx_bpf_create_dsq' type_id=53062 linkage=static
[104788] FUNC 'scx_bpf_create_dsq_impl' type_id=49019 linkage=static
[104796] FUNC 'scx_bpf_dsq_insert___v2' type_id=53065 linkage=static
[104797] FUNC 'scx_bpf_dsq_insert___v2_impl' type_id=49024 linkage=static
\t'p' type_id=1
[104799] FUNC 'bpf_map_lookup_elem' type_id=2 linkage=static
"""


def test_btf_dump_parsing() -> None:
    info = parse_btf_dump(BTF_GOOD)
    assert info.has_sched_ext and info.has_impl_kfuncs
    assert info.impl_kfuncs == ("scx_bpf_create_dsq_impl", "scx_bpf_dsq_insert___v2_impl")
    assert info.scx_kfunc_count == 4
    defect = parse_btf_dump(BTF_GOOD.replace("scx_bpf_create_dsq_impl", "scx_bpf_kick_cpu"))
    assert defect.has_sched_ext and not defect.has_impl_kfuncs
    assert not parse_btf_dump("[1] FUNC 'schedule' type_id=2 linkage=static\n").has_sched_ext


def test_candidate_checks_say_why() -> None:
    good = parse_btf_dump(BTF_GOOD)
    defect = BtfInfo(has_sched_ext=True, impl_kfuncs=(), scx_kfunc_count=40)
    cfg_y = parse_config("CONFIG_SCHED_CLASS_EXT=y\nCONFIG_BPF=y\n")
    cfg_n = parse_config("# CONFIG_SCHED_CLASS_EXT is not set\nCONFIG_BPF=y\n")
    assert check_candidate(good, cfg_y, require_impl=True) is None
    assert "_impl" in (check_candidate(defect, cfg_y, require_impl=True) or "")
    assert check_candidate(defect, cfg_y, require_impl=False) is None
    assert "CONFIG_SCHED_CLASS_EXT" in (check_candidate(good, cfg_n, require_impl=True) or "")
    assert "no sched_ext" in (check_candidate(BtfInfo(False), None, require_impl=False) or "")


def test_suite_from_list_file_name() -> None:
    assert _suite_of_list("deb.debian.org_debian_dists_trixie-backports_main_binary-amd64_Packages") \
        == "trixie-backports"
    assert _suite_of_list("mirror_debian_dists_unstable_main_binary-amd64_Packages") == "unstable"


def _fake_bzimage(payload: bytes) -> bytes:
    setup_sects = 3
    img = bytearray((setup_sects + 1) * 512)
    img[0x1F1] = setup_sects
    img[0x202:0x206] = b"HdrS"
    offset = 100
    struct.pack_into("<II", img, 0x248, offset, len(payload))
    return bytes(img) + b"\x00" * offset + payload + b"tail"


def test_bzimage_payload_uses_the_setup_header() -> None:
    # A zstd magic inside the setup code must not be mistaken for the payload.
    payload = b"\xfd7zXZ\x00" + b"rest-of-xz"
    img = bytearray(_fake_bzimage(payload))
    img[600:604] = b"\x28\xb5\x2f\xfd"
    got, kind = bzimage_payload(bytes(img))
    assert (got, kind) == (payload, "xz")


def test_bzimage_rejects_garbage_and_passes_elf_through() -> None:
    with pytest.raises(KernelError, match="not a bzImage"):
        bzimage_payload(b"\x00" * 4096)
    with pytest.raises(KernelError, match="unknown compression"):
        bzimage_payload(_fake_bzimage(b"LZ4!" + b"\x00" * 10))
    elf = b"\x7fELF" + b"\x00" * 60
    assert extract_vmlinux(elf) is elf


def test_gzip_payload_is_decompressed() -> None:
    import gzip

    inner = b"\x7fELF" + b"kernel" * 100 + b"Linux version 9.9.9-test (x@y) #1"
    # The kernel appends the uncompressed size after the stream: it must be ignored.
    assert extract_vmlinux(_fake_bzimage(gzip.compress(inner) + b"\x10\x00\x00\x00")) == inner
    assert release_from_vmlinux(inner) == "9.9.9-test"


def test_kernel_paths_round_trip_relative_to_a_moved_cache(tmp_path) -> None:
    from pathlib import Path

    from schedcp.substrate.kernel import Kernel

    old, new = tmp_path / "old" / "kernels", tmp_path / "new" / "kernels"
    k = Kernel(release="7.3.4+deb13-cloud-amd64", version="7.3.4-1", vmlinux=old / "r" / "vmlinux",
               config=old / "r" / "config", modules_dir=None, btf=BtfInfo(has_sched_ext=True),
               source="debian:x")
    doc = k.to_json(relative_to=old)
    assert doc["vmlinux"] == "r/vmlinux" and doc["modules_dir"] is None
    moved = Kernel.from_json(doc, base=new)
    assert moved.vmlinux == new / "r" / "vmlinux" and moved.config == new / "r" / "config"
    # Absolute paths (older manifests, user kernels) are kept as they are.
    outside = Kernel.from_json(k.to_json(relative_to=Path("/elsewhere")), base=new)
    assert outside.vmlinux == old / "r" / "vmlinux"
