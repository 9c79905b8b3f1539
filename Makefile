# The two set-up commands from README.rst: `make run` and `make test`.
# Both create .venv on first use; everything else is a helper behind them.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# setuptools<60 (pinned by pythran on Python 3.11) cannot do an editable
# install with its bundled distutils on 3.11; the stdlib copy can.
export SETUPTOOLS_USE_DISTUTILS := stdlib

STAMP := $(VENV)/.installed
SOURCES := setup.cfg setup.py pyproject.toml cosmic/physics/kernels.py

.PHONY: run test lint format bench clean install

install: $(STAMP)

$(STAMP): $(SOURCES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]'
	@# Rebuild Twisted's plugin cache now, so `twistd --help` never reads a stale one.
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	@touch $(STAMP)

run: $(STAMP)
	@mkdir -p var
	$(BIN)/twistd --nodaemon --pidfile= cosmic $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	@ls bench/*.py >/dev/null 2>&1 && for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info cosmic/physics/*.so cosmic/physics/*.cpp
