# pi05_moe: the three commands. `make setup` is idempotent (seconds when nothing changed).
SHELL := /bin/bash
.PHONY: setup test demo lint

setup:
	@bash scripts/setup.sh

# The README's test command; .ci/run calls exactly this.
test: setup
	@bash scripts/test.sh

# The README's main command: the whole robot in simulation with the shipped checkpoint.
demo: setup
	@source env.sh && pi05-moe demo --out demo_out

lint: setup
	@source env.sh && ruff check .
