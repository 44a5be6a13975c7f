# Set-up and everyday commands. Only Python 3 (with venv) and make are needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

demo: install
	$(BIN)/python -m exfel_data demo

test: install
	$(BIN)/ruff check exfel_data bridge tests recipes benchmarks
	$(BIN)/python -m pytest -q

# Side-by-side benchmarks against extra-data / karabo-bridge / plain h5py and pyzmq.
# bench_reader, bench_detectors, bench_convert and bench_match rewrite their own section of
# docs/benchmarks.md; the others print tables that are copied there by hand.
# `make bench BENCH_ARGS=--quick` for a short run.
BENCHMARKS := bench_reader bench_detectors bench_convert bench_bridge bench_startup \
	bench_match bench_process
BENCH_ARGS ?=

bench: install
	for b in $(BENCHMARKS); do $(BIN)/python -m benchmarks.$$b $(BENCH_ARGS) || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
