"""Fixtures for verifier integration tests: the real build chain and analyser."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def kernel():
    from schedcp.substrate.kernel import ensure_kernel

    return ensure_kernel()


@pytest.fixture(scope="session")
def build_and_static(kernel):
    """Build + static stages wired exactly as the service does."""
    from schedcp.substrate.build import BPF_INCLUDE_DIR, BpfBuilder
    from services.verifier.stages import BuildStage, StaticStage

    return (BuildStage(builder=BpfBuilder(btf=kernel.vmlinux)),
            StaticStage(project_include_dirs=[BPF_INCLUDE_DIR]))
