"""LLM access for schedcp's agents: any OpenAI-compatible endpoint, structured output only.

Production uses vLLM (or any OpenAI-compatible server) with a strong model; the
demo and tests use the local SmolLM2 server (:mod:`schedcp.llm.server`). Either
way the contract is the same:

- every call asks for ``response_format=json_schema`` with a *bounded* schema
  (:func:`schedcp.llm.schema.check_bounded`) and validates the answer before
  returning it: callers never see unchecked model output;
- transient failures are retried with exponential backoff (tenacity), every
  request has a timeout, and when the endpoint stays unreachable the call raises
  :class:`LlmUnavailable` quickly so the planner can fall back to its
  deterministic path;
- every call returns its :class:`Usage` (tokens, wall time, cost), also when it
  fails, so a Plan can account for what producing it cost.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import openai
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from schedcp.errors import SchedcpError, Unavailable
from schedcp.llm.schema import SchemaViolation, check_bounded, validate


class LlmUnavailable(Unavailable):
    """The LLM endpoint cannot be reached or keeps failing; fall back to the deterministic path."""

    def __init__(
        self, message: str, *, usage: Usage | None = None, hint: str | None = None
    ) -> None:
        super().__init__(
            message,
            hint=hint or "check SCHEDCP_LLM_URL, or run without an LLM (--llm none)",
        )
        self.usage = usage or Usage()


class LlmOutputInvalid(SchedcpError):
    """The model answered, but not with JSON that satisfies the requested schema."""

    code = "llm_output_invalid"

    def __init__(self, message: str, *, usage: Usage | None = None) -> None:
        super().__init__(message, hint="the answer was discarded; nothing was used from it")
        self.usage = usage or Usage()


@dataclass
class Usage:
    """Tokens, calls and wall time spent on LLM calls; add them up with ``+``."""

    model: str = ""
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_seconds: float = 0.0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            model=self.model or other.model,
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            wall_seconds=self.wall_seconds + other.wall_seconds,
            cost_usd=self.cost_usd + other.cost_usd,
        )

    def to_proto(self) -> Any:
        """As a ``schedcp.v1.LlmUsage`` message."""
        from schedcp.v1 import plan_pb2

        return plan_pb2.LlmUsage(
            model=self.model,
            calls=self.calls,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            wall_seconds=self.wall_seconds,
            cost_usd=self.cost_usd,
        )


@dataclass
class JsonResult:
    """A validated structured answer and what it cost."""

    data: dict[str, Any]
    usage: Usage
    raw: str = field(repr=False, default="")


# Worth retrying: the endpoint may come back. A 4xx other than 408/429 is a bug
# in the request and retrying it only wastes time.
_TRANSIENT = (
    openai.APIConnectionError,  # includes APITimeoutError
    openai.RateLimitError,
    openai.InternalServerError,
)


class LlmClient:
    """Structured JSON calls against an OpenAI-compatible chat-completions endpoint."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "none",
        timeout_s: float = 60.0,
        connect_timeout_s: float = 2.0,
        max_attempts: int = 3,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 2.0,
        invalid_output_attempts: int = 2,
        price_prompt_per_mtok: float = 0.0,
        price_completion_per_mtok: float = 0.0,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.max_attempts = max(1, max_attempts)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.invalid_output_attempts = max(1, invalid_output_attempts)
        self.price_prompt_per_mtok = price_prompt_per_mtok
        self.price_completion_per_mtok = price_completion_per_mtok
        # openai's own retries are off: tenacity owns the policy so that the
        # total time before LlmUnavailable is bounded and known.
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "none",
            timeout=openai.Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=0,
        )

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> LlmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def complete_json(
        self,
        *,
        system: str,
        user: str,
        schema: dict[str, Any],
        schema_name: str = "answer",
        max_tokens: int = 256,
        temperature: float = 0.2,
    ) -> JsonResult:
        """Ask for JSON matching ``schema`` and return it validated, with its usage.

        Raises LlmUnavailable when the endpoint cannot be reached after the
        bounded retries, LlmOutputInvalid when every attempt answered with JSON
        that does not validate. Both carry the usage spent so far.
        """
        check_bounded(schema)
        spent = Usage(model=self.model)
        last_problem = ""
        for _ in range(self.invalid_output_attempts):
            text, usage = await self._call(
                system, user, schema, schema_name, max_tokens, temperature
            )
            spent = spent + usage
            try:
                data = json.loads(text)
                validate(data, schema)
            except (ValueError, SchemaViolation) as exc:
                last_problem = str(exc)
                continue
            return JsonResult(data=data, usage=spent, raw=text)
        raise LlmOutputInvalid(
            f"the model's answer did not match the {schema_name!r} schema: {last_problem}",
            usage=spent,
        )

    async def _call(
        self,
        system: str,
        user: str,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int,
        temperature: float,
    ) -> tuple[str, Usage]:
        start = time.monotonic()
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.max_attempts),
                wait=wait_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s),
                retry=retry_if_exception_type(_TRANSIENT),
                reraise=False,
            ):
                with attempt:
                    attempts += 1
                    response = await self._client.chat.completions.create(
                        model=self.model,
                        messages=[
                            {"role": "system", "content": system},
                            {"role": "user", "content": user},
                        ],
                        max_tokens=max_tokens,
                        temperature=temperature,
                        response_format={
                            "type": "json_schema",
                            "json_schema": {"name": schema_name, "schema": schema, "strict": True},
                        },
                    )
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise LlmUnavailable(
                f"LLM at {self.base_url} unavailable after {attempts} attempts: {cause}",
                usage=Usage(
                    model=self.model, calls=attempts, wall_seconds=time.monotonic() - start
                ),
            ) from cause
        except openai.APIStatusError as exc:
            raise LlmUnavailable(
                f"LLM at {self.base_url} rejected the request (HTTP {exc.status_code}): {exc.message}",
                usage=Usage(
                    model=self.model, calls=attempts, wall_seconds=time.monotonic() - start
                ),
                hint="check SCHEDCP_LLM_MODEL and SCHEDCP_LLM_API_KEY",
            ) from exc
        elapsed = time.monotonic() - start
        prompt = response.usage.prompt_tokens if response.usage else 0
        completion = response.usage.completion_tokens if response.usage else 0
        usage = Usage(
            model=response.model or self.model,
            calls=attempts,
            prompt_tokens=prompt,
            completion_tokens=completion,
            wall_seconds=elapsed,
            cost_usd=(
                prompt * self.price_prompt_per_mtok + completion * self.price_completion_per_mtok
            )
            / 1e6,
        )
        text = response.choices[0].message.content if response.choices else None
        return text or "", usage
