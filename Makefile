# tongxing — the two set-up commands (CONTRACT §1) and a few helpers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test run bench notebooks clean-demo help chromium bytecode

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

# The package's bytecode, compiled ahead: Python does not write it where PYTHONDONTWRITEBYTECODE is set (as on
# some managed machines), and compiling ~12,000 lines again costs every run about half a second of CPU.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q pipelines

demo: $(STAMP) bytecode
	$(BIN)/tongxing demo . --data-only
	$(BIN)/tongxing run --root .

run: $(STAMP) bytecode
	$(BIN)/tongxing run --root .

# Browser tests need Debian's Chromium; installed here when missing (as root, e.g. on CI). Without it the
# browser tests skip with a loud reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) \
	  || echo "warning: could not install chromium; browser tests will be skipped"; }

test: $(STAMP) bytecode chromium
	$(BIN)/python -m pytest

bench: $(STAMP) bytecode
	$(BIN)/python benchmarks/run_benchmarks.py

clean-demo:
	rm -rf data_clean/2* reports/2* reports/index.html demo_truth.json
	find data_raw -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
