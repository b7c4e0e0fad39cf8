"""Which failed verdict to refine, when the planner is driven by the bus.

A profile gets several candidates; the verifier judges each. Refining every
failure would multiply work, and refining while a sibling may still pass is
wasted. So a round (the candidates published together) is refined only once
all its verdicts are in and none passed, and then only its most promising
failure (highest measured score, then lowest candidate index). Verdicts for
plans this planner did not publish are ignored. State is in memory and
bounded; after a restart, open rounds are simply not refined.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from schedcp.v1 import plan_pb2, verdict_pb2


class RefinementTracker:
    def __init__(self, *, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._round_of: OrderedDict[str, str] = OrderedDict()  # plan_id -> round id
        self._pending: dict[str, set[str]] = {}
        self._failures: dict[str, list[verdict_pb2.Verdict]] = {}
        self._profile_of: dict[str, str] = {}
        self._solved: OrderedDict[str, None] = OrderedDict()

    def expect(self, plans: Sequence[plan_pb2.Plan]) -> None:
        """Remember a round of candidates published together."""
        if not plans:
            return
        round_id = plans[0].plan_id
        self._pending[round_id] = {p.plan_id for p in plans}
        self._failures[round_id] = []
        self._profile_of[round_id] = plans[0].profile.profile_id
        for p in plans:
            self._round_of[p.plan_id] = round_id
        while len(self._round_of) > self.capacity:
            _, old = self._round_of.popitem(last=False)
            self._forget(old)

    def observe(self, verdict: verdict_pb2.Verdict) -> verdict_pb2.Verdict | None:
        """Return the failure to refine once its round is complete and fully failed."""
        round_id = self._round_of.pop(verdict.plan.plan_id, None)
        if round_id is None or round_id not in self._pending:
            return None
        profile_id = self._profile_of[round_id]
        if verdict.passed:
            self._solved[profile_id] = None
            while len(self._solved) > self.capacity:
                self._solved.popitem(last=False)
            self._forget(round_id)
            return None
        self._pending[round_id].discard(verdict.plan.plan_id)
        self._failures[round_id].append(verdict)
        if self._pending[round_id]:
            return None
        failures = self._failures[round_id]
        self._forget(round_id)
        if profile_id in self._solved:
            return None
        return max(failures, key=lambda v: (v.performance.score, -v.plan.candidate_index))

    def _forget(self, round_id: str) -> None:
        self._pending.pop(round_id, None)
        self._failures.pop(round_id, None)
        self._profile_of.pop(round_id, None)
