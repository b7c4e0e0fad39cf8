"""The sched_ext substrate: a sched_ext kernel, micro-VMs that boot it, and
(from the BPF side) the build chain and loader.

Kernel and VM API (see docs/substrate.md):

- :func:`schedcp.substrate.kernel.ensure_kernel` -> :class:`Kernel`
- :class:`schedcp.substrate.vm.VmNode` (persistent), :func:`schedcp.substrate.vm.run_job` (one-shot)
- :class:`schedcp.substrate.pool.VmPool`
"""

from __future__ import annotations

from schedcp.errors import SchedcpError


class SubstrateError(SchedcpError):
    """Root of the substrate's errors (kernel fetch, VM boot, guest agent)."""

    code = "substrate"


class KernelError(SubstrateError):
    """No usable sched_ext kernel could be found, fetched or read."""

    code = "kernel"


class VmError(SubstrateError):
    """A micro-VM failed to boot, died, or its guest agent misbehaved."""

    code = "vm"


class VmTimeout(VmError):
    """A micro-VM or a command inside it ran past its hard timeout."""

    code = "vm_timeout"


class VmCrashed(VmError):
    """The guest kernel crashed (panic/oops) and took the VM down.

    ``likely_tcg_artifact`` is set for the stray-INT3 oops that multi-threaded
    TCG (qemu 7.2; hence :mod:`schedcp.substrate.qemu`) produces while the kernel patches its own code
    (static keys flipping at boot or when a scheduler is enabled): retrying on
    a fresh VM is then the right response, not blaming the workload.
    """

    code = "vm_crashed"

    def __init__(self, message: str, *, hint: str | None = None,
                 likely_tcg_artifact: bool = False) -> None:
        super().__init__(message, hint=hint, likely_tcg_artifact=likely_tcg_artifact)
        self.likely_tcg_artifact = likely_tcg_artifact
