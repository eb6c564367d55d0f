# ssd-keras developer commands. `make test` and `make lint` work on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# Everything the test suite exercises: TensorFlow (CPU), JAX, pycocotools and the export runtimes
# (LiteRT, ONNX Runtime, OpenVINO + NNCF); dev brings pytest, ruff and the notebook runner.
EXTRAS ?= cpu,dev,jax,coco,export,openvino
comma := ,
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PYTEST_ARGS ?= -n 2
# The exact versions the suite last passed with (pip freeze of a clean install of EXTRAS). make
# install, test and demo install through it, so a new upstream release cannot turn main red
# overnight; `make upgrade-check` moves it forward deliberately. Empty LOCK: newest allowed.
LOCK ?= constraints.txt
LOCK_ARG := $(if $(LOCK),-c $(LOCK))
UPGRADE_VENV ?= .venv-upgrade
# The Keras parts (layers, models, loss) also run on JAX.
JAX_TESTS ?= tests/keras_layers tests/models tests/keras_loss_function

.PHONY: install test test-jax test-slow test-all lint format upgrade-check

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): setup.py $(LOCK) | $(PY)
	$(PY) -m pip install --quiet $(LOCK_ARG) -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-jax

test-jax: install
	KERAS_BACKEND=jax $(PY) -m pytest $(PYTEST_ARGS) $(JAX_TESTS)

# The slow tests alone (all chains on all real images, SSD300/512 weight sampling, inference-mode
# export, two-process JAX training, int8 mAP on the demo data; about 5 minutes on 2 cores).
test-slow: install
	$(PY) -m pytest $(PYTEST_ARGS) -m slow

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS) -m ''

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The README's first command: synthetic shapes -> SSD7 trained ~6 min on the CPU -> test mAP,
# prediction pictures and the loss curve under runs/demo/ (about 10 minutes on 2 cores).
.PHONY: demo
demo: install
	$(PY) -m ssd_keras demo --out runs/demo

# Re-executes the root notebooks in full mode (real runs on ../shared/data) and stores them with
# their outputs, scrubbed of machine paths and timestamps (tests/notebook_runner.py). One or some:
# make notebooks NOTEBOOKS=ssd7_training.ipynb. Long: the training notebooks train for real.
.PHONY: notebooks
NOTEBOOKS ?=
notebooks: install
	$(PY) tests/notebook_runner.py $(NOTEBOOKS)

# Not in CI. The newest versions setup.py allows, in a scratch venv: if `make test` (and the slow
# tests) pass with them, they become the new constraints.txt; if not, the lock stays as it is and
# the failures show what an upgrade would break. Prints what changed either way.
upgrade-check:
	rm -rf $(UPGRADE_VENV)
	$(PYTHON) -m venv $(UPGRADE_VENV)
	$(UPGRADE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(UPGRADE_VENV)/bin/python -m pip install --quiet --upgrade -e '.[$(EXTRAS)]'
	$(UPGRADE_VENV)/bin/python -m pip freeze --exclude-editable > $(UPGRADE_VENV)/candidate.txt
	@echo "== versions that differ from $(LOCK) (< locked, > newest allowed):"
	@diff <(grep -v '^#' constraints.txt) $(UPGRADE_VENV)/candidate.txt | grep '^[<>]' || true
	$(MAKE) --no-print-directory test test-slow VENV=$(UPGRADE_VENV) LOCK=$(UPGRADE_VENV)/candidate.txt
	{ sed -n '/^#/p' constraints.txt; cat $(UPGRADE_VENV)/candidate.txt; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	@echo "== the suite passed with the newest versions: constraints.txt rewritten (review, commit)"
