"""The one exception hierarchy of schedcp.

Every error carries what went wrong and, where possible, what to do about it
(``hint``). Services map these to gRPC status codes only in their servicers
(see ``schedcp.rpc.status_for``); domain code raises them and never imports grpc.
"""

from __future__ import annotations


class SchedcpError(Exception):
    """Root of every schedcp error."""

    #: A stable machine-readable code, e.g. "invalid_argument".
    code = "internal"

    def __init__(self, message: str, *, hint: str | None = None, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(SchedcpError):
    """A setting (usually an environment variable) is missing or invalid."""

    code = "config"

    def __init__(self, variable: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{variable}: {message}", hint=hint, variable=variable)
        self.variable = variable


class InvalidArgument(SchedcpError):
    code = "invalid_argument"


class NotFound(SchedcpError):
    code = "not_found"


class AlreadyExists(SchedcpError):
    code = "already_exists"


class PermissionDenied(SchedcpError):
    code = "permission_denied"


class FailedPrecondition(SchedcpError):
    """The request is valid but the system is not in a state to perform it
    (e.g. an illegal status transition)."""

    code = "failed_precondition"


class Unavailable(SchedcpError):
    """A dependency (NATS, the LLM, a VM) cannot be reached right now."""

    code = "unavailable"


class ContractError(SchedcpError):
    """A message does not satisfy the schedcp.v1 contract (bad bytes, wrong version)."""

    code = "contract"
