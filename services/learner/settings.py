"""Settings of the learner service, read from the environment in one place."""

from __future__ import annotations

from dataclasses import dataclass

from schedcp.settings import (
    CommonSettings,
    env_bool,
    env_float,
    env_int,
    load_common,
    service_address,
)
from services.learner.learner import LearnerSettings


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    learner: LearnerSettings
    repository_address: str


def load_learner_settings(environ: dict[str, str] | None = None) -> LearnerSettings:
    return LearnerSettings(
        promote_min_wins=env_int(
            "SCHEDCP_LEARNER_PROMOTE_MIN_WINS",
            3,
            minimum=1,
            maximum=100,
            environ=environ,
            doc="Wins on a workload class before a policy is promoted.",
        ),
        promote_min_mean_ratio=env_float(
            "SCHEDCP_LEARNER_PROMOTE_MIN_RATIO",
            1.05,
            minimum=1.0,
            maximum=10.0,
            environ=environ,
            doc="Mean improvement over EEVDF (recent outcomes on the class) needed to promote.",
        ),
        deprecate_max_mean_ratio=env_float(
            "SCHEDCP_LEARNER_DEPRECATE_RATIO",
            0.95,
            minimum=0.0,
            maximum=1.0,
            environ=environ,
            doc="A policy whose recent outcomes average below this ratio is deprecated.",
        ),
        drift_ratio=env_float(
            "SCHEDCP_LEARNER_DRIFT_RATIO",
            0.95,
            minimum=0.0,
            maximum=1.0,
            environ=environ,
            doc="Feedback ratio below which a deployment counts as drifting.",
        ),
        drift_reports=env_int(
            "SCHEDCP_LEARNER_DRIFT_REPORTS",
            2,
            minimum=1,
            maximum=100,
            environ=environ,
            doc="Consecutive drifting feedback reports that trigger re-planning.",
        ),
        drift_cooldown_s=env_float(
            "SCHEDCP_LEARNER_DRIFT_COOLDOWN_S",
            300.0,
            minimum=0.0,
            environ=environ,
            doc="Minimum time between two drift re-plans of one workload.",
        ),
        record_events=env_bool(
            "SCHEDCP_LEARNER_RECORD_EVENTS",
            False,
            environ=environ,
            doc="Also write records/antipatterns to the repository (off: the repository consumes "
            "verdicts and outcomes from the bus itself).",
        ),
    )


def load(environ: dict[str, str] | None = None) -> Settings:
    return Settings(
        common=load_common("learner", environ),
        learner=load_learner_settings(environ),
        repository_address=service_address("repository", environ),
    )
