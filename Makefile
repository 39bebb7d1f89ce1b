# Tessera: `make run` serves the demo, `make test` runs every check. Only Python 3.11+ and make needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# The real-services suite (pytest -m integration, see tests/realservices.py): PostgreSQL (pytest-django
# creates test_tessera), Redis dbs 15 (broker) and 14 (cache), and short job timings for its workers.
INTEGRATION_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/tessera
INTEGRATION_BROKER_URL ?= redis://127.0.0.1:6379/15
INTEGRATION_CACHE_URL ?= redis://127.0.0.1:6379/14
INTEGRATION_ENV = DATABASE_URL=$(INTEGRATION_DATABASE_URL) CELERY_BROKER_URL=$(INTEGRATION_BROKER_URL) \
	CACHE_URL=$(INTEGRATION_CACHE_URL) JOB_HEARTBEAT_SECONDS=1 JOB_STALE_SECONDS=3 BROKER_VISIBILITY_TIMEOUT=5
# The OHIF viewer's prebuilt dist (npm package @ohif/app), served by apps/medical/ohif.py; keep
# OHIF_VERSION in step with apps.medical.ohif.OHIF_VERSION. Runtime state, never in git.
OHIF_VERSION ?= 3.13.2
OHIF_DIR := var/ohif
OHIF_STAMP := $(OHIF_DIR)/node_modules/@ohif/app/.installed-$(OHIF_VERSION)

.PHONY: run test install lint typecheck migrations-check pytest worker web seed clean help ohif

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
	DJANGO_ENV=test $(VENV)/bin/lint-imports
	DJANGO_ENV=test $(PY) manage.py makemigrations --check --dry-run
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory ohif; else echo "npm not found: the OHIF browser test will be skipped"; fi
	DJANGO_ENV=test $(VENV)/bin/pytest -m "not integration" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	DJANGO_ENV=test $(INTEGRATION_ENV) $(VENV)/bin/pytest -m integration --timeout=120 $(PYTEST_ARGS) || [ $$? -eq 5 ]

# `npm pack` fetches the package itself (integrity-checked against the registry) and its dist/ is
# unpacked where `npm install --prefix $(OHIF_DIR)` would put it: the dist is self-contained, and
# `npm install` also resolves the build-time dependencies (one of which, @ohif/i18n@3.13.2, the
# registry mirror here lacks: ETARGET). About 5 s and 50 MB from a cold npm cache.
ohif: $(OHIF_STAMP)

$(OHIF_STAMP):
	@command -v npm >/dev/null || { echo "make ohif needs npm (apt-get install npm)"; exit 1; }
	rm -rf $(OHIF_DIR)/node_modules/@ohif/app && mkdir -p $(OHIF_DIR)/node_modules/@ohif/app
	cd $(OHIF_DIR) && npm pack --silent @ohif/app@$(OHIF_VERSION) >/dev/null
	tar -xzf $(OHIF_DIR)/ohif-app-$(OHIF_VERSION).tgz -C $(OHIF_DIR)/node_modules/@ohif/app --strip-components=1
	rm -f $(OHIF_DIR)/ohif-app-$(OHIF_VERSION).tgz
	@touch $@

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
