"""The build chain against real kernels' BTF (no VM needed).

One scheduler source must build for every kernel in range: here the boot
kernel (7.x, ___v2 kfuncs and _impl twins) and the oldest Debian sched_ext
kernel (6.16, which still has the pre-6.13 scx_bpf_dispatch names).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from schedcp.substrate.build import BPF_DIR, BpfBuilder, BuildError


@pytest.fixture(scope="module")
def kernels() -> dict[str, object]:
    from schedcp.substrate.kernel import ensure_kernel, fetch_btf_kernel

    return {"boot": ensure_kernel(), "oldest": fetch_btf_kernel()}


def _externs(obj: Path) -> set[str]:
    out = subprocess.run(["bpftool", "btf", "dump", "file", str(obj)], capture_output=True,
                         text=True, check=True).stdout
    return {line.split("'")[1] for line in out.splitlines() if "FUNC '" in line and
            "linkage=extern" in line}


@pytest.mark.parametrize("name", ["fifo", "wvtime"])
def test_one_source_builds_for_two_kernels(kernels: dict[str, object], name: str,
                                          tmp_path: Path) -> None:
    boot, oldest = kernels["boot"], kernels["oldest"]
    assert boot.release != oldest.release  # type: ignore[attr-defined]
    results = {}
    for label, k in kernels.items():
        b = BpfBuilder(btf=k.vmlinux)  # type: ignore[attr-defined]
        kf = b.kfuncs()
        assert kf.has_sched_ext, f"{label} kernel has no sched_ext in BTF"
        r = b.build_file(BPF_DIR / f"{name}.bpf.c")
        assert r.object_path.exists() and r.digest.startswith("sha256:")
        assert not [d for d in r.diagnostics if "schedcp" in d.file], r.diagnostics
        results[label] = (r, kf)
    # Two different BTFs, two different vmlinux.h, two objects.
    assert results["boot"][0].btf_digest != results["oldest"][0].btf_digest
    # The kernels really differ in the way the compat layer hides ...
    boot_kf, old_kf = results["boot"][1], results["oldest"][1]
    assert "scx_bpf_dispatch" in old_kf.names and "scx_bpf_dispatch" not in boot_kf.names
    assert "scx_bpf_dsq_insert___v2" in boot_kf.names
    assert "scx_bpf_dsq_insert___v2" not in old_kf.names
    assert boot_kf.missing_impl() == []
    # ... and each object carries every alternative, picked at load time.
    ext = _externs(results["boot"][0].object_path)
    assert {"scx_bpf_dsq_insert___v2___sc", "scx_bpf_dsq_insert___sc",
            "scx_bpf_dispatch___sc"} <= ext


def test_build_error_has_structured_diagnostics(kernels: dict[str, object],
                                                tmp_path: Path) -> None:
    b = BpfBuilder(btf=kernels["boot"].vmlinux)  # type: ignore[attr-defined]
    src = (BPF_DIR / "fifo.bpf.c").read_text().replace(
        "sc_dsq_insert(p, SCX_DSQ_GLOBAL", "sc_dsq_insert(p, SCX_DSQ_GLOBALL")
    line = next(i for i, ln in enumerate(src.splitlines(), 1) if "SCX_DSQ_GLOBALL" in ln)
    with pytest.raises(BuildError) as ei:
        b.build_source(src, name="typo")
    errors = [d for d in ei.value.diagnostics if d.severity == "error"]
    assert errors and errors[0].file == "typo.bpf.c" and errors[0].line == line
    assert "SCX_DSQ_GLOBALL" in errors[0].message


def test_source_string_builds_and_is_content_addressed(kernels: dict[str, object],
                                                       tmp_path: Path) -> None:
    b = BpfBuilder(btf=kernels["boot"].vmlinux)  # type: ignore[attr-defined]
    text = (BPF_DIR / "fifo.bpf.c").read_text()
    r1 = b.build_source(text, name="cand")
    r2 = b.build_source(text, name="cand")
    assert r1.digest == r2.digest  # same source, same BTF -> same object bytes
