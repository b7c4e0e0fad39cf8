"""The broken corpus is caught at the right stage with the right rule, and the
project's own library produces no errors (build + static; no VM needed).

Parametrised over the directories, so new schedulers and new corpus entries
are covered automatically."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from services.verifier.domain import Candidate, Severity
from services.verifier.pipeline import StageFailed, VerifyContext

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "corpus" / "broken"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
# The project's library plus extra known-good designs (per-CPU DSQs, aging,
# task storage) that the rules must also leave alone.
LIBRARY = sorted((ROOT / "bpf").glob("*.bpf.c")) + sorted(
    (ROOT / "tests" / "corpus" / "good").glob("*.bpf.c"))


def _run_to_static(stages, path: Path, tmp_path: Path):
    """Run build then static; return (failed stage or None, findings of it)."""
    build, static = stages
    with contextlib.ExitStack() as stack:
        ctx = VerifyContext(candidate=Candidate(source=path.read_text(),
                                                name=path.name.removesuffix(".bpf.c")),
                            config_digest="", workdir=tmp_path, exit_stack=stack)
        for stage in (build, static):
            try:
                out = stage.run(ctx)
            except StageFailed as exc:
                return stage.name, exc.findings
            if any(f.severity is Severity.ERROR for f in out.findings):
                return stage.name, out.findings
        return None, out.findings


def test_manifest_covers_corpus():
    assert sorted(MANIFEST) == sorted(p.name for p in CORPUS.glob("*.bpf.c"))


@pytest.mark.parametrize("name", sorted(MANIFEST), ids=lambda n: n.removesuffix(".bpf.c"))
def test_corpus_caught_at_right_stage(build_and_static, name, tmp_path):
    want = MANIFEST[name]
    stage, findings = _run_to_static(build_and_static, CORPUS / name, tmp_path)
    if want["stage"] in ("build", "static"):
        assert stage == want["stage"], findings
        rules = {f.rule for f in findings if f.severity is Severity.ERROR}
        assert want["rule"] in rules, findings
        assert all(f.line > 0 for f in findings if f.severity is Severity.ERROR)
    else:
        # Later-stage entries must get past build and static cleanly, or the
        # corpus would not test the later stage at all.
        assert stage is None, findings


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: f"{p.parent.name}/{p.name.removesuffix('.bpf.c')}")
def test_library_has_no_static_errors(build_and_static, path, tmp_path):
    stage, findings = _run_to_static(build_and_static, path, tmp_path)
    assert stage is None, [f.to_dict() for f in findings]
    assert not [f for f in findings if f.severity is Severity.ERROR]


def test_tunable_override_changes_verdict(build_and_static, tmp_path):
    """A good scheduler with a bad --set value fails static (slice 0)."""
    build, static = build_and_static
    src = (ROOT / "bpf" / "fifo.bpf.c").read_text()
    with contextlib.ExitStack() as stack:
        ctx = VerifyContext(candidate=Candidate(source=src, name="fifo",
                                                tunables={"slice_us": 0}),
                            config_digest="", workdir=tmp_path, exit_stack=stack)
        build.run(ctx)
        out = static.run(ctx)
    assert "slice-zero" in {f.rule for f in out.findings if f.severity is Severity.ERROR}


def test_unknown_tunable_fails_build(build_and_static, tmp_path):
    build, _ = build_and_static
    with contextlib.ExitStack() as stack:
        ctx = VerifyContext(candidate=Candidate(source=(ROOT / "bpf" / "fifo.bpf.c").read_text(),
                                                name="fifo", tunables={"nope": 1}),
                            config_digest="", workdir=tmp_path, exit_stack=stack)
        with pytest.raises(StageFailed) as exc:
            build.run(ctx)
    assert exc.value.findings[0].rule == "unknown-tunable"
