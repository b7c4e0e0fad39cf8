"""schedcp: a control plane that lets LLM agents optimise sched_ext schedulers safely.

This package is the shared runtime every service and external tool imports:
generated contracts (``schedcp.v1``), the bus, tracing, settings, errors, the
gRPC bootstrap, the sched_ext substrate and the ``schedcp`` CLI.
"""

__version__ = "0.1.0"
SCHEMA_VERSION = "schedcp.v1"
