# The two commands of the README. Both bring the machine up to date first (idempotent).
.PHONY: demo test bootstrap lint

demo: bootstrap
	.venv/bin/python -m lab.demo

test: bootstrap
	.venv/bin/python -m pytest

bootstrap:
	@./scripts/bootstrap.sh

lint:
	.venv/bin/ruff check .
