"""Choose the qemu accelerator: KVM only where it really works, else TCG.

``/dev/kvm`` opening proves little: on our machines it is a software nested
hypervisor (``kvm_pvm``) on which the guest dies with "emulation failure". So
KVM is considered only when the hardware modules (``kvm_intel``/``kvm_amd``)
are loaded, and used only after a test boot succeeded. The decision is cached
per host kernel, qemu version and guest kernel (``<cache>/accel.json``).
``SCHEDCP_ACCEL=kvm|tcg`` overrides it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from schedcp.substrate import VmError

KVM_MODULES = ("kvm_intel", "kvm_amd")


@dataclass(frozen=True)
class Accel:
    """An accelerator choice and why it was made."""

    name: str  # "kvm" or "tcg"
    reason: str

    @property
    def qemu_args(self) -> list[str]:
        if self.name == "kvm":
            return ["-accel", "kvm", "-cpu", "host"]
        # thread=multi: one host thread per vCPU; -cpu max exposes the ISA
        # the Debian kernel expects (x86-64-v2+). SCHEDCP_TCG_THREAD=single
        # trades parallelism for immunity to qemu 7.2's cross-vCPU code-
        # patching race (see schedcp.substrate.qemu, which fetches a qemu
        # without it, and VmCrashed.likely_tcg_artifact).
        thread = os.environ.get("SCHEDCP_TCG_THREAD", "").strip() or "multi"
        if thread not in ("multi", "single"):
            raise VmError(f"SCHEDCP_TCG_THREAD={thread!r} is not multi or single")
        return ["-accel", f"tcg,thread={thread}", "-cpu", "max"]


def kvm_modules_loaded(sys_module: Path = Path("/sys/module")) -> list[str]:
    """Which hardware KVM modules are loaded (``kvm_pvm`` and plain ``kvm`` do not count)."""
    return [m for m in KVM_MODULES if (sys_module / m).exists()]


def dev_kvm_usable(path: str = "/dev/kvm") -> bool:
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def decide(*, override: str | None, modules: list[str], dev_kvm: bool,
           probe: Callable[[], tuple[bool, str]] | None) -> Accel:
    """Pure decision: override, else KVM only if modules + /dev/kvm + a good test boot."""
    if override:
        if override not in ("kvm", "tcg"):
            raise VmError(f"SCHEDCP_ACCEL={override!r} is not kvm or tcg",
                          hint="unset it to let schedcp detect, or set kvm/tcg")
        return Accel(override, "SCHEDCP_ACCEL override")
    if not modules:
        return Accel("tcg", "no kvm_intel/kvm_amd module loaded (e.g. nested kvm_pvm): TCG")
    if not dev_kvm:
        return Accel("tcg", f"{'/'.join(modules)} loaded but /dev/kvm is not usable: TCG")
    if probe is None:
        return Accel("tcg", "KVM not yet probed: TCG")
    ok, detail = probe()
    if ok:
        return Accel("kvm", f"{'/'.join(modules)} loaded and a KVM test boot succeeded")
    return Accel("tcg", f"KVM test boot failed ({detail}): TCG")


def _read_tsc_fn():  # pragma: no cover - exercised by host_tsc_khz
    """A callable returning the host's TSC (x86-64 ``rdtsc``), or None elsewhere."""
    import ctypes
    import mmap
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    # rdtsc; shl rdx, 32; or rax, rdx; ret
    code = bytes([0x0F, 0x31, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0, 0xC3])
    buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    fn = ctypes.CFUNCTYPE(ctypes.c_uint64)(addr)
    fn._keepalive = buf  # type: ignore[attr-defined]  # the code page must outlive fn
    return fn


def tsc_khz_from_samples(start: tuple[int, int], end: tuple[int, int]) -> int:
    """kHz from two (tsc, nanoseconds) samples."""
    (t0, n0), (t1, n1) = start, end
    if n1 <= n0 or t1 <= t0:
        raise ValueError("samples out of order")
    return round((t1 - t0) / ((n1 - n0) / 1e6))


def measure_host_tsc_khz(window_s: float = 0.2) -> int | None:
    """The host TSC rate, measured against CLOCK_MONOTONIC.

    Why: under TCG the guest's TSC *is* the host's TSC, but the guest
    calibrates it against emulated timers, and on a loaded host that
    calibration can be off by 3-4x (seen: 708 MHz detected for a 2596 MHz
    TSC). The kernel then refuses to refine by more than 1%, so the guest's
    clock runs several times too fast for the whole boot. Passing
    ``tsc_early_khz`` fixes the rate; the kernel's refinement then confirms it.
    Each sample keeps the tightest of 50 back-to-back reads, so preemption
    between the two clocks cannot skew it.
    """
    rdtsc = _read_tsc_fn()
    if rdtsc is None:
        return None
    import time

    def sample() -> tuple[int, int]:
        best = None
        for _ in range(50):
            a = time.perf_counter_ns()
            t = rdtsc()
            b = time.perf_counter_ns()
            if best is None or b - a < best[0]:
                best = (b - a, t, (a + b) // 2)
        assert best is not None
        return best[1], best[2]

    s = sample()
    time.sleep(window_s)
    return tsc_khz_from_samples(s, sample())


def host_tsc_khz(cache_file: Path) -> int | None:
    """:func:`measure_host_tsc_khz`, cached per host boot (the rate is fixed per boot)."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    try:
        cached = json.loads(cache_file.read_text())
        if cached.get("boot_id") == boot_id and cached.get("tsc_khz"):
            return int(cached["tsc_khz"])
    except (FileNotFoundError, ValueError):
        pass
    try:
        khz = measure_host_tsc_khz()
    except (OSError, ValueError):
        return None
    if khz:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps({"boot_id": boot_id, "tsc_khz": khz}) + "\n")
    return khz


def qemu_version(qemu: list[str] | None = None) -> str:
    if qemu is None:
        from schedcp.substrate.qemu import find_qemu

        try:
            qemu = find_qemu().args
        except VmError:
            return "unknown"
    try:
        out = subprocess.run([*qemu, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def cache_key(kernel_release: str) -> str:
    return f"{os.uname().release}|{qemu_version()}|{kernel_release}"


def choose(*, cache_file: Path, kernel_release: str, probe: Callable[[], tuple[bool, str]],
           environ: Mapping[str, str] | None = None) -> Accel:
    """The cached decision, or decide now (running ``probe`` only if KVM is plausible)."""
    env = os.environ if environ is None else environ
    override = env.get("SCHEDCP_ACCEL", "").strip() or None
    if override:
        return decide(override=override, modules=[], dev_kvm=False, probe=None)
    key = cache_key(kernel_release)
    try:
        cached = json.loads(cache_file.read_text())
        if cached.get("key") == key:
            return Accel(cached["name"], cached["reason"] + " [cached]")
    except (FileNotFoundError, ValueError, KeyError):
        pass
    accel = decide(override=None, modules=kvm_modules_loaded(), dev_kvm=dev_kvm_usable(), probe=probe)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps({"key": key, **asdict(accel)}, indent=2) + "\n")
    return accel
