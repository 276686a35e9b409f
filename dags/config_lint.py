"""Airflow DAG-folder lint for faxflow campaign files (defines no DAG).

If any ``configs/*.yaml`` does not validate, importing this file raises, so the problems show up as this
file's import error in the Airflow UI and in ``airflow dags list-import-errors --local``, while every
valid campaign keeps its DAG (import errors are per file).
"""

from faxflow.airflow.dag_factory import default_configs_dir, lint_configs
from faxflow.errors import ConfigError

_problems = lint_configs(default_configs_dir(__file__))
if _problems:
    raise ConfigError(["invalid faxflow campaign file(s):", *_problems])
