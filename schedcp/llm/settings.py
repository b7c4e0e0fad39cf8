"""LLM settings from the environment, and opening a client for them.

``SCHEDCP_LLM_URL`` selects the model endpoint:

- ``none``: no LLM; agents use their deterministic paths (0 tokens);
- ``local``: start the bundled SmolLM2 server (:mod:`schedcp.llm.server`) as a
  child of this process, on a free loopback port;
- any ``http(s)://.../v1`` URL: an OpenAI-compatible server (vLLM in production).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from schedcp.errors import ConfigError
from schedcp.llm.client import LlmClient
from schedcp.llm.server import DEFAULT_MODEL_ALIAS, LocalLlmServer
from schedcp.settings import env_float, env_int, env_str


@dataclass(frozen=True)
class LlmSettings:
    url: str
    model: str
    api_key: str
    timeout_s: float
    max_attempts: int
    price_prompt_per_mtok: float
    price_completion_per_mtok: float

    @property
    def enabled(self) -> bool:
        return self.url != "none"


def load_llm_settings(
    environ: dict[str, str] | None = None, *, default_url: str = "none"
) -> LlmSettings:
    """Read SCHEDCP_LLM_*; fail fast on a malformed URL."""
    url = env_str(
        "SCHEDCP_LLM_URL",
        default_url,
        environ=environ,
        doc="LLM endpoint for the agents: `none` (deterministic only), `local` (start the bundled "
        "SmolLM2 on CPU), or an OpenAI-compatible base URL such as http://vllm:8000/v1.",
    )
    assert url is not None
    if url not in ("none", "local") and not url.startswith(("http://", "https://")):
        raise ConfigError(
            "SCHEDCP_LLM_URL",
            f"{url!r} is neither none, local nor an http(s) URL",
            hint="e.g. SCHEDCP_LLM_URL=http://127.0.0.1:8000/v1",
        )
    return LlmSettings(
        url=url,
        model=env_str(
            "SCHEDCP_LLM_MODEL",
            DEFAULT_MODEL_ALIAS,
            environ=environ,
            doc="Model name sent to the LLM endpoint.",
        )
        or DEFAULT_MODEL_ALIAS,
        api_key=env_str(
            "SCHEDCP_LLM_API_KEY", "none", environ=environ, doc="API key for the LLM endpoint."
        )
        or "none",
        timeout_s=env_float(
            "SCHEDCP_LLM_TIMEOUT_S",
            60.0,
            minimum=1,
            maximum=600,
            environ=environ,
            doc="Timeout of one LLM request, seconds (connect timeout is 2 s).",
        ),
        max_attempts=env_int(
            "SCHEDCP_LLM_MAX_ATTEMPTS",
            3,
            minimum=1,
            maximum=10,
            environ=environ,
            doc="Attempts per LLM request before it counts as unavailable (exponential backoff).",
        ),
        price_prompt_per_mtok=env_float(
            "SCHEDCP_LLM_PRICE_PROMPT_PER_MTOK",
            0.0,
            minimum=0,
            environ=environ,
            doc="USD per million prompt tokens, for the cost shown on Plans.",
        ),
        price_completion_per_mtok=env_float(
            "SCHEDCP_LLM_PRICE_COMPLETION_PER_MTOK",
            0.0,
            minimum=0,
            environ=environ,
            doc="USD per million completion tokens, for the cost shown on Plans.",
        ),
    )


@contextlib.asynccontextmanager
async def open_llm(settings: LlmSettings) -> AsyncIterator[LlmClient | None]:
    """Yield a client for ``settings`` (None when disabled), starting a local server if asked."""
    if not settings.enabled:
        yield None
        return
    server: LocalLlmServer | None = None
    url, model = settings.url, settings.model
    if url == "local":
        server = await asyncio.to_thread(LocalLlmServer().start)
        url, model = server.base_url, server.model
    try:
        async with LlmClient(
            base_url=url,
            model=model,
            api_key=settings.api_key,
            timeout_s=settings.timeout_s,
            max_attempts=settings.max_attempts,
            price_prompt_per_mtok=settings.price_prompt_per_mtok,
            price_completion_per_mtok=settings.price_completion_per_mtok,
        ) as client:
            yield client
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
