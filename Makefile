# Thin on purpose: every target is one `python -m builder …` call (or pytest).
# SERVICE=name limits a target to one service; FLAVOR=alpine|distroless|all picks prod flavors.
PYTHON  ?= python3
SERVICE ?=
FLAVOR  ?=
IW      := $(PYTHON) -m builder
WHICH   := $(if $(SERVICE),$(SERVICE),--all)

.PHONY: help render render-check bases build-dev build-prod build-debug verify scan compare bench demo test test-unit test-integration lint clean

help:
	@echo "make build-dev | build-prod | build-debug [SERVICE=x] [FLAVOR=x|all] | verify | scan | compare | bench"
	@echo "make demo (build every variant available here, verify, scan, compare) | test | render | bases | clean"
	@echo "make test-unit (no engine, fast) | test-integration (real images on the local engine)"

render:
	$(IW) render $(SERVICE)

render-check:
	$(IW) render --check

bases:
	$(IW) bases

build-dev:
	$(IW) build $(WHICH) --variant dev

build-prod:
	$(IW) build $(WHICH) --variant prod $(if $(FLAVOR),--flavor $(FLAVOR))

# prod plus its debug twin (<service>:prod-distroless-debug: the same image with busybox).
build-debug:
	$(IW) build $(WHICH) --variant prod --debug-twin $(if $(FLAVOR),--flavor $(FLAVOR))

verify:
	$(IW) verify $(WHICH)

scan:
	$(IW) scan $(WHICH)

compare:
	$(IW) compare $(WHICH)

bench:
	$(IW) bench

demo:
	$(IW) demo

# Both suites; test-unit needs no Docker engine and runs in well under a minute.
test: test-unit test-integration

test-unit:
	$(PYTHON) -m pytest tests/unit

test-integration:
	$(PYTHON) -m pytest tests/integration

lint:
	$(PYTHON) -m ruff check builder tests
	$(PYTHON) -m mypy
	$(IW) render --check

clean:
	$(IW) clean
