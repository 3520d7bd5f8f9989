# Headwater: `make up` brings the whole system up on the embedded default with
# sample data; `make test` runs every test (the command CI runs).
SHELL := /bin/bash
UV_VERSION := 0.13.8
# uv from PATH, else a private copy in .tools/ (a venv: works where pip --user cannot).
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON ?= 3.11

.PHONY: up install test lint bench clean

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# Then the SQL validator's hot modules compiled (headwater/native.py): skipped when current,
# and without a C compiler the sources run as they are.
install: $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	-$(UV) run --frozen python -m headwater.native

up: install
	$(UV) run --frozen headwater up

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

test: install lint
	$(UV) run --frozen pytest

bench: install
	$(UV) run --frozen python -m benchmarks --up

clean:
	rm -rf .headwater .tools
	find catalog -name '*.so' -delete -o -name native.json -delete
