# Two commands matter: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test lint bench bench-quick browser loadgen clean

install: $(STAMP)

# Python packages (with the postgis and dev extras) and the pinned map assets from the
# npm registry, copied into app/static/vendor (served by the app; never committed).
$(STAMP): pyproject.toml package.json package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[postgis,dev]'
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	$(BIN)/python -m app.assets
	touch $(STAMP)

run: install
	OUTREACH_ANONYMOUS_READ=true $(BIN)/outreach serve --host $(HOST) --port $(PORT) --dev-key

# Headless Chromium for the map tests (Debian package; needs root). Without it the
# browser tests are skipped and say why.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
		|| echo "could not install chromium: browser tests will be skipped"; \
	fi

test: install browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check app geo models tests bench
	$(BIN)/ruff format --check app geo models tests bench
	$(BIN)/mypy

# wrk (Debian package) drives the load benchmark without taking the server's cores.
loadgen:
	@if ! command -v wrk >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null) \
		|| echo "could not install wrk: the load benchmark will use its Python client"; \
	fi

bench: install loadgen
	$(BIN)/python bench/run_all.py

bench-quick: install loadgen
	$(BIN)/python bench/run_all.py --quick

clean:
	rm -rf $(VENV) node_modules app/static/vendor var .pytest_cache
