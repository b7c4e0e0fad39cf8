"""Shared LLM access: the local model server and the structured-output client.

- :mod:`schedcp.llm.server`: start SmolLM2 on CPU via xllamacpp (demo, tests, ``schedcp up``).
- :mod:`schedcp.llm.client`: :class:`LlmClient` for any OpenAI-compatible endpoint.
- :mod:`schedcp.llm.schema`: bounded JSON schemas and validation of model output.
"""

from schedcp.llm.client import JsonResult, LlmClient, LlmOutputInvalid, LlmUnavailable, Usage
from schedcp.llm.schema import SchemaViolation, check_bounded, validate

__all__ = [
    "JsonResult",
    "LlmClient",
    "LlmOutputInvalid",
    "LlmUnavailable",
    "SchemaViolation",
    "Usage",
    "check_bounded",
    "validate",
]
