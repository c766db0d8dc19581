# The course's commands. Everything happens in .venv, made on first use.
#   make lab     set up if needed (what a learner needs), then open the course in JupyterLab
#   make test    set up if needed (with the test tools), then run the whole test suite (what CI
#                runs), a second Python's pass included when one is found
#   make test-other-python  every notebook (quick mode) and the pool's tests in the newest
#                Python 3.12+ that pyenv has (or OTHER_PYTHON=/path/to/python3), in .venv-other
#   make test-fast  ruff, then the unit and fault tests only (no slow, notebook or browser
#                tests): a few minutes, for the edit-test loop
#   make setup   create/refresh .venv; does nothing when nothing changed
#   make check   two-minute preflight before a workshop
#   make handouts  execute every notebook (quick mode) into offline HTML in build/handouts/
#   make wheelhouse  download every package into build/wheelhouse/ for offline installs;
#                then, on a machine without internet: make setup WHEELHOUSE=build/wheelhouse
#   make lint    ruff over the code
#   make lock    re-resolve constraints.txt from pyproject.toml (maintainers)

PYTHON ?= python3
# What a learner needs: the notebooks (lab), notebook 09 (dask), notebook 06 (server) ...
LEARNER_EXTRAS := lab,dask,server
# ... and, for make test, the test tools.
EXTRAS := $(LEARNER_EXTRAS),test
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.course-installed
LEARNER_STAMP := $(VENV)/.course-installed-for-learners
KERNEL := scaling-cpu-python
KERNEL_DISPLAY := Python (scaling CPU-bound course)

# nbval: current environment's kernel, outputs not compared, a cell that hangs fails
# after NBVAL_TIMEOUT seconds instead of stalling CI.
NBVAL_TIMEOUT ?= 90
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=$(NBVAL_TIMEOUT)
# Notebooks whose metadata says they start processes run again in quick mode under
# spawn (macOS, Windows) and forkserver (Linux from Python 3.14). The script reads each
# notebook's metadata as JSON and fails, saying why, when it finds none: pytest given no
# notebook would silently run the unit tests again instead.
PROCESS_NOTEBOOKS := $(BIN)/python .ci/process_notebooks.py
# $(call start_method_pass,METHOD): one quick pass over those notebooks under METHOD.
start_method_pass = notebooks="$$($(PROCESS_NOTEBOOKS))" && \
	COURSE_START_METHOD=$(1) COURSE_QUICK=1 $(BIN)/python -m pytest $(NBVAL) $$notebooks
# The fast loop: what is left when slow (over ~5 s), notebook and browser tests are out.
FAST := -m "not slow and not notebooks and not browser"
# An offline install reads packages from a wheelhouse instead of the network.
WHEELHOUSE ?=
PIP_SOURCE := $(if $(WHEELHOUSE),--no-index --find-links $(WHEELHOUSE),)
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)

.PHONY: setup lab test test-fast test-other-python check handouts wheelhouse lint lock clean

# $(call install,PYTHON,VENV,EXTRAS): the virtual environment, the pinned course, its kernel.
define install
@$(1) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; run: make PYTHON=python3.12 ...")'
@test -x $(2)/bin/python || $(1) -m venv $(2)
$(if $(WHEELHOUSE),,$(2)/bin/python -m pip install --quiet --upgrade pip)
$(2)/bin/python -m pip install --quiet $(PIP_SOURCE) -c constraints.txt -e ".[$(3)]"
$(2)/bin/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "$(KERNEL_DISPLAY)"
endef

setup: $(STAMP)

# Everything (make test); a learner's set-up is part of it.
$(STAMP): pyproject.toml constraints.txt
	$(call install,$(PYTHON),$(VENV),$(EXTRAS))
	@touch $(STAMP) $(LEARNER_STAMP)

# What a learner needs, no test tools (make lab, make check, make handouts).
$(LEARNER_STAMP): pyproject.toml constraints.txt
	$(call install,$(PYTHON),$(VENV),$(LEARNER_EXTRAS))
	@touch $(LEARNER_STAMP)

# Jupyter refuses to run as root unless told to (containers, cloud boxes).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: $(LEARNER_STAMP)
	$(BIN)/jupyter lab $(ALLOW_ROOT) notebooks/00_your_machine.ipynb

# ruff first (seconds, not after the whole run). Notebooks run once as a Linux learner
# runs them (full mode, default start method), then again in quick mode (COURSE_QUICK=1)
# under spawn and under forkserver, which is what CI can afford three times.
test: setup
	$(BIN)/ruff check helpers tests
	@$(if $(CHROMIUM),echo "Chromium: $(CHROMIUM) (the browser tests will run)",echo "NOTE: Chromium not found: the browser tests will be SKIPPED (apt-get install chromium)")
	$(BIN)/python -m pytest tests notebooks $(NBVAL)
	$(call start_method_pass,spawn)
	$(call start_method_pass,forkserver)
	$(MAKE) --no-print-directory test-other-python

# A second interpreter: the newest Python 3.12+ that pyenv holds (by version order), or
# OTHER_PYTHON=/path/to/python3. Offline (WHEELHOUSE=...) there are no wheels for it.
PYENV_ROOT ?= $(HOME)/.pyenv
OTHER_PYTHON ?= $(shell ls -d $(PYENV_ROOT)/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V | tail -n 1)
OTHER_VENV := .venv-other
OTHER_STAMP := $(OTHER_VENV)/.course-installed

test-other-python:
ifeq ($(OTHER_PYTHON)$(WHEELHOUSE),)
	@echo "NOTE: no second Python 3.12+ found (pyenv, or OTHER_PYTHON=/path/to/python3): its pass is SKIPPED"
else ifneq ($(WHEELHOUSE),)
	@echo "NOTE: offline install (WHEELHOUSE): the second Python's pass is SKIPPED"
else
	@echo "Second Python: $(OTHER_PYTHON) ($$($(OTHER_PYTHON) --version))"
	@$(MAKE) --no-print-directory $(OTHER_STAMP)
	COURSE_QUICK=1 $(OTHER_VENV)/bin/python -m pytest $(NBVAL) notebooks tests/test_pool.py tests/test_build_a_pool.py \
		tests/test_pool_cpython.py
endif

$(OTHER_STAMP): pyproject.toml constraints.txt
	$(call install,$(OTHER_PYTHON),$(OTHER_VENV),$(EXTRAS))
	@touch $(OTHER_STAMP)

# Unit and fault tests only: under 3 minutes on 2 cores. make test runs everything.
test-fast: setup
	$(BIN)/ruff check helpers tests
	$(BIN)/python -m pytest tests $(FAST)

check: $(LEARNER_STAMP)
	$(BIN)/python -m helpers.tools.preflight

handouts: $(LEARNER_STAMP)
	$(BIN)/python -m helpers.tools.handouts --out build/handouts

wheelhouse: setup
	$(BIN)/python -m pip download --quiet -d build/wheelhouse -c constraints.txt pip setuptools wheel ".[$(EXTRAS)]"
	@echo "build/wheelhouse is ready: copy the repository with it, then run: make setup WHEELHOUSE=build/wheelhouse"

lint: setup
	$(BIN)/ruff check helpers tests

# After a re-lock, put back the environment markers constraints.txt needs (soupsieve: see
# its comment); tests/test_setup_routes.py fails until then.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"
	{ echo "# Exact versions for reproducible workshops: make setup installs with these."; \
	  echo "# Made by 'make lock' with $$(.lock-venv/bin/python --version) on $$(uname -sm)."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e '; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(OTHER_VENV) .pytest_cache build *.egg-info
