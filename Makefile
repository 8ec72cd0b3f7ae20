# make run   - set up .venv, run the built-in scenarios, print the estimates
# make test  - set up .venv, run the whole test suite and ruff
# make bench - the speed report (depletion bench)
# make figures  - run the paper sweeps (configs/paper/*.toml -> results/paper/*.csv), draw figures/
# make notebook - open JupyterLab on notebooks/ with the project (and the notebook extra) in .venv
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

# ---------------------------------------------------------------- figures and notebooks
DEP := $(VENV)/bin/depletion
PAPER := $(wildcard configs/paper/*.toml)
NB_STAMP := $(VENV)/.notebook-stamp
PLOT := $(DEP) plot --format pdf,png

.PHONY: figures notebook

# Each paper sweep is finished with --resume when its results file exists (a no-op when it is complete);
# a results file of another version of the config is removed and the sweep rerun.
figures: setup
	@mkdir -p results/paper figures
	@for c in $(PAPER); do \
	  r=results/paper/$$(basename $$c .toml).csv; \
	  if [ -f $$r ] && $(DEP) sweep $$c --out $$r --resume --quiet >/dev/null; then echo "$$r: complete"; \
	  else rm -f $$r; echo "$(DEP) sweep $$c --out $$r"; $(DEP) sweep $$c --out $$r --quiet >/dev/null || exit 1; fi; \
	done
	$(PLOT) results/paper/threads.csv --outcome exhausted --width two --out figures/threads-exhausted
	$(PLOT) results/paper/threads.csv --outcome victim_failed --width two --out figures/threads-victim-failed
	$(PLOT) results/paper/threads.csv --kind diff --a alloc_oom --b tif_memdie --outcome victim_failed \
	    --out figures/threads-diff-victim-failed
	$(PLOT) results/paper/group-kill.csv --outcome exhausted --outcome victim_failed --width two \
	    --out figures/group-kill
	$(PLOT) results/paper/group-kill.csv --kind cdf --where victims=64 --width two --out figures/group-kill-cdf
	$(PLOT) results/paper/reaper.csv --kind heatmap --outcome victim_failed --width two \
	    --out figures/reaper-victim-failed
	$(PLOT) results/paper/reserve-fraction.csv --outcome exhausted --outcome victim_failed --linear-y \
	    --out figures/reserve-fraction
	$(PLOT) results/paper/reserve-fraction.csv --kind timeline --episode 3 --policy tif_memdie \
	    --policy fraction:0.5 --width two --out figures/reserve-fraction-timeline

$(NB_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,notebook]'
	@touch $(NB_STAMP)

notebook: $(NB_STAMP)
	$(VENV)/bin/jupyter lab notebooks/
