# Use the project's virtualenv tools when they exist (scripts/test.sh creates .venv).
RUFF ?= $(if $(wildcard .venv/bin/ruff),.venv/bin/ruff,ruff)
MYPY ?= $(if $(wildcard .venv/bin/mypy),.venv/bin/mypy,mypy)
# Extra pytest arguments: make test ARGS='tests/test_x.py -q'
ARGS ?=

.PHONY: run test lint typecheck bench i18n

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh $(ARGS)

# The benchmarks (docs/benchmarks.md): make bench ARGS='--quick' or ARGS='--postgres'
bench:
	.venv/bin/python -m bench $(ARGS)

lint:
	$(RUFF) check . && $(RUFF) format --check .

# strict, as configured in pyproject.toml ([tool.mypy]); .ci/run runs it after the tests
typecheck:
	$(MYPY)

# ui/locales/*.toml → the gettext catalogs the bot reads (scripts/i18n_to_gettext.py)
i18n:
	.venv/bin/python scripts/i18n_to_gettext.py
