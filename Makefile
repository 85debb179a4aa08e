# Everyday targets. `make run` and `make test` work on a fresh machine: they create .venv
# and install the pinned dependencies first (once; again only when a lock file changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# pip's progress bars (downloads) show at a terminal; --quiet would hide them too. Each long
# step is announced, and timed, by scripts/stage.sh.
PIP_INSTALL := $(PIP) install --progress-bar on
STAGE := scripts/stage.sh
DATA_DIR ?= ../shared/data
# The service's own variables win, so `SYNERGY_PORT=8001 make run` works as documented;
# `make run PORT=8001` too.
HOST ?= $(or $(SYNERGY_HOST),127.0.0.1)
PORT ?= $(or $(SYNERGY_PORT),8000)

.DEFAULT_GOAL := help
.PHONY: help install install-train install-dev run test test-fast test-unit test-api \
        test-integration test-e2e lint format typecheck train \
        docs docs-serve bench bench-soak bench-overload container-check image image-gpu \
        validate-k8s lock clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/bin/python:
	@$(STAGE) "creating $(VENV) with $(PYTHON)" $(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements/runtime.lock requirements/client.lock pyproject.toml \
		clients/python/pyproject.toml | $(VENV)/bin/python
	@$(STAGE) "installing the pinned runtime dependencies (requirements/runtime.lock; about 600 MB the first time)" \
		$(PIP_INSTALL) -r requirements/runtime.lock -r requirements/client.lock
	@$(STAGE) "installing the service and the Python client (editable)" \
		$(PIP) install --quiet --no-deps -e . -e ./clients/python
	@touch $@

$(VENV)/.train: requirements/train.lock $(VENV)/.runtime
	@$(STAGE) "installing TensorFlow for the Keras trainers (requirements/train.lock)" \
		$(PIP_INSTALL) -r requirements/train.lock
	@touch $@

$(VENV)/.dev: requirements/dev.lock pyproject.toml clients/python/pyproject.toml | $(VENV)/bin/python
	@$(STAGE) "installing the pinned dev dependencies (requirements/dev.lock: tests, training, docs, linters)" \
		$(PIP_INSTALL) -r requirements/dev.lock
	@$(STAGE) "installing the service and the Python client (editable)" \
		$(PIP) install --quiet --no-deps -e . -e ./clients/python
	@touch $@ $(VENV)/.runtime $(VENV)/.train

install: $(VENV)/.runtime  ## install the service and the Python client (pinned runtime dependencies)

install-train: $(VENV)/.train  ## add TensorFlow for the Keras trainers (scikit-learn ones need none)

install-dev: $(VENV)/.dev  ## install everything for tests, training, docs and benchmarks

run: install  ## serve the committed models on http://$(HOST):$(PORT) (docs at /docs)
	@echo "==> starting the server on http://$(HOST):$(PORT): it says 'ready: ...' once every model is loaded"
	SYNERGY_HOST=$(HOST) SYNERGY_PORT=$(PORT) $(PY) -m app

# One target per test tier: the folder is the tier (docs/testing.md gives what each covers and
# how long it takes).
test: install-dev  ## the whole test suite: unit, api, integration, e2e (with the browser)
	scripts/ensure-test-tools.sh chromium postgresql
	$(PY) -m pytest

test-fast: install-dev  ## unit and api tiers only
	$(PY) -m pytest tests/unit tests/api

test-unit: install-dev  ## unit tier: pure code, no model loaded, no process started
	$(PY) -m pytest tests/unit

test-api: install-dev  ## api tier: the app in-process on tiny models trained for the run
	$(PY) -m pytest tests/api

test-integration: install-dev  ## integration tier: trains models, starts processes, runs make
	$(PY) -m pytest tests/integration

test-e2e: install-dev  ## e2e tier: real servers, browser, database, official clients
	scripts/ensure-test-tools.sh chromium postgresql
	$(PY) -m pytest tests/e2e

lint: install-dev  ## ruff + mypy + import contracts + the docs site's strict build (no broken links)
	$(VENV)/bin/ruff check app training bench tests scripts deploy clients
	$(VENV)/bin/ruff format --check app training bench tests scripts deploy clients
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	@site=$$(mktemp -d) && NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict \
		--site-dir $$site; status=$$?; rm -rf $$site; exit $$status

format: install-dev  ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix app training bench tests scripts deploy clients
	$(VENV)/bin/ruff format app training bench tests scripts deploy clients

typecheck: install-dev  ## mypy --strict only
	$(VENV)/bin/mypy

train: install-train  ## retrain all four models into models/ (next version; DATA_DIR=local data)
	$(PY) -m training all $(if $(wildcard $(DATA_DIR)),--data-dir $(DATA_DIR),) $(TRAIN_ARGS)

docs: install-dev  ## build the documentation site from docs/ into site/ (offline, strict)
	@$(STAGE) "building the docs site into site/ (open site/index.html)" \
		env NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --clean

docs-serve: install-dev  ## preview the docs site on http://127.0.0.1:8001 as you edit
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

bench: install-dev  ## load benchmark: ours vs naive vs no-model ceiling (~12 min)
	scripts/ensure-test-tools.sh wrk
	$(PY) bench/run.py $(BENCH_ARGS)

bench-soak: install-dev  ## 10-minute soak at half capacity across all models
	scripts/ensure-test-tools.sh wrk
	$(PY) bench/soak.py $(BENCH_ARGS)

bench-overload: install-dev  ## 30 s at 4x capacity against mnist-cnn: 503s fast, no growth
	scripts/ensure-test-tools.sh hey
	$(PY) bench/overload.py $(BENCH_ARGS)

CONTAINER_CHECK ?= ../shared/tools/container-check.sh

container-check: install-dev  ## build the image with podman, run it, predict with each model
	$(CONTAINER_CHECK) . /health/ready
	$(PY) scripts/container_smoke.py .

image:  ## docker build the CPU image (synergy-serve:0.1.0)
	docker build -t synergy-serve:0.1.0 .

image-gpu:  ## docker build the GPU image (TensorFlow + CUDA; run with --gpus all)
	docker build -t synergy-serve:0.1.0-gpu --build-arg VARIANT=gpu \
		--build-arg KERAS_BACKEND=tensorflow .

validate-k8s: install-dev  ## validate the Kubernetes manifests against their schemas
	$(PY) deploy/validate.py

lock:  ## re-pin requirements/*.lock from pyproject.toml
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		--extra dev -o requirements/dev.lock pyproject.toml
	$(VENV)/bin/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		-c requirements/dev.lock -o requirements/runtime.lock pyproject.toml

clean:  ## remove caches and test artifacts (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache test-artifacts bench/out site
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
