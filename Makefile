# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ARGS ?=
PYTEST_ARGS ?= --durations=30  # the 30 slowest tests, printed at the end: CI keeps an eye on its 20-min budget

.PHONY: install demo test check services bench clean openapi console-assets

$(BIN)/urban-supervisor: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/urban-supervisor

## the supervisor with a simulated city, on embedded defaults (embedded broker, SQLite store)
demo: install
	$(BIN)/urban-supervisor demo $(DEMO_ARGS)

## the test suite, on the real Mosquitto and InfluxDB (installed and started when missing)
test: install services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## docs/openapi.json: the API's OpenAPI document (viewer and operator tokens configured); a test compares it
openapi: install
	$(BIN)/python -c "from supervisor.api.contract import main; main()" > docs/openapi.json.tmp && mv docs/openapi.json.tmp docs/openapi.json

services:
	./scripts/services.sh

## the operator console's front-end libraries (Leaflet, supercluster), from npm at their locked
## versions, copied with their licences into supervisor/console/static/vendor/ (committed: users
## and CI need no Node.js)
console-assets:
	./scripts/console-assets.sh

check: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pip install -q pip-audit && $(BIN)/pip-audit -r constraints.txt --progress-spinner off || echo "pip-audit: could not complete (offline registry?)"

bench: install services
	$(BIN)/urban-supervisor bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var spool .pytest_cache .mypy_cache .ruff_cache
