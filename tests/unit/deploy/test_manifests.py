"""The deployment manifests parse, grant least privilege, and give every
component that boots micro-VMs the host's kernel and qemu caches."""

from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
VM_BOOTERS = {"verifier", "executor"}


def _k8s_containers() -> list[tuple[dict, dict]]:
    out = []
    for f in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            spec = ((doc or {}).get("spec") or {}).get("template", {}).get("spec")
            if spec:
                out += [(spec, c) for c in spec.get("containers", [])]
    return out


def test_no_component_runs_privileged() -> None:
    containers = _k8s_containers()
    assert containers, "no pod templates found under deploy/k8s"
    for _, c in containers:
        assert not (c.get("securityContext") or {}).get("privileged"), c["name"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, svc in compose["services"].items():
        assert not svc.get("privileged"), name


def test_vm_booting_components_mount_the_kernel_and_qemu_caches() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in VM_BOOTERS:
        # "${VAR:-default}:target" -> target (the default may hold no colon).
        targets = {v.rsplit(":", 1)[1] for v in compose["services"][name]["volumes"] if ":" in v}
        assert {"/var/cache/schedcp/kernels", "/var/cache/schedcp/qemu"} <= targets, (name, targets)
    for spec, c in _k8s_containers():
        if c["name"] == "verifier":
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert {"/var/cache/schedcp/kernels", "/var/cache/schedcp/qemu"} <= mounts, mounts
            assert {v["name"] for v in spec["volumes"]} >= {m["name"] for m in c["volumeMounts"]}
