# shopwindow: `make demo` and `make test` are the two commands; each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export SHOPWINDOW_HOME ?= $(CURDIR)/.shopwindow
export DAGSTER_HOME := $(SHOPWINDOW_HOME)/dagster
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_USAGE_STATS_ENABLED := 0
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: demo test ui mlflow-ui bench install fashion-mnist clean

demo: $(STAMP) fashion-mnist ## run the whole pipeline on the offline demo profile
	$(BIN)/shopwindow demo

# pytest-xdist workers, one file each at a time (module fixtures are built once); tests/conftest.py
# gives each worker one thread. TEST_WORKERS=0 runs in one process with torch's default threads.
# --durations: every CI log names the slowest tests, as the suite runs close to its 10 minutes on a slow machine
TEST_WORKERS ?= 2

test: $(STAMP) fashion-mnist ## the whole test suite
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

bench: $(STAMP) fashion-mnist ## speed, memory and quality benchmarks (not run by CI)
	$(BIN)/python -m benchmarks

ui: $(STAMP) ## Dagster UI on http://127.0.0.1:3000
	$(BIN)/shopwindow init
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow-ui: $(STAMP) ## MLflow UI on http://127.0.0.1:5000, same state root
	mkdir -p $(SHOPWINDOW_HOME)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --host 127.0.0.1 --port 5000 --workers 1 \
	  --backend-store-uri sqlite:///$(SHOPWINDOW_HOME)/mlflow.db --default-artifact-root $(SHOPWINDOW_HOME)/mlartifacts

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

fashion-mnist: ## Debian's dataset-fashion-mnist, unless FASHION_MNIST_DIR points elsewhere
	@if [ -n "$$FASHION_MNIST_DIR" ] || [ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null; then \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else echo "Fashion-MNIST not found and apt-get is not available: set FASHION_MNIST_DIR to a folder with its four idx .gz files" >&2; exit 1; fi

clean: ## forget all state (runs, models, data); keeps the venv
	rm -rf $(SHOPWINDOW_HOME)
