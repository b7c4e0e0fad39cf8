"""Settings of the observer service, read from the environment in one place."""

from __future__ import annotations

from dataclasses import dataclass

from schedcp.llm.settings import LlmSettings, load_llm_settings
from schedcp.settings import CommonSettings, env_bool, env_float, load_common


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    llm: LlmSettings
    #: Default observation window when a request gives none.
    window_seconds: float
    #: Below this classifier confidence the agent pays for tier 2.
    confidence_threshold: float
    #: Let the agent go to tier 2 on its own when unsure.
    auto_deep: bool
    max_deep_window: float
    max_overhead_pct: float
    triggers: bool
    trigger_cpu: float
    scan_seconds: float
    recheck_seconds: float


def load(environ: dict[str, str] | None = None) -> Settings:
    return Settings(
        common=load_common("observer", environ),
        llm=load_llm_settings(environ),
        window_seconds=env_float("SCHEDCP_OBSERVER_WINDOW", 5.0, minimum=0.1, maximum=600, environ=environ,
                                 doc="Observer: default observation window, seconds."),
        confidence_threshold=env_float(
            "SCHEDCP_OBSERVER_CONFIDENCE", 0.6, minimum=0, maximum=1, environ=environ,
            doc="Observer: classifier confidence below which the agent adds tier-2 (eBPF/perf) depth."),
        auto_deep=env_bool("SCHEDCP_OBSERVER_AUTO_DEEP", True, environ=environ,
                           doc="Observer: let the agent run tier 2 by itself when tier 1 is inconclusive."),
        max_deep_window=env_float("SCHEDCP_OBSERVER_MAX_DEEP_WINDOW", 30.0, minimum=0.5, maximum=600,
                                  environ=environ, doc="Observer: longest time eBPF probes stay attached, seconds."),
        max_overhead_pct=env_float("SCHEDCP_OBSERVER_MAX_OVERHEAD_PCT", 5.0, minimum=0.01, maximum=50,
                                   environ=environ,
                                   doc="Observer: probes are detached early above this share of node CPU, percent."),
        triggers=env_bool("SCHEDCP_OBSERVER_TRIGGERS", True, environ=environ,
                          doc="Observer: scan for new workloads and phase changes and publish their profiles."),
        trigger_cpu=env_float("SCHEDCP_OBSERVER_TRIGGER_CPU", 0.2, minimum=0.0, maximum=1024, environ=environ,
                              doc="Observer: CPUs a process group or cgroup must use to count as a new workload."),
        scan_seconds=env_float("SCHEDCP_OBSERVER_SCAN_SECONDS", 2.0, minimum=0.2, maximum=3600, environ=environ,
                               doc="Observer: interval between trigger scans, seconds."),
        recheck_seconds=env_float("SCHEDCP_OBSERVER_RECHECK_SECONDS", 15.0, minimum=1, maximum=86400,
                                  environ=environ,
                                  doc="Observer: how often tracked workloads are re-profiled for phase changes."),
    )
