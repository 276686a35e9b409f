"""Airflow DAGs for faxflow campaigns: one DAG ``fax_<campaign>`` per ``configs/*.yaml``.

The configs folder is ``$FAXFLOW_CONFIGS_DIR`` or ``<project>/configs``. All logic lives in the installed
``faxflow.airflow`` package (importable by the triggerer); this file only asks it for the DAGs.
"""

from faxflow.airflow.dag_factory import build_dags, default_configs_dir

for _dag_id, _dag in build_dags(default_configs_dir(__file__)).items():
    globals()[_dag_id] = _dag
