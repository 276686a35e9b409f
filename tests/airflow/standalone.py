"""The README's ``make up`` path for tests: ``docker/standalone.sh`` from a clean environment, driven over REST.

:class:`Deployment` starts the script with PATH lacking the venv (nothing activated), its own
``AIRFLOW_HOME``, state directory, port and configs folder, waits for ``/api/v2/monitor/health``, logs in
with the password from the first line of the log, and stops the whole process group at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import httpx

PROJECT = Path(__file__).resolve().parents[2]
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Deployment:
    """One ``airflow standalone`` started by ``docker/standalone.sh`` in a temporary directory."""

    def __init__(self, root: Path, configs: Path, extra_env: Optional[dict[str, str]] = None):
        self.root = Path(root)
        self.configs = Path(configs)
        self.state = self.root / "state"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
            "AIRFLOW_HOME": str(self.root / "home"), "FAXFLOW_UP_DIR": str(self.state),
            "FAXFLOW_CONFIGS_DIR": str(self.configs), "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()), **(extra_env or {}),
        }
        if os.environ.get("FAXFLOW_KERNEL_CACHE"):
            self.env["FAXFLOW_KERNEL_CACHE"] = os.environ["FAXFLOW_KERNEL_CACHE"]
        self.client: Optional[httpx.Client] = None

    # -- life cycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 240.0) -> Deployment:
        done = subprocess.run([str(PROJECT / "docker" / "standalone.sh")], env=self.env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(self._healthy, timeout, "all Airflow components healthy", interval=2.0)
        first = self.log().splitlines()[0]
        assert first.startswith("Password for user 'admin': "), first
        token = self._token(first.split(": ", 1)[1].strip())
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        return self

    def _healthy(self) -> bool:
        try:
            health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        return all(health.get(name, {}).get("status") == "healthy" for name in COMPONENTS)

    def _token(self, password: str) -> str:
        answer = httpx.post(f"{self.url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["access_token"]

    def log(self) -> str:
        return (self.state / "standalone.log").read_text(errors="replace")

    def stop(self) -> None:
        pid_file = self.state / "standalone.pid"
        if not pid_file.exists():
            return
        group = int(pid_file.read_text())
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.5)

    # -- REST -------------------------------------------------------------------------------------
    def get(self, path: str, **params) -> Any:
        answer = self.client.get(f"/api/v2{path}", params=params)
        answer.raise_for_status()
        return answer.json()

    def wait_for_dag(self, dag_id: str, timeout: float = 180.0) -> dict:
        def parsed():
            answer = self.client.get(f"/api/v2/dags/{dag_id}")
            return answer.json() if answer.status_code == 200 else None

        return wait_for(parsed, timeout, f"DAG {dag_id} parsed", interval=2.0)

    def unpause(self, dag_id: str) -> None:
        answer = self.client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert answer.status_code == 200, answer.text

    def trigger(self, dag_id: str, conf: Optional[dict] = None) -> httpx.Response:
        return self.client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600.0) -> str:
        def finished():
            state = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None

        return wait_for(finished, timeout, f"run {run_id} of {dag_id} to finish", interval=3.0)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]

    def clear(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict:
        answer = self.client.post(f"/api/v2/dags/{dag_id}/clearTaskInstances", json={
            "dry_run": False, "dag_run_id": run_id, "task_ids": [[task_id, map_index]],
            "include_downstream": True, "only_failed": False, "reset_dag_runs": True})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def failures(self, dag_id: str, run_id: str) -> str:
        """States of every task and the end of each failed task's log (for assertion messages)."""
        parts = []
        for ti in self.task_instances(dag_id, run_id):
            parts.append(f"{ti['task_id']}[{ti['map_index']}] {ti['state']} try {ti['try_number']}")
            if ti["state"] in ("failed", "upstream_failed") and ti["try_number"]:
                try:
                    text = self.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
                except httpx.HTTPError as error:
                    text = f"(no log: {error})"
                parts.append(text[-4000:])
        return "\n".join(parts)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        answer = self.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                                 params={"map_index": map_index, "full_content": True},
                                 headers={"Accept": "application/json"})
        answer.raise_for_status()
        content = answer.json().get("content")
        if isinstance(content, list):
            return "\n".join(json.dumps(part) if not isinstance(part, str) else part for part in content)
        return str(content)
