# The two commands of the README. Both bring the machine up to date first (idempotent).
.PHONY: demo test bootstrap lint

demo: bootstrap
	.venv/bin/python -m lab.demo

# The lint runs first: a broken import contract or a type error fails before the tests start.
test: bootstrap
	@$(MAKE) --no-print-directory lint
	.venv/bin/python -m pytest

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
