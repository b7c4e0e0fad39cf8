"""Settings of the planner service, read from the environment in one place."""

from __future__ import annotations

from dataclasses import dataclass

from schedcp.llm.settings import LlmSettings, load_llm_settings
from schedcp.settings import (
    CommonSettings,
    env_bool,
    env_float,
    env_int,
    env_str,
    load_common,
    service_address,
)
from services.planner.planner import PlannerSettings


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    llm: LlmSettings
    planner: PlannerSettings
    repository_address: str
    learner_address: str
    #: Refine failed rounds seen on the verdicts subject.
    refine: bool


def load_planner_settings(environ: dict[str, str] | None = None) -> PlannerSettings:
    """The decision-rule knobs (also used by `schedcp optimize`)."""
    fallback = env_str(
        "SCHEDCP_PLANNER_FALLBACK_POLICIES",
        "wvtime,fifo",
        environ=environ,
        doc="Library policies (from bpf/) planned when the repository has nothing usable.",
    )
    return PlannerSettings(
        max_candidates=env_int(
            "SCHEDCP_PLANNER_MAX_CANDIDATES",
            3,
            minimum=1,
            maximum=16,
            environ=environ,
            doc="Candidate plans per profile (the verifier measures them all; best wins).",
        ),
        max_iterations=env_int(
            "SCHEDCP_PLANNER_MAX_ITERATIONS",
            3,
            minimum=0,
            maximum=20,
            environ=environ,
            doc="Refinements after failed verdicts before the planner gives up and records an antipattern.",
        ),
        reuse_min_ratio=env_float(
            "SCHEDCP_PLANNER_REUSE_MIN_RATIO",
            1.05,
            minimum=1.0,
            maximum=10.0,
            environ=environ,
            doc="A recorded win at least this much better than EEVDF is reused without the LLM.",
        ),
        llm_success_prob=env_float(
            "SCHEDCP_PLANNER_LLM_SUCCESS_PROB",
            0.3,
            minimum=0.0,
            maximum=1.0,
            environ=environ,
            doc="Expected share of LLM-written candidates that pass the verifier (weighs PATCH/COMPOSE_NEW).",
        ),
        fallback_policies=tuple(n.strip() for n in (fallback or "").split(",") if n.strip())
        or ("wvtime",),
    )


def load(environ: dict[str, str] | None = None) -> Settings:
    return Settings(
        common=load_common("planner", environ),
        llm=load_llm_settings(environ),
        planner=load_planner_settings(environ),
        repository_address=service_address("repository", environ),
        learner_address=service_address("learner", environ),
        refine=env_bool(
            "SCHEDCP_PLANNER_REFINE",
            True,
            environ=environ,
            doc="Refine rounds of candidates that all failed verification (bus-driven loop).",
        ),
    )
