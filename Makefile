# One entry point for newcomers and CI. Every target creates what it needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
STAMP := $(VENV)/.installed
SAM_STAMP := $(SAM_VENV)/.installed
CHECKOV_VENV := .tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
REGION ?= us-east-1
PYTEST_ARGS ?=
export PATH := $(CURDIR)/$(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= $(REGION)

.PHONY: help venv sam-tools security-tools lint typecheck validate security build test unit functional e2e demo bench deploy clean

help:
	@echo "make demo    - set up, start the local stack and Airflow, run the example DAGs"
	@echo "make test    - set up, lint, type-check, validate, scan (checkov) and build the template, run all tests"
	@echo "make lint | typecheck | validate | security | build | unit | functional | e2e | bench | deploy | clean"

$(STAMP): pyproject.toml local/pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]' -e ./local
	touch $@

$(SAM_STAMP): requirements/sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements/sam.txt
	touch $@

# checkov has many dependencies of its own: its own venv, pinned, like the SAM CLI.
$(CHECKOV_STAMP): requirements/checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements/checkov.txt
	touch $@

venv: $(STAMP)
sam-tools: $(SAM_STAMP)
security-tools: $(CHECKOV_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy layers/control_plane/ecs_control_plane functions executor_client local/ecscp benchmarks

validate: $(SAM_STAMP)
	$(SAM) validate --lint --region $(REGION)

# Every finding is fixed or suppressed in template.yaml with its reason (checkov:skip comments).
security: $(CHECKOV_STAMP)
	$(CHECKOV) --file template.yaml --framework cloudformation --skip-download --compact --quiet

build: $(SAM_STAMP) $(STAMP)
	$(SAM) build --region $(REGION)

unit: $(STAMP) $(SAM_STAMP)  # the migrate tests read sam deploy overrides back with the SAM CLI
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

functional: $(STAMP)
	$(BIN)/pytest tests/functional $(PYTEST_ARGS)

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

test: lint typecheck validate security build
	$(BIN)/pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/ecscp demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks

deploy: build
	$(SAM) deploy --guided

clean:
	rm -rf $(VENV) .tools .aws-sam .mypy_cache .ruff_cache .pytest_cache
