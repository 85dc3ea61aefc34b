# One task runner for people and CI. `make serve` and `make test` set up .venv first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml client/pyproject.toml | cksum | cut -d' ' -f1)
# The suite mostly waits on servers (its own, TDengine's): 3 workers on 2 cores halve its
# time; the cluster's tests share one of them (tests/conftest.py). PYTEST_ARGS= runs it
# in one process.
PYTEST_ARGS ?= -n 3 --durations=15

.PHONY: serve test check lint typecheck imports gen docs docker-lint clean bench bench-quick bench-profile bench-deps \
        prometheus-deps partition-deps lock

# Third-party packages from the lock (requirements/dev.txt, hashed; scripts/lock), then the
# two local packages, editable.
$(STAMP): requirements/dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e ./client -e '.[dev]'
	touch $@

serve: $(STAMP)  ## run the server on the embedded store (SQLite under ./mdcache-data)
	$(VENV)/bin/mdcache serve

test: check partition-deps  ## everything CI runs: generated code, lint, types, Docker files, docs, tests
	scripts/with-tdengine $(PY) -m pytest $(PYTEST_ARGS)

check: $(STAMP) lint typecheck imports docker-lint prometheus-deps docs
	scripts/gen-proto --check
	scripts/gen-sync-client --check
	scripts/lock --check

# The documentation site (docs/, mkdocs.yml), built strictly: a broken link or anchor, or a
# page left out of nav, fails; and its configuration tables are what the settings make.
# (Not --quiet: it hides the warnings that --strict fails on.)
docs: $(STAMP)
	scripts/gen-config-docs --check
	$(VENV)/bin/mkdocs build --strict --site-dir $(VENV)/site

lock: $(STAMP)  ## after editing a pyproject.toml: uv.lock and requirements/*.txt (commit them)
	scripts/lock

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

imports: $(STAMP)  ## the import layers and no cycles (pyproject.toml's [tool.importlinter])
	$(VENV)/bin/lint-imports --no-cache --no-logo

docker-lint: $(STAMP)
	scripts/lint-docker

gen: $(STAMP)  ## regenerate the contract's code and the blocking client
	scripts/gen-proto
	scripts/gen-sync-client

# prometheus and promtool (Debian package `prometheus`) for the tests of deploy/prometheus,
# installed when this is root on a Debian-like machine; without them those tests are skipped,
# or fail when CI=true.
prometheus-deps:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends prometheus) >/dev/null \
	      || echo "prometheus-deps: could not install prometheus: its tests are skipped (fail under CI=true)"; \
	  else \
	    echo "prometheus-deps: no prometheus/promtool (apt-get install prometheus): their tests are skipped (fail under CI=true)"; \
	  fi; }

# socat (Debian package) for the partition tests (tests/partition): tdengine-start relays a
# node's namespace address to its taosd with it. Installed when this is root on a Debian-like
# machine (the tests need root for network namespaces anyway); without it they are skipped,
# or fail when CI=true.
partition-deps:
	@command -v socat >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends socat) >/dev/null \
	      || echo "partition-deps: could not install socat: the partition tests are skipped (fail under CI=true)"; \
	  else \
	    echo "partition-deps: no socat (apt-get install socat) or not root: the partition tests are skipped (fail under CI=true)"; \
	  fi; }

# The benchmark's own packages (the `bench` extra), and redis-server from Debian when
# this is root on a Debian-like machine; without it the Redis comparison is skipped.
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml client/pyproject.toml | cksum | cut -d' ' -f1)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ./client -e '.[dev,bench]'
	touch $@

bench-deps: $(BENCH_STAMP)
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null \
	      || echo "bench: could not install redis-server: the Redis comparison is skipped"; \
	  else \
	    echo "bench: no redis-server (apt-get install -y redis-server): the Redis comparison is skipped"; \
	  fi; }

bench: bench-deps  ## the benchmark (about 30 min on 2 cores): bench/results/<date>.{json,md} and -growth.png
	$(PY) -m bench $(BENCH_ARGS)

bench-quick: bench-deps  ## a one-minute smoke run of the benchmark (bench/results/<date>-quick.*)
	$(PY) -m bench --quick $(BENCH_ARGS)

bench-profile: bench-deps  ## py-spy profiles of the server under load (bench/results/profile/)
	$(PY) -m bench.profile $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache site
