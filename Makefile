# ssd-keras developer commands. `make test` and `make lint` work on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
# Everything the test suite exercises: TensorFlow (CPU), JAX, pycocotools and the export runtimes
# (LiteRT, ONNX Runtime, OpenVINO + NNCF); dev brings pytest, ruff and the notebook runner.
EXTRAS ?= cpu,dev,jax,coco,export,openvino
comma := ,
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PYTEST_ARGS ?= -n 2
# The Keras parts (layers, models, loss) also run on JAX.
JAX_TESTS ?= tests/keras_layers tests/models tests/keras_loss_function

.PHONY: install test test-jax test-slow test-all lint format

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): setup.py | $(PY)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
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
