"""``schedcp deploy``, ``schedcp rollback`` and ``schedcp nodes`` against a real executor on one micro-VM node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format

from schedcp import tokens

from .test_executor_vm import PROGS, ROOT, Executor, _env, _verdict

pytestmark = [pytest.mark.vm, pytest.mark.slow]


def _cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "schedcp.cli.main", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli_objects() -> dict[str, bytes]:
    from schedcp.substrate.build import BpfBuilder
    from schedcp.substrate.kernel import ensure_kernel

    builder = BpfBuilder(btf=ensure_kernel().vmlinux)
    return {name: builder.build_file(src).object_path.read_bytes()
            for name, src in {"fifo": ROOT / "bpf/fifo.bpf.c", "stall_true": PROGS / "stall_true.bpf.c"}.items()}


@pytest.fixture(scope="module")
def cli_keyring(tmp_path_factory: pytest.TempPathFactory) -> tokens.KeyRing:
    return tokens.KeyRing(tmp_path_factory.mktemp("cli-verifier") / "keys")


@pytest.fixture(scope="module")
def cli_executor(tmp_path_factory: pytest.TempPathFactory, cli_keyring: tokens.KeyRing,
                 nats_server) -> Iterator[Executor]:  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("cli-executor")
    keys_file = cli_keyring.export_public(base / "public.json")
    env = dict(os.environ, SCHEDCP_NATS_URL=nats_server.url, SCHEDCP_SUBJECT_PREFIX="cli" + str(os.getpid()),
               SCHEDCP_LOG_FORMAT="text", SCHEDCP_LLM_URL="none", SCHEDCP_EXECUTOR_VM_CPUS="1",
               # Nothing listens here: a verdict id cannot be fetched.
               SCHEDCP_VERIFIER_ADDR="127.0.0.1:1")
    executor = Executor(node="c1", env=_env(env, Path(keys_file), "c1", base / "data"), log=base / "c1.log")
    executor.start()
    try:
        yield executor
    finally:
        executor.stop()


def test_unreachable_executor_is_exit_2() -> None:
    env = dict(os.environ, SCHEDCP_EXECUTOR_ADDR="127.0.0.1:1")
    for args in (["nodes"], ["rollback"]):
        out = _cli(env, *args, timeout=60)
        assert out.returncode == 2, out
        assert "unreachable" in out.stderr and "schedcp up" in out.stderr


def test_deploy_nodes_and_rollback(cli_executor: Executor, cli_keyring: tokens.KeyRing,
                                   cli_objects: dict[str, bytes], tmp_path: Path) -> None:
    env = dict(os.environ, SCHEDCP_EXECUTOR_ADDR=cli_executor.address)
    good = _verdict(cli_keyring, cli_objects["fifo"], policy="fifo", nodes=["c1"], tunables={"slice_us": 5000})
    good_file = tmp_path / "fifo.verdict.json"  # the shape `schedcp verify --out` writes
    good_file.write_text(json_format.MessageToJson(good, preserving_proto_field_name=True))

    out = _cli(env, "deploy", str(good_file), "--nodes", "c1", "--bake", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "c1           COMPLETE" in out.stdout and "deploy done: c1 COMPLETE" in out.stdout, out.stdout

    out = _cli(env, "nodes")
    assert out.returncode == 0, out.stderr
    assert "c1  healthy  sched_ext enabled" in out.stdout and "running     fifo@1" in out.stdout, out.stdout
    status = json.loads(_cli(env, "nodes", "--json").stdout)
    assert status[0]["node"] == "c1" and status[0]["running"]["name"] == "fifo" and status[0]["since_unix"]

    # The same token again: refused as a replay, exit 1, the node unchanged.
    out = _cli(env, "deploy", str(good_file), "--nodes", "c1", "--bake", "1", "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    reports = [json.loads(line) for line in out.stdout.splitlines()]
    assert reports[0]["phase"] == "PHASE_REFUSED" and "already used" in reports[0]["message"]

    # A scheduler the watchdog ejects: the breaker rolls back to fifo and the CLI says why.
    bad = _verdict(cli_keyring, cli_objects["stall_true"], policy="stall_true", nodes=["c1"])
    (tmp_path / "bad.pb").write_bytes(bad.SerializeToString())  # a binary Verdict is accepted too
    out = _cli(env, "deploy", str(tmp_path / "bad.pb"), "--nodes", "c1", "--bake", "1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ROLLED_BACK" in out.stdout and "breaker: ejected" in out.stdout and "deploy FAILED" in out.stdout
    assert "running     fifo@1" in _cli(env, "nodes").stdout

    # A verdict id needs the verifier, which is down here: a clear error, exit 2.
    out = _cli(env, "deploy", "0123abcd", "--nodes", "c1")
    assert out.returncode == 2 and "verifier" in out.stderr, out.stderr

    out = _cli(env, "rollback", "--nodes", "nope")
    assert out.returncode == 2 and "unknown nodes" in out.stderr, out.stderr
    out = _cli(env, "rollback", "--nodes", "c1", "--reason", "cli test")
    assert out.returncode == 0 and "c1           ROLLED_BACK" in out.stdout, out.stdout + out.stderr
    rollback = [e for e in cli_executor.audit() if e["action"] == "rollback"][-1]
    assert "cli test" in json.dumps(rollback)
