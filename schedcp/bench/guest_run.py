"""One benchmark repetition on the machine being measured, in one process.

    python -S -c '<bootstrap>' REQUEST_JSON

REQUEST_JSON: ``{"workload": NAME, "params": {...}, "cache_dir": PATH,
"scheduler": null | {"obj": PATH, "tunables": {...}}}``.

With a scheduler: load it (libbpf, in this process), run the workload, read
whether it is still enabled, unload it. Without: check that no sched_ext
scheduler is active, run the workload. Prints one JSON line:
``{"ok": true, "result": {...}, "ejected": bool, "exit": str|null, "load_ms": ms}`` or
``{"ok": false, "error": str, "hint": str|null, "kind": str}``.

Why one process: in a TCG guest every Python start-up costs seconds (tens of
seconds when the host is busy), and a separate loader call for load, state
and unload around every run tripled the cost of a benchmark.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def bootstrap_argv(python: str, request: dict[str, object]) -> list[str]:
    """The argv that runs this module without site-packages (faster start)."""
    root = str(Path(__file__).resolve().parents[2])
    boot = (f"import sys; sys.path.insert(0, {root!r}); "
            "from schedcp.bench.guest_run import main; sys.exit(main())")
    return [python, "-S", "-c", boot, json.dumps(request)]


def _run(request: dict) -> dict[str, object]:
    from schedcp.workloads import run_workload
    from schedcp.workloads.native import set_cache_dir

    if request.get("cache_dir"):
        set_cache_dir(Path(request["cache_dir"]))
    sched = request.get("scheduler")
    if sched is None:
        from schedcp.substrate.loader import SCX_SYSFS

        state_file = SCX_SYSFS / "state"
        if state_file.exists() and state_file.read_text().strip() == "enabled":
            ops = (SCX_SYSFS / "root" / "ops").read_text().strip()
            return {"ok": False, "kind": "busy", "hint": "unload it first",
                    "error": f"a sched_ext scheduler ({ops}) is active, so this would not be EEVDF"}
        result = run_workload(request["workload"], request.get("params") or {})
        return {"ok": True, "result": json.loads(result.to_json()), "ejected": False, "exit": None,
                "load_ms": 0.0}

    from schedcp.substrate import loader

    # Tunables arrive already checked against the metadata on the host (which
    # needs protobuf, absent without site-packages); the loader still checks
    # each against the object's BTF type.
    loaded = loader.load(sched["obj"], tunables=sched.get("tunables") or {})
    try:
        result = run_workload(request["workload"], request.get("params") or {})
        state = loader.state(loaded.name)
    finally:
        final = loader.unload(loaded.name)
    ejected = not state.enabled or state.ejected
    exit_info = final.exit.summary() if (ejected and final.exit is not None) else None
    return {"ok": True, "result": json.loads(result.to_json()), "ejected": ejected, "exit": exit_info,
            "load_ms": loaded.total_ms, "scheduler": loaded.name}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from schedcp.errors import SchedcpError

    try:
        out = _run(json.loads(args[0]))
    except SchedcpError as exc:
        out = {"ok": False, "kind": type(exc).__name__, "error": exc.message, "hint": exc.hint}
    except Exception as exc:  # noqa: BLE001 - the host must get an answer, not a traceback
        out = {"ok": False, "kind": type(exc).__name__, "error": f"{type(exc).__name__}: {exc}",
               "hint": "a bug in the benchmark runner; see the node's stderr"}
    print(json.dumps(out), flush=True)
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
