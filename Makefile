# The README's commands. `make test` is what CI runs (.ci/run); `make demo` is the main job.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Offline model files: an explicit LANGCHAIN_HYBRID_MODEL_DIR wins; else the workspace copy
# beside this repo if there is one; else the package looks in Chroma's cache or downloads.
SHARED_MODEL := $(abspath ../shared/models/all-MiniLM-L6-v2/onnx)
ifeq ($(LANGCHAIN_HYBRID_MODEL_DIR),)
ifneq ($(wildcard $(SHARED_MODEL)/model.onnx),)
export LANGCHAIN_HYBRID_MODEL_DIR := $(SHARED_MODEL)
endif
endif

.PHONY: setup test lint unit bench bench-scale demo exact-match clean fuzz stress

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest tests/unit_tests

test: lint
	$(BIN)/pytest tests benchmarks --benchmark-disable

bench: setup
	mkdir -p .benchmarks
	$(BIN)/pytest benchmarks --benchmark-only --benchmark-json .benchmarks/latest.json
	$(BIN)/python benchmarks/report.py .benchmarks/latest.json

# Cost growth at 1M documents (benchmarks/test_bench_writes.py; 30-50 min on 2 cores; CI never runs it)
bench-scale: setup
	mkdir -p .benchmarks
	BENCH_WRITE_SIZES=1000000 $(BIN)/pytest benchmarks/test_bench_writes.py --benchmark-only \
		--benchmark-json .benchmarks/scale.json
	$(BIN)/python benchmarks/report.py .benchmarks/scale.json

demo: setup
	$(BIN)/python examples/demo.py

# Exact matches (README "Exact matches"): the planted benchmark over 500 SciFact documents with
# the real model (floors per identifier shape and script), then Python's language reference.
exact-match: setup
	$(BIN)/pytest -q tests/integration_tests/test_exact_match_model.py
	$(BIN)/python benchmarks/langref_check.py

clean:
	rm -rf $(VENV) .benchmarks demo-index .pytest_cache .mypy_cache .ruff_cache

# A longer fuzz run than CI's (README "Filters"; tests/unit_tests/test_fuzz.py and the filter
# differential against Chroma): ten times the cases, new random ones on every run
# (FUZZ_RANDOM=1; set FUZZ_RANDOM= to replay CI's derandomized cases). About 15 min on 2 cores.
FUZZ_SCALE  ?= 10
FUZZ_RANDOM ?= 1
fuzz: setup
	FUZZ_SCALE=$(FUZZ_SCALE) FUZZ_RANDOM=$(FUZZ_RANDOM) $(BIN)/pytest -q \
		tests/unit_tests/test_fuzz.py tests/unit_tests/test_filters_differential.py

# A longer crash run than CI's (tests/integration_tests/test_crash_safety.py): CRASH_POINTS
# forked writers SIGKILLed at random points, a new seed every run. About 15 min on 2 cores.
# Then the replica stress test (tests/integration_tests/test_replicas.py) with REPLICA_OPS
# document operations across 3 replica processes on one chroma run (CI: 1,200).
CRASH_POINTS ?= 250
REPLICA_OPS  ?= 12000
stress: setup
	CRASH_POINTS=$(CRASH_POINTS) CRASH_SEED=$$RANDOM $(BIN)/pytest -q \
		tests/integration_tests/test_crash_safety.py
	REPLICA_OPS=$(REPLICA_OPS) $(BIN)/pytest -q tests/integration_tests/test_replicas.py
