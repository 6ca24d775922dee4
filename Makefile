# The two commands: `make serve` and `make test`. Both set up what they need first.
.PHONY: setup serve test bench

setup:
	bash scripts/setup.sh

serve: setup
	.venv/bin/liventix serve --demo

test:
	bash scripts/test.sh

bench: setup
	.venv/bin/python bench/run_all.py
