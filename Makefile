# make run   - set up .venv, run the built-in scenarios, print the estimates
# make test  - set up .venv, run the whole test suite and ruff
# make bench - the speed report (depletion bench)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUN_EPISODES ?= 200000

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/depletion run configs/default.toml --episodes $(RUN_EPISODES) --seed 1
	@echo
	@echo "For contrast, the stress case (configs/tetsuo-1000-threads.toml):"
	$(VENV)/bin/depletion run configs/tetsuo-1000-threads.toml --episodes 1000 --seed 1

test: setup
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check .

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(VENV)/bin/depletion bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
