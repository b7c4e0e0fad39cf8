"""Entry point: ``python -m schedcp.mcp [--transport stdio|streamable-http]``."""

from schedcp.mcp.server import main

if __name__ == "__main__":
    raise SystemExit(main())
