"""Settings of the executor service, read from the environment in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schedcp.errors import ConfigError
from schedcp.settings import CommonSettings, env_float, env_int, env_path, env_str, load_common


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    node_kind: str  # "vm" | "host"
    labels: dict[str, str]
    vm_cpus: int
    vm_mem_mb: int
    vm_lifetime_s: float
    state_dir: Path
    trusted_keys: Path
    verifier_address: str
    peers: dict[str, str]  # node name -> executor gRPC address
    canary: float
    bake_s: float
    regression_pct: float
    probe_repetitions: int = 3
    node_check_s: float = 5.0


def _pairs(variable: str, raw: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(variable, f"{item!r} is not key=value", hint=f"e.g. {variable}=a=1,b=2")
        out[key.strip()] = value.strip()
    return out


def load(environ: dict[str, str] | None = None) -> Settings:
    common = load_common("executor", environ)
    from schedcp.settings import service_address

    return Settings(
        common=common,
        node_kind=env_str("SCHEDCP_EXECUTOR_NODE_KIND", "vm", choices=("vm", "host"), environ=environ,
                          doc="What this executor's node is: a micro-VM it boots (vm) or this host (host, "
                              "which needs sched_ext and the capabilities in docs/executor.md).") or "vm",
        labels=_pairs("SCHEDCP_EXECUTOR_LABELS", env_str(
            "SCHEDCP_EXECUTOR_LABELS", "", environ=environ,
            doc="Labels of this node for token node selectors, e.g. zone=a,tier=web.")),
        vm_cpus=env_int("SCHEDCP_EXECUTOR_VM_CPUS", 2, minimum=1, maximum=64, environ=environ,
                        doc="vCPUs of the executor's micro-VM node."),
        vm_mem_mb=env_int("SCHEDCP_EXECUTOR_VM_MEM_MB", 768, minimum=256, maximum=65536, environ=environ,
                          doc="Memory of the executor's micro-VM node, MiB."),
        vm_lifetime_s=env_float("SCHEDCP_EXECUTOR_VM_LIFETIME_S", 86400.0, minimum=60.0, maximum=30 * 86400.0,
                                environ=environ,
                                doc="Hard lifetime of the executor's micro-VM node; it is killed after this."),
        state_dir=env_path("SCHEDCP_EXECUTOR_STATE_DIR", None, environ=environ,
                           doc="Executor state, artifacts, nonce ledger and audit log "
                               "(default <data dir>/executor/<node>).")
        or common.data_dir / "executor" / common.node,
        trusted_keys=env_path("SCHEDCP_EXECUTOR_TRUSTED_KEYS", None, environ=environ,
                              doc="Verifier public keys file (default: the verifier's export in the data dir; "
                                  "else fetched from the verifier's PublicKeys RPC).")
        or common.data_dir / "keys" / "public.json",
        verifier_address=service_address("verifier", environ),
        peers=_pairs("SCHEDCP_EXECUTOR_PEERS", env_str(
            "SCHEDCP_EXECUTOR_PEERS", "", environ=environ,
            doc="Other nodes' executors for fleet rollouts: node=host:port,...")),
        canary=env_float("SCHEDCP_EXECUTOR_CANARY", 1.0, minimum=0.0, maximum=10000.0, environ=environ,
                         doc="Default canary size: a node count (>= 1) or a fraction of the nodes (< 1)."),
        bake_s=env_float("SCHEDCP_EXECUTOR_BAKE_S", 10.0, minimum=0.0, maximum=86400.0, environ=environ,
                         doc="Default bake time before a canary counts as good, seconds."),
        regression_pct=env_float("SCHEDCP_EXECUTOR_REGRESSION_PCT", 10.0, minimum=0.0, maximum=100.0,
                                 environ=environ,
                                 doc="Default regression of the target metric that trips the circuit breaker, %."),
        probe_repetitions=env_int("SCHEDCP_EXECUTOR_PROBE_REPETITIONS", 3, minimum=1, maximum=21,
                                  environ=environ,
                                  doc="Runs of the reference workload before a deployment and again during "
                                      "the bake; the breaker compares the medians (one run can be a host "
                                      "hiccup and hide a 2x regression)."),
        node_check_s=env_float("SCHEDCP_EXECUTOR_NODE_CHECK_S", 5.0, minimum=0.5, maximum=3600.0, environ=environ,
                               doc="How often a micro-VM node is checked; a dead VM is booted again and the "
                                   "executor reconciles (restoring the known-good scheduler)."),
    )
