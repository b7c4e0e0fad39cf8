"""The MCP gateway: schedcp's control plane as Model Context Protocol tools.

``python -m schedcp.mcp`` serves the tools over stdio (what Claude Code and
other agents spawn) or streamable HTTP. Every tool is backed by a service's
gRPC API; the only way a tool gets a scheduler onto a node is the executor's
token-gated Deploy with a verdict the verifier signed (see docs/mcp.md).
"""
