# The two commands of the README. Both bring the machine up to date first (idempotent).
.PHONY: demo test bootstrap lint

demo: bootstrap
	.venv/bin/python -m lab.demo

# The lint runs first: a broken import contract or a type error fails before the tests start.
# Two workers: most tests wait on real calls in real time, so two files at once take little
# more than one (each worker has its own Asterisk, ports and RTP ranges: lab/harness.py lane).
TEST_WORKERS ?= 2
test: bootstrap
	@$(MAKE) --no-print-directory lint
	.venv/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bootstrap:
	@./scripts/bootstrap.sh

# Style (ruff), the import contracts of pyproject.toml (lint-imports) and the types (mypy);
# all three run, so one CI run shows every broken rule.
lint:
	@status=0; \
	.venv/bin/ruff check . || status=1; \
	.venv/bin/lint-imports || status=1; \
	.venv/bin/mypy || status=1; \
	exit $$status
