# One command each on a fresh clone: `make run`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/agentjobs/v1/*.proto)

.PHONY: install proto run test test-slow lint bench clean

install: $(STAMP)

# Re-installs only when the project's metadata changes.
$(STAMP): pyproject.toml
	@echo "installing $(VENV) with the dev extra (after a change of pyproject.toml only)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=client --pyi_out=client \
		--grpc_python_out=client $(PROTOS)

# Not echoed: the server prints what it serves (or the one line that says why it cannot).
run: $(STAMP)
	@AGENTJOBS_OPERATOR_TOKEN=$${AGENTJOBS_OPERATOR_TOKEN:-dev-operator-token} $(BIN)/agentjobs-server serve

# Two workers, a test file each at a time (module fixtures start their server once).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check client server tests bench tools
	$(BIN)/ruff format --check client server tests bench tools
	$(BIN)/mypy
	cd protos && ../$(BIN)/buf lint
	$(BIN)/python tools/check_generated.py

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
