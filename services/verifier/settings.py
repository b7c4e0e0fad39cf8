"""Settings of the verifier service, read from the environment in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schedcp.settings import CommonSettings, env_bool, env_float, env_int, env_path, load_common


@dataclass(frozen=True)
class JudgeSettings:
    """How the dynamic stage decides: also read by ``schedcp verify`` (no service)."""

    suite_seconds: float
    max_wait_s: float
    wait_factor: float
    calibrate_waits: bool
    repetitions: int
    max_repetitions: int
    regression_pct: float
    regression_alpha: float
    calm_wait_s: float = 120.0


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    judge: JudgeSettings
    parallel: int
    token_ttl_s: float
    use_vm: bool
    keys_export: Path


def load_judge(environ: dict[str, str] | None = None) -> JudgeSettings:
    repetitions = env_int(
        "SCHEDCP_VERIFIER_REPETITIONS", 2, minimum=1, maximum=20, environ=environ,
        doc="A/B runs per side in the performance check's first round (ABBA-interleaved).")
    return JudgeSettings(
        suite_seconds=env_float(
            "SCHEDCP_VERIFIER_SUITE_SECONDS", 6.0, minimum=1.0, maximum=600.0, environ=environ,
            doc="Length of the dynamic stage's stress/starvation suite per candidate."),
        max_wait_s=env_float(
            "SCHEDCP_VERIFIER_MAX_WAIT_S", 2.0, minimum=0.05, maximum=60.0, environ=environ,
            doc="Longest wait of a suite task that passes whatever EEVDF does (TCG-sized; "
                "~0.2 on KVM/real hardware). A longer wait fails only past "
                "SCHEDCP_VERIFIER_WAIT_FACTOR x EEVDF's wait in the same VM."),
        wait_factor=env_float(
            "SCHEDCP_VERIFIER_WAIT_FACTOR", 3.0, minimum=1.0, maximum=100.0, environ=environ,
            doc="A suite task fails for starvation past this many times the longest wait "
                "EEVDF's tasks of the same kind saw on the same suite in the same VM."),
        calibrate_waits=env_bool(
            "SCHEDCP_VERIFIER_CALIBRATE_WAITS", True, environ=environ,
            doc="Measure EEVDF on the stress suite (once per VM) when a task waits past "
                "SCHEDCP_VERIFIER_MAX_WAIT_S; false: the absolute bound alone decides."),
        repetitions=repetitions,
        max_repetitions=env_int(
            "SCHEDCP_VERIFIER_MAX_REPETITIONS", max(6, repetitions), minimum=repetitions,
            maximum=40, environ=environ,
            doc="Most A/B runs per side: a median regression past the threshold that the "
                "runs do not show clearly gets more ABBA blocks, up to this many."),
        regression_pct=env_float(
            "SCHEDCP_VERIFIER_REGRESSION_PCT", 10.0, minimum=0.0, maximum=99.0, environ=environ,
            doc="Largest regression against EEVDF on the workload's primary metric that "
                "still passes, percent."),
        regression_alpha=env_float(
            "SCHEDCP_VERIFIER_REGRESSION_ALPHA", 0.01, minimum=0.0005, maximum=0.5,
            environ=environ,
            doc="One-sided significance (exact Mann-Whitney) at which a regression past the "
                "threshold fails the performance check (stricter than 0.05: the test looks "
                "up to three times and host-load bursts span adjacent runs)."),
        calm_wait_s=env_float(
            "SCHEDCP_VERIFIER_CALM_WAIT_S", 120.0, minimum=0.0, maximum=3600.0, environ=environ,
            doc="A performance regression measured while the host's CPU pressure was 25% or "
                "more is measured again after waiting up to this long for the host to calm "
                "down; the second A/B decides. 0: decide on the first."),
    )


def load(environ: dict[str, str] | None = None) -> Settings:
    common = load_common("verifier", environ)
    return Settings(
        common=common,
        judge=load_judge(environ),
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
