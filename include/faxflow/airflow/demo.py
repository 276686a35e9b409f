"""``make demo``: run a campaign's DAG once with ``dag.test()`` on the local backend.

    python -m faxflow.airflow.demo configs/demo.yaml [--home .airflow/demo] [--events N] [--number-job N]

Sets up an Airflow home under ``.airflow/`` (SQLite, migrated once, pools from the configs), runs
``fax_<campaign>`` in this process (deferred group tasks run their triggers inline) and prints where the
merged tables and the report are. The campaign must use ``cluster.backend: local``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from faxflow.airflow.home import SOURCE_ROOT, apply_env


def run_demo(config: Path, *, home: Path, project: Path, conf: Optional[dict] = None) -> dict:
    """Run the campaign DAG of ``config`` once; return the report task's result."""
    started = time.perf_counter()
    apply_env(home, project)
    from faxflow.config import load_campaign

    campaign = load_campaign(config)
    if campaign.cluster.backend != "local":
        raise SystemExit(f"{config}: the demo runs the local backend only (cluster.backend is "
                         f"{campaign.cluster.backend!r})")
    from faxflow.airflow.home import campaign_pools, create_pools, migrate_db

    migrate_db()
    create_pools(campaign_pools(project))
    import importlib.util

    from faxflow.airflow.dag_factory import build_campaign_dag, dag_id_for

    spec = importlib.util.spec_from_file_location("faxflow_campaigns", project / "dags" / "faxflow_campaigns.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, dag_id_for(campaign.name), None) or build_campaign_dag(config, campaign)
    print(f"[demo] Airflow home {home}; running {dag.dag_id} with dag.test()", flush=True)
    run = dag.test(run_conf=conf or {})
    state = str(getattr(run, "state", "unknown"))
    result = _report_result(dag.dag_id, run)
    print(f"[demo] {dag.dag_id}: {state} in {time.perf_counter() - started:.1f} s", flush=True)
    if result:
        for name, variant in (result.get("variants") or {}).items():
            if variant:
                print(f"[demo]   {name}: {variant.get('events_out')}/{variant.get('events_in')} events, "
                      f"merged table {variant.get('merged')}")
        print(f"[demo] report:  {result.get('report')}")
        print(f"[demo] summary: {result.get('summary')}")
    return {"state": state, "result": result}


def _report_result(dag_id: str, run) -> Optional[dict]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id,
                                              XComModel.task_id == "report", XComModel.key == "return_value").first()
        if row is None:
            return None
        value = row.value
    while isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            break
    return value if isinstance(value, dict) else None


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faxflow.airflow.demo")
    parser.add_argument("config", nargs="?", default=str(SOURCE_ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--home", default=str(SOURCE_ROOT / ".airflow" / "demo"))
    parser.add_argument("--project", default=str(SOURCE_ROOT))
    parser.add_argument("--events", type=int, help="override events per production")
    parser.add_argument("--number-job", type=int, help="override productions per variant")
    parser.add_argument("--verbose", action="store_true", help="show Airflow's task logs (INFO)")
    args = parser.parse_args(argv)
    if not args.verbose:
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    conf = {key: value for key, value in (("events", args.events), ("number_job", args.number_job)) if value}
    outcome = run_demo(Path(args.config).resolve(), home=Path(args.home).resolve(),
                       project=Path(args.project).resolve(), conf=conf)
    return 0 if outcome["state"].endswith("success") else 1


if __name__ == "__main__":
    sys.exit(main())
