# One task runner for schedcp. The README's two commands are scripts/demo.sh
# and scripts/test.sh (they work on a machine without make); these targets are
# shortcuts for developers.
.PHONY: install demo test test-fast lint typecheck proto kernel up down status bench docs clean

VENV := .venv
PY := $(VENV)/bin/python

install:            ## Debian packages, .venv from the lock file, the sched_ext kernel
	bash scripts/install.sh

demo:               ## install, then up -> optimize -> down
	bash scripts/demo.sh

test:               ## install, then lint and the whole test suite (what CI runs)
	bash scripts/test.sh

test-fast:          ## unit tests only, no install
	$(PY) -m pytest -q tests/unit

lint:
	$(VENV)/bin/ruff check .

typecheck:
	$(VENV)/bin/mypy schedcp services

proto:              ## regenerate schedcp/v1 from proto/ (the single source of truth)
	bash scripts/gen-proto.sh

lock:               ## re-resolve requirements.lock from pyproject.toml
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

kernel:             ## fetch (or show the cached) sched_ext kernel
	scripts/fetch-kernel --all

up down status:
	$(VENV)/bin/schedcp $@

bench:              ## every benchmark; results are written to docs/benchmarks-*.md
	bash scripts/bench.sh

docs:               ## regenerate the configuration reference
	$(PY) -m schedcp.settings > docs/configuration.md

clean:
	rm -rf .pytest_cache .ruff_cache .mypy_cache build *.egg-info
