"""The real local model: SmolLM2-135M via xllamacpp, started and stopped by schedcp.llm.server."""

from __future__ import annotations

import os

import pytest

from schedcp.llm.client import LlmClient, LlmUnavailable
from schedcp.llm.schema import validate
from schedcp.llm.server import LocalLlmServer
from schedcp.v1 import common_pb2, profile_pb2
from services.planner.planner import Planner, usage_of

pytestmark = pytest.mark.llm

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["choice", "slice_us", "rationale"],
    "properties": {
        "choice": {"enum": ["fifo", "wvtime"]},
        "slice_us": {"type": "integer", "minimum": 200, "maximum": 100000},
        "rationale": {"type": "string", "maxLength": 80},
    },
}


@pytest.fixture(scope="module")
def local_llm():
    with LocalLlmServer() as server:
        yield server


async def test_structured_call_returns_schema_valid_json_with_accounting(local_llm):
    async with LlmClient(base_url=local_llm.base_url, model=local_llm.model) as client:
        result = await client.complete_json(
            system="You choose Linux CPU schedulers. Answer in JSON.",
            user="A parallel kernel build with many short processes. Pick a scheduler.",
            schema=SCHEMA,
            max_tokens=64,
        )
    validate(result.data, SCHEMA)
    assert 1 <= result.usage.calls <= 2  # one retry when the weak model's JSON does not validate
    assert result.usage.prompt_tokens > 10 and result.usage.completion_tokens > 0
    assert result.usage.wall_seconds > 0 and result.usage.model


async def test_planner_with_the_real_model_keeps_the_deterministic_candidate_set(local_llm):
    from tests.unit.planner.fakes import (  # pure in-memory policies
        FakeRepository,
        fifo,
        profile,
        wvtime,
    )

    repo = FakeRepository([wvtime(), fifo()])
    p = profile(common_pb2.PARALLEL_BUILD)
    async with LlmClient(base_url=local_llm.base_url, model=local_llm.model) as client:
        with_llm = await Planner(repository=repo, llm=client, history=None).plan(p)
    without = await Planner(repository=repo, llm=None, history=None).plan(p)
    key = lambda plans: sorted((x.policy.name, str(sorted(x.tunables.items()))) for x in plans)  # noqa: E731
    assert key(with_llm) == key(without)
    assert usage_of(with_llm).total_tokens > 0 and usage_of(without).total_tokens == 0
    assert isinstance(p, profile_pb2.WorkloadProfile)


async def test_unavailable_llm_degrades_after_bounded_retries():
    async with LlmClient(
        base_url="http://127.0.0.1:9/v1", model="smollm2", max_attempts=3
    ) as client:
        with pytest.raises(LlmUnavailable) as err:
            await client.complete_json(system="s", user="u", schema=SCHEMA, max_tokens=8)
        assert err.value.usage.calls == 3
        from tests.unit.planner.fakes import FakeRepository, fifo, profile

        plans = await Planner(repository=FakeRepository([fifo()]), llm=client, history=None).plan(
            profile()
        )
    assert plans and plans[0].policy.name == "fifo"
    assert plans[0].llm.calls == 3 and plans[0].llm.completion_tokens == 0


def test_stop_leaves_no_process():
    server = LocalLlmServer().start()
    pid = server.pid
    assert server.healthy()
    server.stop()
    server.stop()  # idempotent
    assert pid is not None and not os.path.exists(f"/proc/{pid}")


def test_missing_model_is_a_clear_error(tmp_path):
    from schedcp.llm.server import LlmServerError

    with pytest.raises(LlmServerError, match="does not exist"):
        LocalLlmServer(model_path=tmp_path / "nope.gguf").start()
