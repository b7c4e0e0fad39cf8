"""schedcp's six services, each run as `python -m services.<name>`."""

import os

# Services fork helpers (qemu, virtiofsd, loaders) while gRPC threads are
# busy; gRPC's fork handlers then crashed the child. Set before grpc loads.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
