"""Bus handlers of the planner: profiles -> plans, failed rounds -> refined plans."""

from __future__ import annotations

import logging

from schedcp import subjects
from schedcp.bus import Bus
from schedcp.v1 import profile_pb2, verdict_pb2
from services.planner.planner import Planner
from services.planner.tracker import RefinementTracker

log = logging.getLogger("schedcp.planner")


async def start(bus: Bus, *, planner: Planner, refine: bool) -> None:
    tracker = RefinementTracker()

    async def on_profile(profile: profile_pb2.WorkloadProfile) -> None:
        plans = await planner.plan(profile)
        tracker.expect(plans)
        for plan in plans:
            await bus.publish(subjects.PLANS, plan, message_id=f"plan-{plan.plan_id}")
        log.info(
            "planned profile %s: %d candidates, first %s",
            profile.profile_id,
            len(plans),
            plans[0].policy.name if plans else "-",
        )

    async def on_verdict(verdict: verdict_pb2.Verdict) -> None:
        failed = tracker.observe(verdict)
        if failed is None:
            return
        plans = await planner.refine(failed)
        tracker.expect(plans)
        for plan in plans:
            await bus.publish(subjects.PLANS, plan, message_id=f"plan-{plan.plan_id}")

    await bus.subscribe(
        f"{subjects.PROFILES}.>",
        message_type=profile_pb2.WorkloadProfile,
        durable="planner-profiles",
        handler=on_profile,
        # A slow LLM call is covered by the bus's in-progress heartbeat
        # (every ack_wait/3); ack_wait only decides how soon a message whose
        # planner died (or whose NATS server went away) is delivered again.
        ack_wait=30.0,
        # Planning only calls the LLM and publishes plans under ids derived
        # from the profile (deduplicated): redoing it after a restart is safe.
        cancel_on_stop=True,
    )
    if refine:
        await bus.subscribe(
            subjects.VERDICTS,
            message_type=verdict_pb2.Verdict,
            durable="planner-verdicts",
            handler=on_verdict,
            ack_wait=30.0,
            cancel_on_stop=True,
        )
