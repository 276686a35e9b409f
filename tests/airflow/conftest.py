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

PROJECT = Path(__file__).resolve().parents[2]
_HOME = Path(tempfile.mkdtemp(prefix="faxflow-airflow-test-"))

os.environ.update({
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "FAXFLOW_PROJECT_ROOT": str(PROJECT),
    "FAXFLOW_CONFIGS_DIR": str(PROJECT / "configs"),
})
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
