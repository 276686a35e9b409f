"""Airflow test setup: environment first (before any ``import airflow``), one migrated DB per session.

``AIRFLOW_HOME`` is a fresh temporary directory; the dags/plugins folders are the project's; the campaign
configs default to the project's ``configs/`` (tests that need other configs point
``FAXFLOW_CONFIGS_DIR`` elsewhere before parsing).
"""

import os
import sys
import tempfile
from pathlib import Path

import pytest

from faxflow.airflow.home import apply_env

PROJECT = Path(__file__).resolve().parents[2]
_HOME = Path(tempfile.mkdtemp(prefix="faxflow-airflow-test-"))

os.environ.pop("FAXFLOW_CONFIGS_DIR", None)  # the project's configs, whatever the calling shell set
apply_env(_HOME, PROJECT)  # the deployment's own environment (make up, compose, demo)
sys.path.insert(0, str(PROJECT / "tests" / "airflow"))


@pytest.fixture(scope="session")
def airflow_db():
    """Migrate the session's SQLite metadata DB once."""
    from faxflow.airflow.home import migrate_db

    migrate_db()
    return _HOME


@pytest.fixture
def configs_dir(tmp_path, monkeypatch):
    """An empty configs folder that the DAG file will read."""
    directory = tmp_path / "configs"
    directory.mkdir()
    monkeypatch.setenv("FAXFLOW_CONFIGS_DIR", str(directory))
    return directory
