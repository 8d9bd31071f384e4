# oncorwe - run `make help` for the targets.
# Two commands on a fresh machine (Python 3.11 + the package registries):
#   make repro   set up .venv from the lock file, then `dvc repro` (the whole pipeline)
#   make test    set up .venv from the lock file, then the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
KERNEL := $(VENV)/share/jupyter/kernels/oncorwe/kernel.json
SHIM   := $(VENV)/lib/liboncorwe_bindto.so
RUN    := env PATH="$(BIN):$$PATH" DVC_NO_ANALYTICS=1 OMP_WAIT_POLICY=PASSIVE
export DVC_NO_ANALYTICS := 1

.PHONY: help install repro check-repro test test-fast lint format reports resources lab bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP) $(KERNEL) $(SHIM) ## create .venv, install the locked dependencies, the package and its kernel

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# the Jupyter kernel `oncorwe` (this .venv's python), registered inside .venv (--sys-prefix);
# rerunning it overwrites the same kernelspec
$(KERNEL): $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name oncorwe --display-name "Python (oncorwe)"
	@touch $(KERNEL)

# the bind shim that keeps the federated server on compute.federated.address (XGBoost's
# server takes no bind address); without a C compiler the server listens on every
# interface and says so in its log
$(SHIM): tools/bindto/bindto.c $(STAMP)
	@if command -v cc >/dev/null 2>&1; then cc -shared -fPIC -O2 -Wall -o $@ $< -ldl; \
	else echo "no C compiler: the federated server will listen on every interface"; fi

repro: install ## run the pipeline end to end (dvc repro) on params.yaml's profile
	$(RUN) dvc repro

check-repro: repro ## dvc repro, then check every data and metrics file has its committed hash
	$(RUN) python tools/check_reproduced.py

test: lint ## the linters (ruff, ruff format, the import layers), then the whole test suite
	$(RUN) pytest

test-fast: install ## the tests not marked slow or notebook
	$(RUN) pytest -m "not slow and not notebook"

lint: install ## ruff lint and format check, and the import layers (lint-imports)
	$(RUN) ruff check lib tests benchmarks tools
	$(RUN) ruff format --check lib tests benchmarks tools
	$(RUN) lint-imports

format: install ## ruff format and autofix
	$(RUN) ruff format lib tests benchmarks tools
	$(RUN) ruff check --fix lib tests benchmarks tools

reports: install ## render the stakeholder reports into reports/ (offline HTML + index)
	$(RUN) dvc repro report

resources: install ## each stage's wall time, CPU time, peak memory and rows (last run)
	$(RUN) python -m oncorwe.pipeline.resources

# JupyterLab on 127.0.0.1 only; as root (a container) it needs --allow-root
LAB_PORT ?= 8888
LAB_ARGS ?=
lab: install ## JupyterLab on notebooks/, 127.0.0.1:LAB_PORT, no browser (open the token URL it prints)
	$(RUN) JUPYTER_PREFER_ENV_PATH=1 jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) \
	  --ServerApp.root_dir="$(CURDIR)/notebooks" \
	  $$(test "$$(id -u)" -eq 0 && echo --allow-root) $(LAB_ARGS)

bench: install ## throughput benchmarks (prints tables)
	$(RUN) python benchmarks/bench_cohort_features.py

clean: ## remove the environment (data stays in DVC)
	rm -rf $(VENV)
