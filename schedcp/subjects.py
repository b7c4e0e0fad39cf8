"""Every NATS subject and stream schedcp uses, in one place.

| subject | payload | producer | consumers |
|---|---|---|---|
| ``schedcp.v1.profiles.<node>`` | WorkloadProfile | observer | planner |
| ``schedcp.v1.plans`` | Plan | planner | verifier |
| ``schedcp.v1.verdicts`` | Verdict | verifier | planner, repository, learner, executor |
| ``schedcp.v1.deployments.<node>`` | DeploymentReport | executor | learner, CLI watch |
| ``schedcp.v1.outcomes`` | DeploymentOutcome | executor, optimize loop | learner, repository |
| ``schedcp.v1.feedback.<node>`` | FeedbackReport | observer | learner, executor |
| ``schedcp.v1.dlq`` | the rejected bytes, reason in headers | any consumer | operators |

All of them live in one JetStream stream (``SCHEDCP``) with limits retention,
so every service's durable consumer sees every message of its subjects, and
``schedcp watch`` can replay recent history.
"""

from __future__ import annotations

ROOT = "schedcp.v1"
PROFILES = f"{ROOT}.profiles"
PLANS = f"{ROOT}.plans"
VERDICTS = f"{ROOT}.verdicts"
DEPLOYMENTS = f"{ROOT}.deployments"
OUTCOMES = f"{ROOT}.outcomes"
FEEDBACK = f"{ROOT}.feedback"
DLQ = f"{ROOT}.dlq"
STREAM = "SCHEDCP"

#: Subjects that carry one token per node.
PER_NODE = (PROFILES, DEPLOYMENTS, FEEDBACK)


def _token(node: str) -> str:
    # NATS subject tokens cannot contain '.', '*', '>' or whitespace.
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in node)
    return cleaned or "_"


def profile_subject(node: str) -> str:
    return f"{PROFILES}.{_token(node)}"


def deployment_subject(node: str) -> str:
    return f"{DEPLOYMENTS}.{_token(node)}"


def feedback_subject(node: str) -> str:
    return f"{FEEDBACK}.{_token(node)}"


def with_prefix(subject: str, prefix: str) -> str:
    """Apply a tenant/test prefix (``SCHEDCP_SUBJECT_PREFIX``)."""
    return f"{prefix}.{subject}" if prefix else subject


def stream_name(prefix: str) -> str:
    return f"{STREAM}_{_token(prefix).upper()}" if prefix else STREAM
