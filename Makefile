# tongxing — the two set-up commands (CONTRACT §1) and a few helpers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test run bench notebooks clean-demo help

help:
	@echo "make demo   – install, write the demo exports into data_raw/ (if empty), run every stage"
	@echo "make test   – install with test extras and run the whole test suite"
	@echo "make run    – run the pipeline on this root (your own data_raw/)"
	@echo "make bench  – timing and scale benchmarks (benchmarks/)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tongxing demo . --data-only
	$(BIN)/tongxing run --root .

run: $(STAMP)
	$(BIN)/tongxing run --root .

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run_benchmarks.py

clean-demo:
	rm -rf data_clean/2* reports/2* reports/index.html demo_truth.json
	find data_raw -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
