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

# Every bench, each writing var/bench/NAME.json; docs/performance.rst has the
# figures and the command for each.  load and fanout drive Node players.
BENCHES := physics game database websocket faults hostile fanout load

bench: $(STAMP) bench/load/node_modules bench/peers/node_modules
	@mkdir -p var/bench
	@for b in $(BENCHES); do \
		echo "== bench/$$b.py"; \
		$(BIN)/python bench/$$b.py --json var/bench/$$b.json || exit 1; \
	done
	$(BIN)/python bench/plots.py --physics var/bench/physics.json --load var/bench/load.json --out var/bench

bench/%/node_modules: bench/%/package-lock.json
	cd bench/$* && npm ci --no-audit --no-fund
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info cosmic/physics/*.so cosmic/physics/*.cpp
