# pi05_moe: the three commands. `make setup` is idempotent (seconds when nothing changed).
SHELL := /bin/bash
.PHONY: setup test lint

setup:
	@bash scripts/setup.sh

# The README's test command; .ci/run calls exactly this.
test: setup
	@bash scripts/test.sh

lint: setup
	@source env.sh && ruff check .
