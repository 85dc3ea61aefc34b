# One task runner for people and CI. `make serve` and `make test` set up .venv first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml client/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: serve test check lint typecheck gen docker-lint clean

$(STAMP):
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./client -e '.[dev]'
	touch $@

serve: $(STAMP)  ## run the server on the embedded store (SQLite under ./mdcache-data)
	$(VENV)/bin/mdcache serve

test: check  ## everything CI runs: generated code, lint, types, Docker files, tests
	$(PY) -m pytest

check: $(STAMP) lint typecheck docker-lint
	scripts/gen-proto --check
	scripts/gen-sync-client --check

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

docker-lint: $(STAMP)
	scripts/lint-docker

gen: $(STAMP)  ## regenerate the contract's code and the blocking client
	scripts/gen-proto
	scripts/gen-sync-client

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
