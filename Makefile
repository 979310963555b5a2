# spectraflow developer tasks. Make stops at the first failing command.

VENV ?= .venv
PY = $(VENV)/bin/python
PYTHON ?= python3
CHECK_PATHS = spectraflow tests bench
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# where the local index has no CPU wheel.
TORCH_PIP_ARGS ?=

.PHONY: install test lint format demo bench weights clean

install: $(VENV)/.installed

# torch is installed first, pinned: the CPU build installs quickly here; an unpinned
# torch pulls several GB of CUDA wheels.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PY) -m pip install -e ".[dev]"
	touch $@

test: install
	$(VENV)/bin/ruff check $(CHECK_PATHS)
	$(VENV)/bin/ruff format --check $(CHECK_PATHS)
	$(VENV)/bin/mypy spectraflow
	$(VENV)/bin/pytest -n 2 tests

lint: install
	$(VENV)/bin/ruff check $(CHECK_PATHS)
	$(VENV)/bin/ruff format --check $(CHECK_PATHS)
	$(VENV)/bin/mypy spectraflow

format: install
	$(VENV)/bin/ruff format $(CHECK_PATHS)
	$(VENV)/bin/ruff check --fix $(CHECK_PATHS)

demo: install
	$(VENV)/bin/spectraflow demo --out demo-output

bench: install
	$(PY) -m bench

# Re-trains the shipped weights (spectraflow/models/weights/) on simulated scenes and rewrites
# their cards with checksums and held-out scores: about half an hour on 2 CPU cores.
WEIGHTS_WORK ?= spectraflow-weights-work
weights: install
	$(VENV)/bin/spectraflow models train-shipped --work $(WEIGHTS_WORK)

# Removes build outputs and caches; keeps the virtualenv (rm -rf $(VENV) to rebuild it).
clean:
	rm -rf build dist demo-output spectraflow-weights-work .mypy_cache .ruff_cache .pytest_cache
	find . -path ./$(VENV) -prune -o -name '*.egg-info' -prune -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name __pycache__ -prune -exec rm -rf {} +
