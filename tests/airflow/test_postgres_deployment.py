"""The compose deployment without Docker: Debian's PostgreSQL on loopback and the four Airflow components
as separate processes with separate homes (as containers have), sharing only what compose shares: the
database, the logs volume, the outputs volume and the secrets.

The triggerer runs in its own PID namespace (``unshare --pid --fork``), like its own container: a local
job longer than the poll interval must not be declared lost, and the trigger's lines must reach the task
log through the shared logs volume.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT
from standalone import Deployment, free_port, wait_for
from test_make_up import local_campaign

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
COMPONENTS = {"api-server": ["api-server"], "scheduler": ["scheduler"], "dag-processor": ["dag-processor"],
              "triggerer": ["triggerer"]}


def _as_postgres(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True,
                          check=True, **kwargs)


class PostgresDeployment(Deployment):
    """PostgreSQL + api-server, scheduler, dag-processor and triggerer, one process (group) each."""

    def __init__(self, root: Path, configs: Path):
        super().__init__(root, configs)
        # outside pytest's private (0700) temporary tree: the server runs as the postgres user
        self.pg_dir, self.pg_port = Path(tempfile.mkdtemp(prefix="faxflow-pg-")) / "data", free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        password = secrets.token_urlsafe(16)
        self.shared = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
                f"postgresql+psycopg2://airflow:{password}@127.0.0.1:{self.pg_port}/airflow",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(root / "logs"),  # the shared logs volume
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "auth" / "passwords.json"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        }
        self._pg_password = password

    def _env(self, component: str) -> dict[str, str]:
        home = self.root / "homes" / component
        env = {**self.env, **self.shared, "AIRFLOW_HOME": str(home),
               "PATH": f"{PROJECT / '.venv' / 'bin'}:{self.env['PATH']}"}
        done = subprocess.run([str(PROJECT / ".venv" / "bin" / "python"), "-m", "faxflow.airflow.home", "env",
                               "--home", str(home), "--project", str(PROJECT)], env=env, capture_output=True,
                              text=True, check=True)
        for line in done.stdout.splitlines():
            key, value = line.removeprefix("export ").split("=", 1)
            env[key] = subprocess.run(["sh", "-c", f"printf %s {value}"], capture_output=True, text=True).stdout
        home.mkdir(parents=True, exist_ok=True)
        return env

    def start(self, timeout: float = 300.0) -> PostgresDeployment:
        self.pg_dir.parent.chmod(0o755)
        self.pg_dir.mkdir()
        shutil.chown(self.pg_dir, "postgres", "postgres")
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.pg_dir), "-U", "postgres", "--auth=trust")
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.pg_dir), "-w", "-l", str(self.pg_dir / "server.log"),
                     "-o", f"-p {self.pg_port} -c listen_addresses=127.0.0.1 -k {self.pg_dir}", "start")
        psql = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "-v",
                "ON_ERROR_STOP=1", "-c"]
        _as_postgres(*psql, f"CREATE ROLE airflow LOGIN PASSWORD '{self._pg_password}'")
        _as_postgres(*psql, "CREATE DATABASE airflow OWNER airflow")
        # airflow-init of the compose file: migrate + pools + the admin password, in its own home
        init = subprocess.run([str(PROJECT / ".venv" / "bin" / "python"), "-m", "faxflow.airflow.home", "setup"],
                              env=self._env("init"), capture_output=True, text=True, timeout=600)
        assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
        for name, args in COMPONENTS.items():
            command = ["airflow", *args]
            if name == "triggerer":
                command = ["unshare", "--pid", "--fork", "--mount-proc", *command]
            log = open(self.root / f"{name}.log", "w")
            self.processes[name] = subprocess.Popen(command, env=self._env(name), stdout=log, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(self._healthy, timeout, "all components healthy on PostgreSQL", interval=2.0)
        password = (self.root / "auth" / "passwords.json").read_text()
        import json

        import httpx

        token = self._token(json.loads(password)["admin"])
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        return self

    def stop(self) -> None:
        import signal

        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if (self.pg_dir / "postmaster.pid").exists():
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.pg_dir), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.pg_dir.parent, ignore_errors=True)


@pytest.fixture
def postgres_deployment(tmp_path):
    if PG_BIN is None or os.geteuid() != 0:
        pytest.fail("needs root and Debian's postgresql (make test installs it)")
    configs = tmp_path / "configs"
    configs.mkdir()
    # productions of several seconds each, with a 1 s poll: the job outlives many polls of the triggerer
    config = local_campaign("pgtiny", tmp_path / "runs", "faxflow_pg_pool")
    config.update(number_job=2, number_event_per_job=20)
    config["cluster"]["productions_per_job"] = 2
    (configs / "pgtiny.yaml").write_text(yaml.safe_dump(config))
    deployment = PostgresDeployment(tmp_path, configs)
    try:
        yield deployment.start()
    finally:
        deployment.stop()


def test_compose_equivalent_deployment_on_postgres(postgres_deployment):
    deployment = postgres_deployment
    pool = deployment.get("/pools/faxflow_pg_pool")
    assert pool["slots"] == 2 and pool["include_deferred"] is True
    deployment.wait_for_dag("fax_pgtiny")
    deployment.unpause("fax_pgtiny")
    answer = deployment.trigger("fax_pgtiny", {})
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["dag_run_id"]
    assert deployment.wait_for_run("fax_pgtiny", run_id) == "success", deployment.failures("fax_pgtiny", run_id)
    [run] = [ti for ti in deployment.task_instances("fax_pgtiny", run_id) if ti["task_id"] == "only.run"]
    assert run["try_number"] == 1  # never declared lost and retried
    log = deployment.task_log("fax_pgtiny", run_id, "only.run", 1, run["map_index"])
    assert "FAXFLOW_PROGRESS" in log and "LocalJobTrigger" in log, log[-3000:]  # trigger lines, shared logs
    assert "heartbeat" not in log
