# The README's two commands, `make demo` and `make test`, are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo bench matrix twin clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@command -v kubectl >/dev/null || { apt-get update -qq && apt-get install -y -qq kubectl; } || echo "kubectl not installed: kubectl fidelity tests will fail"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

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
