# Quick start:  make quickstart   (venv + install + sample data + one full run + summary)
#               make test-fast    (ruff, import contract, the tests not marked slow: about 4 min)
#               make test         (the whole test suite; what CI runs)
#               make ui           (Dagster UI on http://127.0.0.1:3000 with the sample data)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

export PATH := $(BIN):$(PATH)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

# The sample data is generated as of this instant; runs on it use the same as_of.
SAMPLE_EVENTS ?= 100000
SAMPLE_AS_OF ?= 2026-11-01T00:00:00Z
SAMPLE_DIR := $(CURDIR)/data/sample

# Identifiers are pseudonymized with a secret key from SEGWH_PSEUDONYMIZATION_KEY. For the sample
# runs of this checkout, a random key is generated once into data/ (git-ignored) when the
# environment has none; production keeps its key in a secret store (README, Privacy).
KEY_FILE := $(CURDIR)/data/.pseudonymization_key
WITH_KEY = SEGWH_PSEUDONYMIZATION_KEY=$${SEGWH_PSEUDONYMIZATION_KEY:-$$(cat $(KEY_FILE))}

DBT_SOURCES := $(shell find dbt_project -path dbt_project/target -prune -o -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.csv' \) -print)
MANIFEST := dbt_project/target/manifest.json

.PHONY: quickstart install sample run ui test test-fast lint clean

quickstart: install sample run

install: $(VENV)/.installed $(MANIFEST)

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# The dbt manifest is prepared once at install time, not parsed on every code-location load.
$(MANIFEST): $(VENV)/.installed $(DBT_SOURCES)
	$(BIN)/python -m orchestration.dbt
	touch $@

sample: $(VENV)/.installed
	$(BIN)/python -m sample_data --events $(SAMPLE_EVENTS) --out $(SAMPLE_DIR) --force

$(KEY_FILE):
	mkdir -p $(dir $@)
	umask 077 && $(BIN)/python -c 'import secrets; print(secrets.token_hex(32))' > $@

run: install $(KEY_FILE)
	$(WITH_KEY) SEGWH_AS_OF=$(SAMPLE_AS_OF) $(BIN)/segwh run

ui: install $(KEY_FILE)
	test -d $(SAMPLE_DIR)/landing || $(MAKE) sample
	umask 077 && $(WITH_KEY) SEGWH_AS_OF=$(SAMPLE_AS_OF) $(BIN)/dg dev -w workspace.yaml -h 127.0.0.1 -p 3000

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest

# The fast lane: everything but the tests marked slow (integration runs of the whole graph, the UI,
# dbt builds, the benchmark smoke run; see the slow marker in pyproject.toml and tests/conftest.py).
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .

# Regenerate requirements.lock after changing dependencies in pyproject.toml.
lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf data .dagster_home/storage .dagster_home/history .dagster_home/logs dbt_project/target
