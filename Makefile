# Tessera: `make run` serves the demo, `make test` runs every check. Only Python 3.11+ and make needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: run test install lint typecheck migrations-check pytest worker web seed clean help

help:
	@echo "make run    # install, migrate, seed the demo org, serve portal+API with a worker"
	@echo "make test   # lint, type check, migrations check, the whole pytest suite"

$(STAMP): requirements/base.txt requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet -r requirements/dev.txt
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m scripts.run_local

test: install
	DJANGO_ENV=test $(VENV)/bin/ruff check .
	DJANGO_ENV=test $(VENV)/bin/ruff format --check .
	DJANGO_ENV=test $(VENV)/bin/mypy .
	DJANGO_ENV=test $(PY) manage.py makemigrations --check --dry-run
	DJANGO_ENV=test $(VENV)/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
