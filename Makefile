# faxflow: `make demo` runs the demo campaign end to end; `make test` runs the whole suite.
# Both start from nothing: they create .venv and install the pinned dependencies (constraints.txt).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install demo test test-fast lint up cluster-up cluster-down bench docs lock clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "pip==25.3"
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[airflow,test]"
	touch $@

# Compiles the builtin engine's kernels into the default output root's kernel cache (seconds once warm).
install: $(INSTALLED)
	$(PY) -m faxflow.cli warm --cache-dir runs/.cache/kernels

# The demo campaign through its Airflow DAG (dag.test, SQLite in .airflow/demo, local backend).
demo: install
	$(PY) -m faxflow.airflow.demo configs/demo.yaml

# Airflow standalone with the project's dags, plugins and pools: http://localhost:8080 (user admin,
# password on the first line of .airflow/standalone.log, the same after every restart). Works with nothing
# activated. Stop: kill -TERM -- -$$(cat .airflow/standalone.pid)
up: install
	docker/standalone.sh

# System packages for the real Slurm + sshd sandbox (root, Debian), then the whole suite.
test: install lint
	tests/cluster/install.sh
	tests/airflow/install-postgres.sh
	docker/install-faxflow.sh --dry-run
	$(PY) -m pytest

# ruff with the rules in pyproject.toml; fails on any finding.
lint: install
	$(VENV)/bin/ruff check .

test-fast: install
	$(PY) -m pytest -m "not cluster"

cluster-up: install
	tests/cluster/install.sh
	tests/cluster/up.sh

cluster-down:
	tests/cluster/down.sh

bench: install
	$(PY) bench/run_all.py

docs: install
	$(PY) -m faxflow.cli docs

# Re-resolve the lock from the Airflow constraints plus faxflow's direct dependencies.
lock:
	rm -rf /tmp/faxflow-lock && $(PYTHON) -m venv /tmp/faxflow-lock
	/tmp/faxflow-lock/bin/pip install -q "pip==25.3"
	/tmp/faxflow-lock/bin/pip install -q -c ../shared/constraints/airflow-3.3.2-py3.11.txt -e ".[airflow,test]"
	{ echo "# Lock for faxflow: Airflow 3.3.2 constraints (Python 3.11) plus faxflow's own pinned dependencies."; \
	  echo "# Regenerate: make lock"; \
	  /tmp/faxflow-lock/bin/pip freeze --exclude-editable | grep -viE '^(pip|setuptools|wheel)=='; } > constraints.txt

clean:
	rm -rf $(VENV) runs .airflow
