"""The accelerator decision, with fakes for the probes."""

from __future__ import annotations

import pytest

from schedcp.substrate import VmError
from schedcp.substrate.accel import Accel, decide


def _probe(ok: bool):
    calls = []

    def probe() -> tuple[bool, str]:
        calls.append(1)
        return ok, "ok" if ok else "KVM internal error: emulation failure"

    return probe, calls


def test_no_hardware_module_means_tcg_without_probing() -> None:
    # kvm_pvm (a software nested hypervisor) opens /dev/kvm but must not count.
    probe, calls = _probe(True)
    a = decide(override=None, modules=[], dev_kvm=True, probe=probe)
    assert a.name == "tcg" and calls == []


def test_module_but_unusable_dev_kvm_means_tcg() -> None:
    probe, calls = _probe(True)
    assert decide(override=None, modules=["kvm_intel"], dev_kvm=False, probe=probe).name == "tcg"
    assert calls == []


def test_kvm_only_after_a_good_test_boot() -> None:
    probe, calls = _probe(True)
    a = decide(override=None, modules=["kvm_amd"], dev_kvm=True, probe=probe)
    assert a.name == "kvm" and calls == [1]
    bad, _ = _probe(False)
    b = decide(override=None, modules=["kvm_intel"], dev_kvm=True, probe=bad)
    assert b.name == "tcg" and "emulation failure" in b.reason


def test_override_and_its_validation() -> None:
    assert decide(override="kvm", modules=[], dev_kvm=False, probe=None).name == "kvm"
    with pytest.raises(VmError, match="SCHEDCP_ACCEL"):
        decide(override="hvf", modules=[], dev_kvm=False, probe=None)


def test_qemu_args(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHEDCP_TCG_THREAD", raising=False)
    assert Accel("tcg", "").qemu_args == ["-accel", "tcg,thread=multi", "-cpu", "max"]
    assert Accel("kvm", "").qemu_args[:2] == ["-accel", "kvm"]


def test_guest_crash_markers() -> None:
    from schedcp.substrate.vm import _guest_crashed

    assert _guest_crashed("[ 4.38] Oops: int3: 0000 [#1] SMP NOPTI\n")
    assert _guest_crashed("Kernel panic - not syncing: Fatal exception in interrupt")
    assert not _guest_crashed("schedcp-init: ready for agent\nreboot: Restarting system\n")


def test_tcg_thread_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDCP_TCG_THREAD", "single")
    assert Accel("tcg", "").qemu_args[1] == "tcg,thread=single"
    monkeypatch.setenv("SCHEDCP_TCG_THREAD", "many")
    with pytest.raises(VmError, match="SCHEDCP_TCG_THREAD"):
        _ = Accel("tcg", "").qemu_args


def test_tsc_rate_from_samples() -> None:
    from schedcp.substrate.accel import tsc_khz_from_samples

    # 2596146 kHz: 519229200 ticks in 200 ms
    assert tsc_khz_from_samples((1_000, 0), (1_000 + 519_229_200, 200_000_000)) == 2_596_146
    with pytest.raises(ValueError):
        tsc_khz_from_samples((5, 10), (4, 20))
