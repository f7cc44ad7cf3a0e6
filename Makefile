# The two Quick start commands are `make demo` and `make test` (see README.md).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
export PATH := $(abspath $(BIN)):$(PATH)
# Trust the system's certificate store (a package mirror or proxy may use a local CA).
export UV_SYSTEM_CERTS := 1

# uv sync and uv lock work on this virtual environment.
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: install system-deps demo test unit lint typecheck ansible-lint sanity clean \
	lock lock-check docs docs-check

# The uv that installs everything is the lock's own version.
UV_VERSION := $(shell awk '/^name = "uv"$$/{getline; gsub(/version = |"/,""); print; exit}' uv.lock)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Exactly the versions of uv.lock (--frozen: the lock is not re-resolved), lepton-ops itself
# editable with its extras dev and node. --inexact keeps pip, which the wheelhouse uses.
# --compile-bytecode: the CLI starts in a fraction of the time where Python may not write
# its bytecode caches itself (PYTHONDONTWRITEBYTECODE, a read-only install).
$(VENV)/.installed: $(BIN)/python pyproject.toml uv.lock
	$(UV) sync --quiet --frozen --inexact --compile-bytecode --extra dev --extra node
	touch $@

install: $(VENV)/.installed

# After changing dependencies in pyproject.toml, or to upgrade one package:
#   .venv/bin/uv lock --upgrade-package numpy && make lock
# uv.lock, and the nodes' pinned versions taken from it (lepton_ops/provision/node-pins.txt).
lock: $(BIN)/python
	$(UV) lock
	$(BIN)/python tools/node_pins.py

# Fails when pyproject.toml and uv.lock disagree, or node-pins.txt is not the lock's.
lock-check: $(BIN)/python
	$(UV) lock --check
	$(BIN)/python tools/node_pins.py --check

# openssh-server (ssh-mode lab), iptables (cutting a node off), chromium (the report's
# headless-browser test) and a Java 17 runtime (ansible-rulebook, for the Event-Driven
# Ansible test); only root can install them.
system-deps:
	@if [ "$$(id -u)" = 0 ] && { [ ! -x /usr/sbin/sshd ] || [ ! -x /usr/sbin/iptables ]; }; then \
	  echo "installing openssh-server and iptables (Debian packages)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-server iptables >/dev/null \
	    || { echo "could not install openssh-server and iptables with apt-get" >&2; exit 1; }; \
	  if command -v service >/dev/null; then service ssh stop >/dev/null 2>&1 || true; fi; \
	fi
	@if [ "$$(id -u)" = 0 ] && ! command -v chromium >/dev/null; then \
	  echo "installing chromium (Debian package)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	    || { echo "could not install chromium with apt-get" >&2; exit 1; }; \
	fi
	@if [ "$$(id -u)" = 0 ] && ! command -v java >/dev/null; then \
	  echo "installing a Java 17 runtime for ansible-rulebook (Debian package openjdk-17-jre-headless)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null \
	    || { echo "could not install openjdk-17-jre-headless with apt-get" >&2; exit 1; }; \
	fi

# docs/cli.md is the CLI reference, generated from the typer app by typer's own generator.
CLI_DOCS = $(BIN)/typer lepton_ops.cli.app utils docs --name lepton-ops --output

docs: install
	$(CLI_DOCS) docs/cli.md

# Fails when docs/cli.md is not what the CLI's help says now (refresh it with `make docs`).
docs-check: install
	@fresh=$$(mktemp); $(CLI_DOCS) $$fresh >/dev/null; \
	if diff -u docs/cli.md $$fresh; then rm -f $$fresh; \
	else rm -f $$fresh; echo "docs/cli.md is stale: run 'make docs' and commit it" >&2; exit 1; fi

# Quick start 1: install, then run the main job on the embedded lab.
demo: install system-deps
	$(BIN)/lepton-ops demo

# Quick start 2: install, then every test and quality gate.
test: install system-deps lock-check docs-check lint typecheck ansible-lint sanity unit

# The lab tests share one lab (started by their session) and run alone; the unit tests run
# on every core. --durations: where CI's time goes, in every run's log.
unit:
	$(BIN)/python -m pytest --durations=15 tests/integration
	$(BIN)/python -m pytest --durations=15 -n auto --dist loadscope tests/unit
	$(BIN)/python -m pytest ansible_collections/lepton/ops/tests/unit

lint:
	$(BIN)/ruff check lepton_ops tests benchmarks tools ansible_collections
	$(BIN)/ruff format --check lepton_ops tests benchmarks tools
	$(BIN)/lint-imports

typecheck:
	$(BIN)/mypy

ansible-lint:
	$(BIN)/ansible-lint

sanity:
	$(BIN)/python tools/ansible_test_sanity.py

clean:
	rm -rf $(VENV) build dist *.egg-info
