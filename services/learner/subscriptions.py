"""Bus handlers of the learner: verdicts, outcomes and feedback in; drift re-plans out.

Drift re-planning is a WorkloadProfile re-published on ``profiles.<node>``
with ``trigger="drift"`` (the last profile seen for that workload, or a
minimal one): the planner treats it like any other profile.
"""

from __future__ import annotations

import logging

from schedcp import subjects
from schedcp.bus import Bus
from schedcp.v1 import deployment_pb2, profile_pb2, verdict_pb2
from services.learner.learner import Actions, Learner

log = logging.getLogger("schedcp.learner")


class BusReplanner:
    """The learner's ReplanPort: publish the profile for the planner."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def replan(self, profile: profile_pb2.WorkloadProfile) -> None:
        await self.bus.publish(
            subjects.profile_subject(profile.node or "unknown"),
            profile,
            message_id=f"drift-{profile.profile_id}",
        )


def _log(kind: str, actions: Actions) -> None:
    if actions.promoted or actions.deprecated or actions.antipatterns or actions.replanned:
        log.info(
            "%s: promoted %s, deprecated %s, antipatterns %d, replanned %s",
            kind,
            actions.promoted,
            actions.deprecated,
            len(actions.antipatterns),
            actions.replanned,
        )


async def start(bus: Bus, *, learner: Learner) -> None:
    async def on_verdict(verdict: verdict_pb2.Verdict) -> None:
        _log("verdict", await learner.on_verdict(verdict))

    async def on_outcome(outcome: deployment_pb2.DeploymentOutcome) -> None:
        _log("outcome", await learner.on_outcome(outcome))

    async def on_feedback(report: profile_pb2.FeedbackReport) -> None:
        _log("feedback", await learner.on_feedback(report))

    await bus.subscribe(
        subjects.VERDICTS,
        message_type=verdict_pb2.Verdict,
        durable="learner-verdicts",
        handler=on_verdict,
    )
    await bus.subscribe(
        subjects.OUTCOMES,
        message_type=deployment_pb2.DeploymentOutcome,
        durable="learner-outcomes",
        handler=on_outcome,
    )
    await bus.subscribe(
        f"{subjects.FEEDBACK}.>",
        message_type=profile_pb2.FeedbackReport,
        durable="learner-feedback",
        handler=on_feedback,
    )
