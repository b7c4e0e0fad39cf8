"""Generated protobuf and gRPC stubs for schedcp.v1 (see scripts/gen-proto.sh).

Do not edit: regenerate from proto/schedcp/v1/ instead.
"""
