"""Test 2: the pool (size 2, include_deferred) caps the campaign's Slurm jobs in flight.

dag.test() runs one task at a time and waits for each trigger inline, so under dag.test() at most one
job is ever in flight and the invariant would hold trivially. This test therefore runs the DAG the way
production does: ``airflow standalone`` (scheduler + LocalExecutor, triggerer, dag-processor, api-server;
SQLite) in its own process group, with parallelism 8, against the session's real Slurm sandbox, while
a thread samples ``squeue`` (as root) every 0.2 s. It asserts that 2 jobs were in flight at some moment
(so the scheduler really ran mapped groups concurrently) and never more than 2.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .harness import free_port
from .test_campaign_support import CAMPAIGNS, PROJECT, python_env, sacct_jobs, share_kernel_cache, unique

pytestmark = pytest.mark.cluster

VENV_BIN = PROJECT / ".venv" / "bin"


def _query(db: Path, sql: str, *args):
    connection = sqlite3.connect(str(db), timeout=30)
    try:
        return connection.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # tables not created yet / locked: try again later
        return []
    finally:
        connection.close()


def test_pool_caps_jobs_in_flight_under_the_scheduler(slurm_sandbox, tmp_path):
    sb = slurm_sandbox
    name = unique("pool")
    groups, pool_size = 6, 2
    home, configs = tmp_path / "home", tmp_path / "configs"
    configs.mkdir()
    config = yaml.safe_load((CAMPAIGNS / "tiny.yaml").read_text())
    config.update(name=name, number_job=groups, output_root=str(tmp_path / "out"))
    config["cluster"].update(ssh_conn_id="faxflow_cluster", remote_root=f"{sb.remote_root}/{name}",
                             python_env=python_env(sb), pool=f"pool_{name}", max_concurrent_jobs=pool_size,
                             # jobs long enough to overlap whenever the scheduler lets them
                             env_setup=['if [ -n "${SLURM_JOB_ID:-}" ]; then sleep 4; fi'])
    (configs / f"{name}.yaml").write_text(yaml.safe_dump(config))
    share_kernel_cache(sb, config["cluster"]["remote_root"])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FAXFLOW"))}
    env.update({
        "PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "FAXFLOW_PROJECT_ROOT": str(PROJECT), "FAXFLOW_CONFIGS_DIR": str(configs),
        "AIRFLOW__CORE__PARALLELISM": "8", "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5", "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW_CONN_FAXFLOW_CLUSTER": sb.airflow_connection_json(),
    })
    # DB + pools exactly as `make up` does (docker/standalone.sh)
    subprocess.run([str(VENV_BIN / "python"), "-m", "faxflow.airflow.home", "setup", "--home", str(home),
                    "--project", str(PROJECT)], env=env, check=True, capture_output=True, timeout=300)
    log = open(tmp_path / "standalone.log", "w")
    standalone = subprocess.Popen([str(VENV_BIN / "airflow"), "standalone"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True, cwd=str(tmp_path))
    db = home / "airflow.db"
    dag_id = f"fax_{name}"
    peak, samples, over = 0, 0, []
    try:
        deadline = time.monotonic() + 240
        while not _query(db, "select dag_id from dag where dag_id=?", dag_id):
            assert time.monotonic() < deadline, "the DAG was not parsed by the standalone dag-processor"
            assert standalone.poll() is None, (tmp_path / "standalone.log").read_text()[-3000:]
            time.sleep(1)
        trigger = subprocess.run([str(VENV_BIN / "airflow"), "dags", "trigger", dag_id], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert trigger.returncode == 0, trigger.stderr[-2000:]
        state = None
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            queued = [line for line in sb.slurm("squeue", "-h", "-o", "%j|%T").stdout.splitlines()
                      if line.startswith(f"ff_{name}_")]
            samples += 1
            peak = max(peak, len(queued))
            if len(queued) > pool_size:
                over.append(queued)
            rows = _query(db, "select state from dag_run where dag_id=?", dag_id)
            state = rows[0][0] if rows else None
            if state in ("success", "failed"):
                break
            time.sleep(0.2)
        tis = _query(db, "select task_id, map_index, state, pool from task_instance where dag_id=?", dag_id)
    finally:
        os.killpg(standalone.pid, signal.SIGTERM)
        try:
            standalone.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(standalone.pid, signal.SIGKILL)
            standalone.wait(10)
        log.close()
    assert state == "success", (state, tis)
    assert not over, f"more than {pool_size} jobs in flight: {over[:3]}"
    assert peak == pool_size, f"peak {peak} jobs in flight over {samples} samples: the groups never overlapped"
    runs = [t for t in tis if t[0] == "va.run"]
    assert len(runs) == groups and {t[3] for t in runs} == {f"pool_{name}"}, tis
    jobs = sacct_jobs(sb, f"ff_{name}_")
    assert len(jobs) == groups and {j["State"] for j in jobs} == {"COMPLETED"}, jobs
