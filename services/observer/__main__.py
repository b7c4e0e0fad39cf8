"""Entry point: `python -m services.observer`."""

from __future__ import annotations

import asyncio
import sys

from schedcp.service import run_service, serve
from services.observer import app, settings


async def main(stop: asyncio.Event) -> None:
    config = settings.load()
    await serve(stop, common=config.common, settings=config, setup=app.setup)


if __name__ == "__main__":
    sys.exit(run_service("observer", main))
