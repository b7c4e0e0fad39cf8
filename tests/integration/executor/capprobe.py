"""Guest-side probe: keep only the named capabilities, then load and unload a scheduler.

Run as root inside a micro-VM by test_capabilities.py:
``python capprobe.py bpf,perfmon OBJECT`` prints one JSON line saying whether
the load, the enabled state, the unload and reading /dev/kmsg worked with only
those capabilities in the effective and permitted sets. Dropping them with
capset(2) is irreversible for this process, so each set runs in its own process.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

# include/uapi/linux/capability.h
CAPS = {"dac_override": 1, "sys_admin": 21, "sys_resource": 24, "syslog": 34, "perfmon": 38, "bpf": 39}
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYS_CAPSET = 126  # x86_64


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def keep_only(names: list[str]) -> None:
    """Set effective = permitted = ``names``, inheritable = none."""
    mask = 0
    for name in names:
        mask |= 1 << CAPS[name]
    data = (_Data * 2)()
    for i in range(2):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = word
        data[i].inheritable = 0
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_CAPSET, ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def main() -> None:
    names = [n for n in sys.argv[1].split(",") if n and n != "none"]
    obj = sys.argv[2]
    keep_only(names)
    from schedcp.substrate import loader

    out: dict[str, object] = {"caps": names, "euid": os.geteuid()}
    with open("/proc/self/status") as fh:
        out["CapEff"] = next(line.split()[1] for line in fh if line.startswith("CapEff"))
    try:
        res = loader.load(obj)
        out["load"] = "ok"
        out["state"] = loader.state(res.name).sched_ext_state
        try:
            out["unload"] = loader.unload(res.name).sched_ext_state
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            out["unload"] = f"error: {type(exc).__name__}: {exc}"[:300]
    except Exception as exc:  # noqa: BLE001
        out["load"] = f"error: {type(exc).__name__}: {exc}"[:400]
    try:
        os.close(os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK))
        out["kmsg"] = "ok"
    except OSError as exc:
        out["kmsg"] = f"error: {exc.strerror}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
