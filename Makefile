# Thin on purpose: every target is one `python -m builder …` call (or pytest), run by the project's
# own virtualenv. SERVICE=name limits a target to one service; FLAVOR=alpine|distroless|all picks
# prod flavors.
#
# Set-up is part of the targets, so `make demo` and `make test` work on a fresh clone:
# - .venv: made from the system python3 (never its site-packages) with the dependencies pinned in
#   pyproject.toml; its stamp makes a re-run install nothing until pyproject.toml changes.
# - engine: `python3 -m builder.engine.setup` (stdlib only) makes a Docker engine answer: as root on
#   Debian/Ubuntu it installs what is missing and starts dockerd; elsewhere it says what to run.
SYSTEM_PYTHON ?= python3
VENV    := .venv
VENV_STAMP := $(VENV)/.installed
PYTHON  := $(VENV)/bin/python
SERVICE ?=
FLAVOR  ?=
IW      := $(PYTHON) -m builder
WHICH   := $(if $(SERVICE),$(SERVICE),--all)

# The venv's own tools (trivy, hadolint, ruff, imagewright) come first for everything make runs.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help init venv engine render render-check bake bases build-dev build-prod build-debug verify scan \
        compare bench demo dev test test-unit test-integration lint clean

help:
	@echo "make init APP=path/to/your/service [NAME=name] [FORCE=1] (write images/<name>/ from an existing app)"
	@echo "make build-dev | build-prod | build-debug [SERVICE=x] [FLAVOR=x|all] | verify | scan | compare | bench"
	@echo "make demo (build every variant available here, verify, scan, compare) | test | lint"
	@echo "make dev [SERVICE=x] (dev images with reload and debug tools; live traces; Ctrl-C ends)"
	@echo "make test-unit (no engine, fast) | test-integration (real images on the local engine)"
	@echo "make render | bake | bases | clean | venv (.venv only) | engine (a Docker engine that answers)"

$(VENV_STAMP): pyproject.toml
	@echo "venv: installing imagewright and its pinned dependencies into $(VENV)"
	$(SYSTEM_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install -qq --disable-pip-version-check --editable '.[test]'
	@touch $@

venv: $(VENV_STAMP)

engine:
	@$(SYSTEM_PYTHON) -m builder.engine.setup

# Like `docker init`: inspect an existing Python service and write images/<NAME>/image.yaml.
init: $(VENV_STAMP)
	$(if $(APP),,$(error make init needs APP=path/to/your/service))
	$(IW) init $(APP) $(if $(NAME),--name $(NAME)) $(if $(FORCE),--force)

render: $(VENV_STAMP)
	$(IW) render $(SERVICE)

render-check: $(VENV_STAMP)
	$(IW) render --check

# build/docker-bake.json: every target for `docker buildx bake` (render writes it too).
bake: $(VENV_STAMP)
	$(IW) bake

bases: $(VENV_STAMP) engine
	$(IW) bases

build-dev: $(VENV_STAMP) engine
	$(IW) build $(WHICH) --variant dev

build-prod: $(VENV_STAMP) engine
	$(IW) build $(WHICH) --variant prod $(if $(FLAVOR),--flavor $(FLAVOR))

# prod plus its debug twin (<service>:prod-distroless-debug: the same image with busybox).
build-debug: $(VENV_STAMP) engine
	$(IW) build $(WHICH) --variant prod --debug-twin $(if $(FLAVOR),--flavor $(FLAVOR))

verify: $(VENV_STAMP) engine
	$(IW) verify $(WHICH)

scan: $(VENV_STAMP) engine
	$(IW) scan $(WHICH)

compare: $(VENV_STAMP) engine
	$(IW) compare $(WHICH)

bench: $(VENV_STAMP) engine
	$(IW) bench

demo: $(VENV_STAMP) engine
	$(IW) demo

# The dev loop: the dev images (built first: a cache hit when nothing changed) through
# build/compose.yaml, trace trees live; Ctrl-C takes it all down and prints the service map.
dev: build-dev
	$(IW) dev $(WHICH)

# Both suites in one run; test-unit needs no Docker engine and runs in well under a minute.
test: $(VENV_STAMP) engine
	$(PYTHON) -m pytest

test-unit: $(VENV_STAMP)
	$(PYTHON) -m pytest tests/unit

test-integration: $(VENV_STAMP) engine
	$(PYTHON) -m pytest tests/integration

lint: $(VENV_STAMP)
	$(PYTHON) -m ruff check builder tests
	$(PYTHON) -m mypy
	$(IW) render --check

clean: $(VENV_STAMP)
	$(IW) clean
