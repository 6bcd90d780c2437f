# Developer entry points. `make run` and `make test` set everything up on first use.

VENV := .venv
PY := $(VENV)/bin/python
LINT_PATHS := m2x services adapters tests bench scripts
# type-checked strictly (settings in pyproject.toml [tool.mypy])
TYPED_PATHS := m2x services adapters
GENERATED := m2x/common m2x/keys m2x/storage m2x/triggers m2x/messaging m2x/.protos-hash

.PHONY: setup run test lint bench clean

# venv + dependencies, generated protobuf code, Mosquitto (quick when already done)
setup:
	@bash scripts/setup.sh

# start the whole product; extra flags via ARGS, e.g. make run ARGS="--http-port 9090"
run: setup
	$(VENV)/bin/m2x up $(ARGS)

# the whole suite: unit, component and integration tests
test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy $(TYPED_PATHS)

bench: setup
	@set -e; for script in $(sort $(filter-out %/__init__.py %support.py,$(wildcard bench/*.py))); do \
		echo "== $$script"; $(PY) -m bench.$$(basename $$script .py); \
	done

clean:
	rm -rf $(GENERATED) $(VENV)
