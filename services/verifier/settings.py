"""Settings of the verifier service, read from the environment in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schedcp.settings import CommonSettings, env_bool, env_float, env_int, env_path, load_common


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    suite_seconds: float
    max_wait_s: float
    repetitions: int
    regression_pct: float
    parallel: int
    token_ttl_s: float
    use_vm: bool
    keys_export: Path


def load(environ: dict[str, str] | None = None) -> Settings:
    common = load_common("verifier", environ)
    return Settings(
        common=common,
        suite_seconds=env_float(
            "SCHEDCP_VERIFIER_SUITE_SECONDS", 6.0, minimum=1.0, maximum=600.0, environ=environ,
            doc="Length of the dynamic stage's stress/starvation suite per candidate."),
        max_wait_s=env_float(
            "SCHEDCP_VERIFIER_MAX_WAIT_S", 2.0, minimum=0.05, maximum=60.0, environ=environ,
            doc="Longest wait any suite task may see before the candidate fails for "
                "starvation (TCG-sized; use ~0.2 on KVM/real hardware)."),
        repetitions=env_int(
            "SCHEDCP_VERIFIER_REPETITIONS", 2, minimum=1, maximum=20, environ=environ,
            doc="A/B repetitions per side of the performance check (ABBA-interleaved)."),
        regression_pct=env_float(
            "SCHEDCP_VERIFIER_REGRESSION_PCT", 10.0, minimum=0.0, maximum=100.0, environ=environ,
            doc="Largest regression against EEVDF on the workload's primary metric that "
                "still passes, percent."),
        parallel=env_int(
            "SCHEDCP_VERIFIER_PARALLEL", 1, minimum=1, maximum=16, environ=environ,
            doc="Candidates verified at once in this process (one micro-VM each)."),
        token_ttl_s=env_float(
            "SCHEDCP_VERIFIER_TOKEN_TTL_S", 3600.0, minimum=60.0, maximum=7 * 86400.0,
            environ=environ, doc="Validity of a deployment token from its issue time."),
        use_vm=env_bool(
            "SCHEDCP_VERIFIER_USE_VM", True, environ=environ,
            doc="Load candidates in micro-VMs (false: on this host, which needs sched_ext "
                "and root)."),
        keys_export=env_path(
            "SCHEDCP_VERIFIER_KEYS_EXPORT", common.data_dir / "keys" / "public.json",
            environ=environ,
            doc="Where the verifier writes its trusted public keys for executors.")
        or common.data_dir / "keys" / "public.json",
    )
