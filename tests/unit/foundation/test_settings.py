"""Settings fail fast and name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from schedcp import settings
from schedcp.errors import ConfigError


def test_defaults_apply_when_unset_or_blank() -> None:
    assert settings.env_int("SCHEDCP_TEST_X", 7, environ={}) == 7
    assert settings.env_int("SCHEDCP_TEST_X", 7, environ={"SCHEDCP_TEST_X": "  "}) == 7


@pytest.mark.parametrize(("fn", "value", "fragment"), [
    (lambda env: settings.env_int("SCHEDCP_T_INT", 1, environ=env), "abc", "not an integer"),
    (lambda env: settings.env_int("SCHEDCP_T_INT", 1, minimum=0, maximum=10, environ=env), "11", "above the maximum"),
    (lambda env: settings.env_float("SCHEDCP_T_INT", 1.0, minimum=0, environ=env), "-1", "below the minimum"),
    (lambda env: settings.env_float("SCHEDCP_T_INT", 1.0, environ=env), "nan", "NaN"),
    (lambda env: settings.env_bool("SCHEDCP_T_INT", True, environ=env), "maybe", "not a boolean"),
    (lambda env: settings.env_address("SCHEDCP_T_INT", "127.0.0.1:1", environ=env), "localhost", "host:port"),
    (lambda env: settings.env_str("SCHEDCP_T_INT", "a", choices=("a", "b"), environ=env), "c", "not one of"),
])
def test_bad_values_name_the_variable(fn, value: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        fn({"SCHEDCP_T_INT": value})
    assert info.value.variable == "SCHEDCP_T_INT"
    assert "SCHEDCP_T_INT" in str(info.value)
    assert fragment in str(info.value)


def test_common_settings_read_every_service_variable(tmp_path: Path) -> None:
    env = {"SCHEDCP_NATS_URL": "nats://10.0.0.1:4222", "SCHEDCP_PLANNER_ADDR": "0.0.0.0:9000",
           "SCHEDCP_DATA_DIR": str(tmp_path), "SCHEDCP_NODE": "node-a", "SCHEDCP_NATS_REPLICAS": "3"}
    common = settings.load_common("planner", env)
    assert common.grpc_address == "0.0.0.0:9000"
    assert common.node == "node-a"
    assert common.data_dir == tmp_path
    assert common.nats_replicas == 3


def test_bad_service_address_fails_at_load() -> None:
    with pytest.raises(ConfigError, match="SCHEDCP_VERIFIER_ADDR"):
        settings.load_common("verifier", {"SCHEDCP_VERIFIER_ADDR": "nope"})


def test_every_registered_variable_is_documented() -> None:
    settings.render_markdown()
    undocumented = [v.name for v in settings.ENV_VARS.values() if not v.doc and not v.name.startswith("SCHEDCP_T")]
    assert undocumented == []


def test_every_variable_the_code_reads_is_in_the_reference() -> None:
    import re

    settings.render_markdown()
    used = set()
    for path in [*(settings.REPO_ROOT / "schedcp").rglob("*.py"), *(settings.REPO_ROOT / "services").rglob("*.py")]:
        used.update(re.findall(r'"(SCHEDCP_[A-Z0-9_]*[A-Z0-9])"', path.read_text()))
    missing = sorted(v for v in used if v not in settings.ENV_VARS or not settings.ENV_VARS[v].doc)
    assert missing == [], f"document these in schedcp/settings.py or their service settings: {missing}"


def test_the_configuration_reference_is_current() -> None:
    committed = (settings.REPO_ROOT / "docs" / "configuration.md").read_text()
    assert committed == settings.render_markdown(), "docs/configuration.md is stale: run `make docs`"
