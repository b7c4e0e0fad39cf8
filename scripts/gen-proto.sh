#!/usr/bin/env bash
# Regenerate the Python stubs from proto/ (the single source of truth).
# Old output is deleted first so a removed .proto never leaves a stale module.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
out=schedcp/v1
rm -f "$out"/*_pb2.py "$out"/*_pb2.pyi "$out"/*_pb2_grpc.py
mkdir -p "$out"
"$PY" -m grpc_tools.protoc -Iproto \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  proto/schedcp/v1/*.proto
cat > "$out/__init__.py" <<'PYEOF'
"""Generated protobuf and gRPC stubs for schedcp.v1 (see scripts/gen-proto.sh).

Do not edit: regenerate from proto/schedcp/v1/ instead.
"""
PYEOF
echo "generated $(ls "$out"/*_pb2*.py | wc -l) modules in $out"
