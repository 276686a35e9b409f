"""The Airflow deployment layer of faxflow: DAG factory, operators, triggers, links, demo and setup helpers.

Everything here is importable by every Airflow component (it is part of the installed package), so the
triggerer can load :mod:`faxflow.airflow.triggers` without the DAG bundle on ``sys.path``.
"""
