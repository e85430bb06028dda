# Use the project's virtualenv tools when they exist (scripts/test.sh creates .venv).
RUFF ?= $(if $(wildcard .venv/bin/ruff),.venv/bin/ruff,ruff)
MYPY ?= $(if $(wildcard .venv/bin/mypy),.venv/bin/mypy,mypy)
UV ?= $(if $(wildcard .venv/bin/uv),.venv/bin/uv,uv)
# Extra pytest arguments: make test ARGS='tests/test_x.py -q'
ARGS ?=

.PHONY: run test lint typecheck bench i18n lock

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

# requirements/*.txt: every dependency pinned, with hashes, for any platform with Python
# 3.11+ (markers). Existing pins are kept; to move: make lock UPGRADE='--upgrade-package
# aiogram' (or UPGRADE=--upgrade for all). test.txt is resolved first; run.txt and bot.txt
# are constrained to it, so the three never disagree on a version.
UPGRADE ?=
LOCK = $(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock'
lock:
	$(LOCK) $(UPGRADE) pyproject.toml requirements/build.in --extra test --extra bench --extra dev \
		-o requirements/test.txt
	$(LOCK) pyproject.toml requirements/build.in --extra sandbox -c requirements/test.txt \
		-o requirements/run.txt
	$(LOCK) pyproject.toml requirements/build.in -c requirements/test.txt -o requirements/bot.txt
