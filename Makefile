# teleconsult: the entry point for people and CI alike.
#   make run    set up .venv, migrate, seed demo data, serve http://127.0.0.1:8000
#   make test   set up .venv, lint, check migrations, run the whole suite
#   make test-unit  the suite without the real-service and browser tests (quick feedback)
#   make bench  run the benchmarks under bench/ and print their figures
#   make lint   ruff lint and format check only

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Test processes side by side (pytest-xdist; each with its own test database, files and Redis key
# prefix, tests/settings.py): one per core; TEST_PROCESSES=0 runs the suite in this one process.
TEST_PROCESSES ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test test-unit bench lint format install install-dev serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: export DEBUG ?= 1
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(MAKE) --no-print-directory serve

# daphne (through teleconsult.serve, which does the server's start-up first), the DICOM receiver
# (manage.py dicom_scp on TELECONSULT_DIMSE_PORT, default 11112: if the port is taken it says so and
# the rest runs without it), and with REDIS_URL also a Celery worker and beat; Ctrl-C stops all of them.
serve:
	@bash -c 'trap "trap - TERM; kill 0" INT TERM EXIT; \
	  if [ -n "$$REDIS_URL" ]; then \
	    $(BIN)/celery -A teleconsult worker --beat --loglevel INFO --concurrency 2 & \
	  fi; \
	  $(BIN)/python manage.py dicom_scp --bind $(HOST) & \
	  echo "teleconsult is at http://$(HOST):$(PORT)/ (Ctrl-C stops it)"; \
	  $(BIN)/python -m teleconsult.serve -b $(HOST) -p $(PORT)'

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install-dev lint
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

test-unit: install-dev
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile -m "not integration and not e2e" $(PYTEST_ARGS)

bench: install-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var/test
