"""Settings of the executor service, read from the environment in one place."""

from __future__ import annotations

from dataclasses import dataclass

from schedcp.settings import CommonSettings, load_common


@dataclass(frozen=True)
class Settings:
    common: CommonSettings


def load(environ: dict[str, str] | None = None) -> Settings:
    return Settings(common=load_common("executor", environ))
