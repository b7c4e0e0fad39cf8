"""Settings from environment variables, declared in one place.

Every variable schedcp reads is registered here with its meaning and default
(``ENV_VARS``); ``docs/configuration.md`` is generated from that registry by
``python -m schedcp.settings``. A value that does not parse fails at start-up
with a ``ConfigError`` that names the variable, never later at first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from schedcp.errors import ConfigError


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str | None
    doc: str
    kind: str


#: Every variable schedcp reads, by name.
ENV_VARS: dict[str, EnvVar] = {}


def _register(name: str, default: object, doc: str, kind: str) -> None:
    shown = None if default is None else str(default)
    known = ENV_VARS.get(name)
    if known is None or (not known.doc and doc):
        ENV_VARS[name] = EnvVar(name, shown, doc, kind)


def _raw(name: str, environ: dict[str, str] | None) -> str | None:
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None = None, *, doc: str = "", environ: dict[str, str] | None = None,
            choices: tuple[str, ...] | None = None) -> str | None:
    """A string variable; ``choices`` restricts it to known values."""
    _register(name, default, doc, "string")
    value = _raw(name, environ)
    if value is None:
        return default
    if choices is not None and value not in choices:
        raise ConfigError(name, f"{value!r} is not one of {', '.join(choices)}",
                          hint=f"set {name} to one of: {', '.join(choices)}")
    return value


def env_int(name: str, default: int, *, doc: str = "", minimum: int | None = None,
            maximum: int | None = None, environ: dict[str, str] | None = None) -> int:
    """An integer variable, checked against its bounds."""
    _register(name, default, doc, "integer")
    raw = _raw(name, environ)
    if raw is None:
        return default
    try:
        value = int(raw, 0)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not an integer", hint=f"set {name} to a whole number") from None
    _check_range(name, value, minimum, maximum)
    return value


def env_float(name: str, default: float, *, doc: str = "", minimum: float | None = None,
              maximum: float | None = None, environ: dict[str, str] | None = None) -> float:
    """A floating-point variable, checked against its bounds."""
    _register(name, default, doc, "number")
    raw = _raw(name, environ)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a number", hint=f"set {name} to a number such as {default}") from None
    if value != value:  # NaN
        raise ConfigError(name, "NaN is not allowed")
    _check_range(name, value, minimum, maximum)
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool, *, doc: str = "", environ: dict[str, str] | None = None) -> bool:
    """A boolean variable: 1/true/yes/on or 0/false/no/off."""
    _register(name, default, doc, "boolean")
    raw = _raw(name, environ)
    if raw is None:
        return default
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(name, f"{raw!r} is not a boolean", hint="use 1/0, true/false, yes/no or on/off")


def env_path(name: str, default: Path | None, *, doc: str = "", must_exist: bool = False,
             environ: dict[str, str] | None = None) -> Path | None:
    """A filesystem path variable; ``~`` is expanded."""
    _register(name, default, doc, "path")
    raw = _raw(name, environ)
    if raw is None:
        return default
    path = Path(raw).expanduser()
    if must_exist and not path.exists():
        raise ConfigError(name, f"{path} does not exist", hint=f"point {name} at an existing path")
    return path


def env_address(name: str, default: str, *, doc: str = "", environ: dict[str, str] | None = None) -> str:
    """A ``host:port`` address."""
    _register(name, default, doc, "host:port")
    raw = _raw(name, environ)
    value = default if raw is None else raw
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(name, f"{value!r} is not host:port", hint=f"e.g. {name}=127.0.0.1:50051")
    return value


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"{value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"{value} is above the maximum {maximum}")


# ---------------------------------------------------------------------------
# Variables shared by every service and the CLI.

REPO_ROOT = Path(__file__).resolve().parent.parent

#: gRPC port of each service when nothing else is configured.
DEFAULT_PORTS = {
    "observer": 50061,
    "planner": 50062,
    "verifier": 50063,
    "executor": 50064,
    "learner": 50065,
    "repository": 50066,
}
SERVICES = tuple(DEFAULT_PORTS)


def default_data_dir() -> Path:
    """Where schedcp keeps state when SCHEDCP_DATA_DIR is not set."""
    checkout = REPO_ROOT / ".git"
    if checkout.exists():
        return REPO_ROOT / "var"
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "schedcp"


def data_dir(environ: dict[str, str] | None = None) -> Path:
    path = env_path("SCHEDCP_DATA_DIR", default_data_dir(), environ=environ,
                    doc="Directory for all persistent state (stores, keys, audit log, NATS data).")
    assert path is not None
    return path


def nats_url(environ: dict[str, str] | None = None) -> str:
    value = env_str("SCHEDCP_NATS_URL", "nats://127.0.0.1:4222", environ=environ,
                    doc="NATS server(s) with JetStream; comma-separated for a cluster.")
    assert value is not None
    return value


def service_address(service: str, environ: dict[str, str] | None = None) -> str:
    """The gRPC address a service listens on, and clients dial."""
    var = f"SCHEDCP_{service.upper()}_ADDR"
    return env_address(var, f"127.0.0.1:{DEFAULT_PORTS[service]}", environ=environ,
                       doc=f"gRPC address of the {service} service (listen and dial).")


def node_name(environ: dict[str, str] | None = None) -> str:
    value = env_str("SCHEDCP_NODE", os.uname().nodename, environ=environ,
                    doc="Name of this node in the fleet (defaults to the hostname).")
    assert value is not None
    return value


def subject_prefix(environ: dict[str, str] | None = None) -> str:
    value = env_str("SCHEDCP_SUBJECT_PREFIX", "", environ=environ,
                    doc="Optional prefix for every NATS subject and stream (isolates tests and tenants).")
    return value or ""


# Declared here so they appear in the generated reference even though other
# modules read them.
for _name, _doc in {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "Send traces over OTLP/gRPC to this endpoint (standard OpenTelemetry variable).",
    "SCHEDCP_TRACE_FILE": "Also write every finished span as a JSON line to this file (used by tests and `schedcp trace`); `{service}` in it is replaced by the service name.",
    "SCHEDCP_LOG_LEVEL": "Log level: debug, info, warning or error.",
    "SCHEDCP_LOG_FORMAT": "Log format: json (default for services) or text.",
    # The sched_ext substrate (schedcp/substrate) reads these directly.
    "SCHEDCP_CACHE_DIR": "Cache for kernels, initramfs images, vmlinux.h and built workloads (default <repo>/.cache).",
    "SCHEDCP_KERNEL": "Boot your own kernel image (vmlinux or bzImage with sched_ext) instead of the fetched Debian one.",
    "SCHEDCP_KERNEL_MODULES": "With SCHEDCP_KERNEL: the directory of that kernel's modules.",
    "SCHEDCP_KERNEL_CONFIG": "With SCHEDCP_KERNEL: that kernel's config file, to check CONFIG_SCHED_CLASS_EXT.",
    "SCHEDCP_DEBIAN_MIRROR": "Debian mirror the kernel fetch downloads from.",
    "SCHEDCP_ACCEL": "Force the micro-VM accelerator (kvm or tcg) instead of detecting whether KVM really works.",
    "SCHEDCP_TCG_THREAD": "TCG threading for micro-VMs: multi (default) or single.",
    "SCHEDCP_QEMU": "Path of qemu-system-x86_64 (default: the qemu fetched into the cache by scripts/install.sh, else PATH).",
    "SCHEDCP_QEMU_FETCH": "Set to 0 to skip fetching a newer qemu from the host's backports suite and use the host's own.",
    "SCHEDCP_VIRTIOFSD": "Path of virtiofsd (default: the one shipped with qemu).",
    "SCHEDCP_OBSERVER_PROBES_PREBUILT": "Directory of tier-2 probe objects built elsewhere for this kernel (set for micro-VM guests).",
    "SCHEDCP_GUEST": "Set by schedcp inside micro-VM guests (internal).",
    "SCHEDCP_JOB_ID": "Set by schedcp for a command running in a micro-VM guest (internal).",
    "SCHEDCP_RESULTS": "Set by schedcp in a guest: the path of the structured results channel (internal).",
    "SCHEDCP_NATS_PORT": "Client port of the nats-server `schedcp up` starts.",
    "SCHEDCP_LLM_PORT": "Port of the local LLM server `schedcp up --llm local` starts.",
    "SCHEDCP_UP_LLM": "What `schedcp up` uses for the LLM: local, none, or a base URL.",
}.items():
    _register(_name, None, _doc, "string")


def render_markdown() -> str:
    """The configuration reference, from the registry."""
    # Import every module that declares variables so the table is complete.
    import importlib
    import pkgutil

    import services

    for mod in pkgutil.walk_packages(services.__path__, "services."):
        if mod.name.endswith(".settings"):
            module = importlib.import_module(mod.name)
            loader = getattr(module, "load", None)
            if callable(loader):
                loader({})
    for fn in (data_dir, nats_url, node_name, subject_prefix):
        fn({})
    for svc in SERVICES:
        service_address(svc, {})
    lines = ["# Configuration", "",
             "Every environment variable schedcp reads. Generated by `python -m schedcp.settings`.", "",
             "| variable | kind | default | meaning |", "|---|---|---|---|"]
    # Only documented variables: ad-hoc lookups without a doc (tests) stay out.
    for var in sorted((v for v in ENV_VARS.values() if v.doc), key=lambda v: v.name):
        # Paths inside the checkout are shown relative to it, so the page
        # is the same in every clone.
        shown = None if var.default is None else var.default.replace(str(REPO_ROOT), "<repo>")
        default = "" if shown is None else f"`{shown}`"
        lines.append(f"| `{var.name}` | {var.kind} | {default} | {var.doc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # Run as a script this module is __main__, a different object from the
    # schedcp.settings the services register into: render from that one.
    from schedcp.settings import render_markdown as _render

    print(_render(), end="")


@dataclass(frozen=True)
class CommonSettings:
    """What every service reads: where NATS is, where to listen, where state lives."""

    service: str
    node: str
    nats_url: str
    subject_prefix: str
    grpc_address: str
    data_dir: Path
    nats_replicas: int
    drain_seconds: float


def load_common(service: str, environ: dict[str, str] | None = None) -> CommonSettings:
    """Read and validate the shared settings of ``service``; fail fast naming the variable."""
    return CommonSettings(
        service=service,
        node=node_name(environ),
        nats_url=nats_url(environ),
        subject_prefix=subject_prefix(environ),
        grpc_address=service_address(service, environ),
        data_dir=data_dir(environ),
        nats_replicas=env_int("SCHEDCP_NATS_REPLICAS", 1, minimum=1, maximum=5, environ=environ,
                              doc="JetStream stream replicas (3 on a NATS cluster)."),
        drain_seconds=env_float("SCHEDCP_DRAIN_SECONDS", 20.0, minimum=0, maximum=600, environ=environ,
                                doc="How long SIGTERM waits for in-flight work before stopping."),
    )
