# The course's commands. Everything happens in .venv, made on first use.
#   make lab     set up if needed, then open the course in JupyterLab
#   make test    set up if needed, then run the whole test suite (what CI runs)
#   make setup   create/refresh .venv; does nothing when nothing changed
#   make check   two-minute preflight before a workshop
#   make handouts  execute every notebook (quick mode) into offline HTML in build/handouts/
#   make wheelhouse  download every package into build/wheelhouse/ for offline installs;
#                then, on a machine without internet: make setup WHEELHOUSE=build/wheelhouse
#   make lint    ruff over the code
#   make lock    re-resolve constraints.txt from pyproject.toml (maintainers)

PYTHON ?= python3
# Everything: the notebooks (lab), notebook 09 (dask), notebook 06 (server), the test tools.
EXTRAS := lab,dask,server,test
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.course-installed
KERNEL := scaling-cpu-python
KERNEL_DISPLAY := Python (scaling CPU-bound course)

# nbval: current environment's kernel, outputs not compared, a cell that hangs fails
# after NBVAL_TIMEOUT seconds instead of stalling CI.
NBVAL_TIMEOUT ?= 90
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=$(NBVAL_TIMEOUT)
# Notebooks whose metadata says they start processes run again under spawn,
# the start method of macOS, Windows and (forkserver, similar) Python 3.14.
SPAWN_NOTEBOOKS = $(shell grep -l '"starts_processes": true' notebooks/*.ipynb)
# An offline install reads packages from a wheelhouse instead of the network.
WHEELHOUSE ?=
PIP_SOURCE := $(if $(WHEELHOUSE),--no-index --find-links $(WHEELHOUSE),)
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)

.PHONY: setup lab test check handouts wheelhouse lint lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; run: make PYTHON=python3.12 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(WHEELHOUSE),,$(BIN)/python -m pip install --quiet --upgrade pip)
	$(BIN)/python -m pip install --quiet $(PIP_SOURCE) -c constraints.txt -e ".[$(EXTRAS)]"
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "$(KERNEL_DISPLAY)"
	@touch $(STAMP)

# Jupyter refuses to run as root unless told to (containers, cloud boxes).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: setup
	$(BIN)/jupyter lab $(ALLOW_ROOT) notebooks/00_your_machine.ipynb

# Notebooks run once as a Linux learner runs them (full mode, default start method),
# then again under spawn in quick mode (COURSE_QUICK=1), which is what CI can afford twice.
test: setup
	@$(if $(CHROMIUM),echo "Chromium: $(CHROMIUM) (the browser tests will run)",echo "NOTE: Chromium not found: the browser tests will be SKIPPED (apt-get install chromium)")
	$(BIN)/python -m pytest tests notebooks $(NBVAL)
	COURSE_START_METHOD=spawn COURSE_QUICK=1 $(BIN)/python -m pytest $(NBVAL) $(SPAWN_NOTEBOOKS)
	$(BIN)/ruff check helpers tests

check: setup
	$(BIN)/python -m helpers.tools.preflight

handouts: setup
	$(BIN)/python -m helpers.tools.handouts --out build/handouts

wheelhouse: setup
	$(BIN)/python -m pip download --quiet -d build/wheelhouse -c constraints.txt pip setuptools wheel ".[$(EXTRAS)]"
	@echo "build/wheelhouse is ready: copy the repository with it, then run: make setup WHEELHOUSE=build/wheelhouse"

lint: setup
	$(BIN)/ruff check helpers tests

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"
	{ echo "# Exact versions for reproducible workshops: make setup installs with these."; \
	  echo "# Made by 'make lock' with $$(.lock-venv/bin/python --version) on $$(uname -sm)."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e '; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
