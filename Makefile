# The two commands a user types: `make dev` runs the stack, `make test` runs the tests.
# Each creates .venv and installs the project into it on first use (and again when
# pyproject.toml or requirements.lock change).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NODE_LOCK := $(wildcard specs/vectors/package-lock.json)

.PHONY: dev test bench install node lock

dev: $(BIN)/.installed
	$(BIN)/ensign dev $(ARGS)

# One pytest process per core (pytest-xdist), each taking whole files: a file's module fixtures
# stay in one process. PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= auto

test: $(BIN)/.installed node
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

install: $(BIN)/.installed

# The benchmark suite (README, "Benchmarks"), against REDIS_URL (default redis://127.0.0.1:6379/0,
# where it writes only under its own prefix). `make bench ARGS=--quick` is a short smoke run.
bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,bench]'
	$(BIN)/python -m bench $(ARGS)

$(BIN)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Ensign needs Python 3.11 or newer (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,dev]'
	touch $@

# The official dm3 JavaScript libraries, for the interoperability tests. Without npm those
# tests skip and say why.
node: $(if $(NODE_LOCK),specs/vectors/node_modules/.installed)

specs/vectors/node_modules/.installed: $(NODE_LOCK)
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix specs/vectors --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm not found: the dm3 interoperability tests will be skipped"; \
	fi

# Re-resolve the pinned versions after changing dependencies in pyproject.toml.
lock:
	rm -rf .lockvenv
	$(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet --upgrade pip
	.lockvenv/bin/python -m pip install --quiet -e '.[test,dev,bench]'
	.lockvenv/bin/python -m pip freeze --exclude-editable | grep -v '^ensign' > requirements.lock
	rm -rf .lockvenv
