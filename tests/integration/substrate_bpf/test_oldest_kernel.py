"""The compat layer at run time: the same sources load and schedule on the
oldest Debian sched_ext kernel (6.16: old scx_bpf_dispatch/consume names
present, no ___v2 kfuncs, no vtime setter kfuncs), not only on 7.x."""

from __future__ import annotations

import pytest

from schedcp.substrate.build import BPF_DIR, BpfBuilder

pytestmark = pytest.mark.vm


def test_reference_schedulers_load_and_schedule_on_the_oldest_kernel() -> None:
    from schedcp.substrate.kernel import fetch_btf_kernel
    from schedcp.substrate.nodes import boot_vm_node

    kernel = fetch_btf_kernel()
    with boot_vm_node(kernel=kernel, cpus=2) as node:
        builder = BpfBuilder(btf=node.btf_path())
        assert "scx_bpf_dsq_insert___v2" not in builder.kfuncs().names
        for name in ("fifo", "wvtime"):
            obj = builder.build_file(BPF_DIR / f"{name}.bpf.c").object_path
            res = node.load(obj, tunables={"slice_us": 2000})
            assert res.state == "enabled" and res.name == name
            run = node.run(["hackbench", "-g", "1", "-l", "20"], timeout_s=120)
            assert run.returncode == 0, run.stderr
            st = node.state(name)
            assert st.enabled and not st.ejected, st.exit
            assert node.unload(name).exit.kind == 64
        assert node.run(["uname", "-r"], timeout_s=30).stdout.strip() == kernel.release
