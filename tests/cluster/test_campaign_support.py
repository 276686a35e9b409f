"""Shared helpers for the real-cluster campaign tests (tests/cluster/test_campaign_*.py).

No tests here. Importing this module prepares an Airflow home (unless tests/airflow's conftest already
did, when the whole suite runs in one process), and provides:

* ``airflow_ready`` (session fixture): the metadata DB migrated once;
* ``cluster_env`` (fixture): the session sandbox wired up as the Airflow SSH connection
  ``faxflow_cluster`` (``AIRFLOW_CONN_FAXFLOW_CLUSTER``) plus a fresh configs folder;
* :class:`Campaign`: write a campaign YAML, parse the DAG, ``dag.test()`` it, find its Slurm jobs.

Every test uses its own campaign name (outputs live under ``<remote_root>/outputs/<campaign>``) and
its own ``remote_root`` sub-directory, so tests sharing one sandbox never see each other's files.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
CAMPAIGNS = Path(__file__).resolve().parent / "campaigns"

if "AIRFLOW_HOME" not in os.environ:  # running tests/cluster alone: same setup as tests/airflow/conftest.py
    from faxflow.airflow.home import apply_env

    os.environ.pop("FAXFLOW_CONFIGS_DIR", None)
    apply_env(Path(tempfile.mkdtemp(prefix="faxflow-cluster-airflow-")), PROJECT)

CONN_ID = "faxflow_cluster"
PYTHON_ENV = str(PROJECT / ".venv")


def python_env(sandbox) -> str:
    """The remote python env: the directory above SANDBOX_PYTHON's bin/ (the project venv)."""
    return str(Path(sandbox.python).parent.parent)


@pytest.fixture(scope="session")
def airflow_ready():
    from faxflow.airflow.home import migrate_db

    migrate_db()
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture
def cluster_env(slurm_sandbox, airflow_ready, tmp_path, monkeypatch):
    """The session sandbox as connection ``faxflow_cluster``; a fresh configs folder."""
    configs = tmp_path / "configs"
    configs.mkdir()
    monkeypatch.setenv("FAXFLOW_CONFIGS_DIR", str(configs))
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", slurm_sandbox.airflow_connection_json())
    return slurm_sandbox


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def base_config(name: str, sandbox, *, backend: str = "slurm", groups: int = 6, events: int = 5,
                variants: tuple[str, ...] = ("va", "vb"), productions_per_job: int = 1, pool_size: int = 2,
                output_root: Optional[Path] = None, share_kernels: bool = True, **cluster: Any) -> dict:
    """A tiny builtin-engine campaign (from tests/cluster/campaigns/tiny.yaml) for the sandbox.

    :param share_kernels: point the campaign's kernel cache at the session's (see :func:`share_kernel_cache`)
    """
    config = yaml.safe_load((CAMPAIGNS / "tiny.yaml").read_text())
    config["name"] = name
    config["number_job"] = groups * productions_per_job
    config["number_event_per_job"] = events
    config["output_root"] = str(output_root or Path(tempfile.mkdtemp(prefix=f"{name}-local-")))
    diffusion = [22.8, 29.35, 35.0, 40.0]
    config["variants"] = [{"name": v, "physics": {"diffusion_constant_cm2_per_s": diffusion[i % 4]}}
                          for i, v in enumerate(variants)]
    settings = config["cluster"]
    settings.update(backend=backend, ssh_conn_id=CONN_ID, remote_root=f"{sandbox.remote_root}/{name}",
                    python_env=python_env(sandbox), productions_per_job=productions_per_job,
                    max_concurrent_jobs=pool_size, pool=f"pool_{name}")
    settings.update(cluster)
    if share_kernels and backend == "slurm":
        share_kernel_cache(sandbox, settings["remote_root"])
    return config


def share_kernel_cache(sandbox, remote_root: str) -> None:
    """Make ``<remote_root>/cache/kernels`` a link to one kernel cache for the whole sandbox session.

    Jobs and prepare use the cache under their campaign's remote root, and every test has its own remote
    root: without the link each test would compile the kernels again (about 100 s on the test machine).
    """
    shared = f"{sandbox.remote_root}/.kernel-cache"
    sandbox.ssh(["sh", "-c", 'mkdir -p "$1" "$2/cache" && ln -sfn "$1" "$2/cache/kernels"', "link", shared,
                 remote_root], check=True)


class Campaign:
    """One campaign file in the current configs folder, run through its DAG."""

    def __init__(self, config: dict):
        self.config = copy.deepcopy(config)
        self.name = config["name"]
        self.dag_id = f"fax_{self.name}"
        self.configs = Path(os.environ["FAXFLOW_CONFIGS_DIR"])
        self.path = self.configs / f"{self.name}.yaml"
        self.path.write_text(yaml.safe_dump(self.config))
        from faxflow.airflow.home import create_pools

        cluster = self.config["cluster"]
        create_pools({cluster["pool"]: int(cluster["max_concurrent_jobs"])})

    @property
    def cluster(self) -> dict:
        return self.config["cluster"]

    @property
    def outputs(self) -> Path:
        """Where the variant directories are (remote outputs for slurm, output_root for local)."""
        if self.cluster["backend"] == "slurm":
            return Path(self.cluster["remote_root"]) / "outputs" / self.name
        return Path(self.config["output_root"]) / self.name

    def variant_dir(self, variant: str) -> Path:
        found = sorted(self.outputs.glob(f"{variant}-*"))
        assert len(found) == 1, (variant, found)
        return found[0]

    def plan(self):
        """The campaign's plan (production ids, groups, variant keys) without running anything."""
        from faxflow.config import load_campaign
        from faxflow.plan import make_plan

        campaign = load_campaign(self.path)
        root = f"{self.cluster['remote_root']}/outputs" if self.cluster["backend"] == "slurm" else \
            self.config["output_root"]
        return make_plan(campaign, run_id="plan_only", output_root=root)

    def dag(self):
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(PROJECT / "dags"))
        assert self.dag_id in bag.dags, bag.import_errors
        return bag.dags[self.dag_id]

    def test(self, **kwargs):
        run = self.dag().test(**kwargs)
        return run

    def job_prefix(self) -> str:
        return f"ff_{self.name}_"


def states(run) -> dict:
    return {(ti.task_id, ti.map_index): str(ti.state).rsplit(".", 1)[-1].lower() for ti in run.get_task_instances()}


def tries(run) -> dict:
    return {(ti.task_id, ti.map_index): ti.try_number for ti in run.get_task_instances()}


SACCT_FIELDS = ["JobIDRaw", "JobName", "State", "ExitCode", "TimelimitRaw", "Submit"]


def sacct_jobs(sandbox, prefix: str, *, settle: float = 15.0, expect: Optional[int] = None) -> list[dict]:
    """Every job (allocation rows) whose name starts with ``prefix``, from slurmdbd, as root.

    sacct lags slurmctld by up to ~2 s and may briefly show a stub row (JobName ``allocation``) for a job
    that just ended: wait (bounded by ``settle``) until no stub rows and no unfinished rows are left and,
    with ``expect``, until that many jobs are listed."""
    deadline = time.monotonic() + settle
    while True:
        cp = sandbox.slurm("sacct", "-a", "-X", "-P", "-n", "-S", "2020-01-01", "-E", "now",
                           f"--format={','.join(SACCT_FIELDS)}")
        every = [dict(zip(SACCT_FIELDS, line.split("|"))) for line in cp.stdout.splitlines() if line.strip()]
        rows = [r for r in every if r["JobName"].startswith(prefix)]
        stubs = [r for r in every if r["JobName"] == "allocation"]
        unsettled = [r for r in rows if r["State"].split()[0] in ("PENDING", "RUNNING", "COMPLETING")]
        short = expect is not None and len(rows) < expect
        if (not unsettled and not stubs and not short) or time.monotonic() > deadline:
            return sorted(rows, key=lambda r: int(r["JobIDRaw"]))
        time.sleep(0.3)


def squeue_jobs(sandbox, prefix: str, *, all_states: bool = False) -> list[tuple[str, str, str]]:
    """(id, name, state) of queued/running jobs whose name starts with ``prefix`` (as root)."""
    argv = ["squeue", "-h", "-o", "%i|%j|%T"]
    if all_states:
        argv += ["-t", "all"]
    cp = sandbox.slurm(*argv, check=True)
    out = []
    for line in cp.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[1].startswith(prefix):
            out.append(tuple(parts))
    return out


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Background(threading.Thread):
    """Run ``target`` in a daemon thread; re-raise its exception in :meth:`result`."""

    def __init__(self, target: Callable[[], Any]):
        super().__init__(daemon=True)
        self._target_fn = target
        self.value = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.value = self._target_fn()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            self.error = error

    def result(self, timeout: float = 60.0):
        self.join(timeout)
        assert not self.is_alive(), "background helper did not finish"
        if self.error is not None:
            raise self.error
        return self.value


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
