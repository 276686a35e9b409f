"""FaxflowGroupOperator at unit level: idempotent submission, re-attach, retry policy, on_kill."""

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred

from faxflow.airflow import operators
from faxflow.slurm import client as client_module
from faxflow.slurm.fake import FakeSlurm

SPEC = {"group": 3, "job_name": "ff_demo_abcd1234_v1_g0003", "variant": "v1", "backend": "slurm",
        "manifest": "/r/demo/run/manifest/manifest-0123456789ab.json", "output_root": "/r/outputs",
        "variant_dir": "/r/outputs/demo/v1-0123", "script": "/r/demo/run/jobs/ff_demo_abcd1234_v1_g0003.sh",
        "slurm_log_dir": "/r/demo/run/slurm", "force": False}
CLUSTER = {"ssh_conn_id": "cluster", "time_limit_minutes": 60, "mem_per_cpu_mb": 3000,
           "max_time_limit_minutes": 100, "max_mem_per_cpu_mb": 4000, "poll_interval_seconds": 5}


class Store(dict):
    def set(self, key, value):
        self[key] = value


class TI:
    try_number = 1

    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


@pytest.fixture
def slurm(monkeypatch):
    fake = FakeSlurm()
    files = {}
    real = client_module.SlurmClient
    monkeypatch.setattr(client_module, "SlurmClient",
                        lambda conn_id, **kwargs: real(runner=lambda command: fake.run(command), files=files))
    fake.files = files
    return fake


def _op(**kwargs):
    return operators.FaxflowGroupOperator(task_id="run", spec=dict(SPEC), cluster=dict(CLUSTER), **kwargs)


def _context(store=None):
    return {"task_state_store": store if store is not None else Store(), "ti": TI()}


def test_submit_stores_job_id_then_defers(slurm):
    context = _context()
    with pytest.raises(TaskDeferred) as deferred:
        _op().execute(context)
    job = context["task_state_store"][operators.JOB_KEY]
    assert job["job_id"] == "100" and job["stdout"] == "/r/demo/run/slurm/ff_demo_abcd1234_v1_g0003_100.out"
    assert context["ti"].xcom["faxflow_job"]["job_id"] == "100"
    assert deferred.value.trigger.job_id == "100" and deferred.value.method_name == "execute_complete"
    assert slurm.jobs["100"].sbatch_options == {"time": "1:00:00", "mem-per-cpu": "3000"}


def test_retry_reattaches_instead_of_resubmitting(slurm):
    store = Store()
    with pytest.raises(TaskDeferred):
        _op().execute(_context(store))
    with pytest.raises(TaskDeferred) as again:
        _op().execute(_context(store))  # worker died while deferred: same job, no second sbatch
    assert again.value.trigger.job_id == "100"
    assert slurm.counts()["sbatch"] == 1


def test_live_job_found_by_name_is_reattached(slurm):
    slurm.add_job(SPEC["job_name"], run_for=100)  # submitted, but the id never reached the state store
    store = Store()
    with pytest.raises(TaskDeferred) as deferred:
        _op().execute(_context(store))
    assert deferred.value.trigger.job_id == "100" and "sbatch" not in slurm.counts()
    assert store[operators.JOB_KEY]["job_id"] == "100"


def _complete(store, event):
    return _op().execute_complete(_context(store), event)


def _event(state, code=0):
    return {"status": "done", "job_id": "100", "job_name": SPEC["job_name"], "state": state, "exit_code": code,
            "signal": 0, "elapsed": "00:00:01", "reason": "", "source": "sacct"}


def test_outcomes_follow_the_policy(slurm):
    store = Store({operators.JOB_KEY: {"job_id": "100", "job_name": SPEC["job_name"], "backend": "slurm",
                                       "stdout": "/r/x.out", "stderr": "/r/x.err"}})
    assert _complete(store, _event("COMPLETED"))["state"] == "COMPLETED"
    with pytest.raises(AirflowFailException):
        _complete(store, _event("FAILED", 3))  # bad input: fail fast
    with pytest.raises(AirflowException) as retry:
        _complete(store, _event("FAILED", 4))  # engine error: retry
    assert not isinstance(retry.value, AirflowFailException)
    with pytest.raises(AirflowException):
        _complete(store, _event("TIMEOUT"))
    assert store[operators.RESOURCES_KEY]["time_limit_minutes"] == 100  # 60 → min(120, max 100)
    with pytest.raises(AirflowFailException):
        _complete(store, _event("TIMEOUT"))  # already at the bound
    with pytest.raises(AirflowException):
        _complete(store, {"status": "lost", "job_id": "100", "message": "gone"})


def test_retry_after_timeout_submits_with_more_time(slurm):
    store = Store()
    with pytest.raises(TaskDeferred):
        _op().execute(_context(store))
    slurm.jobs["100"].final_state, slurm.jobs["100"].polls = "TIMEOUT", 99
    with pytest.raises(AirflowException):
        _complete(store, _event("TIMEOUT"))
    with pytest.raises(TaskDeferred) as deferred:
        _op().execute(_context(store))  # the retry: old job is TIMEOUT → new sbatch with --time=1:40:00
    assert deferred.value.trigger.job_id == "101"
    assert slurm.jobs["101"].sbatch_options["time"] == "1:40:00"


def test_new_try_after_success_resubmits_the_group(slurm):
    store = Store()
    with pytest.raises(TaskDeferred):
        _op().execute(_context(store))
    slurm.jobs["100"].polls = 99  # the first job has finished COMPLETED
    _complete(store, _event("COMPLETED"))
    with pytest.raises(TaskDeferred) as deferred:
        _op().execute(_context(store))  # Clear: a new try must not reuse the finished job
    assert deferred.value.trigger.job_id == "101" and slurm.counts()["sbatch"] == 2


def test_logs_of_failed_productions_reach_the_task_log(slurm, caplog):
    import json

    slurm.files["/r/outputs/demo/v1-0123/groups/g0003.json"] = json.dumps(
        {"failures": [{"production": "v1_000007", "step": "simulation", "error_class": "bad_input",
                       "message": "broken table"}]}).encode()
    tails = []
    original = slurm.run

    def run(command):
        if command.startswith("if [ -f"):
            tails.append(command)
        return original(command)

    slurm.run = run
    store = Store({operators.JOB_KEY: {"job_id": "100", "job_name": SPEC["job_name"], "backend": "slurm",
                                       "stdout": "/r/x.out", "stderr": "/r/x.err"}})
    with pytest.raises(AirflowFailException):
        _complete(store, _event("FAILED", 3))
    assert any("/r/outputs/demo/v1-0123/logs/v1_000007.log" in command for command in tails)
    assert any("/r/x.out" in command for command in tails)


def test_on_kill_cancels_the_job(slurm):
    operator = _op()
    with pytest.raises(TaskDeferred):
        operator.execute(_context())
    operator.on_kill()
    assert slurm.jobs["100"].cancelled


def test_refuses_connections_without_host_key_checks():
    with pytest.raises(PermissionError):
        client_module.refuse_unchecked_host_keys({"no_host_key_check": "true"})
    client_module.refuse_unchecked_host_keys({"host_key": "ssh-ed25519 AAAA"})


def test_remote_root_under_home_is_resolved_on_the_cluster():
    from faxflow.backends.slurm import SlurmBackend
    from faxflow.backends.slurm_prepare import resolved_remote_root
    from faxflow.slurm.query import CommandResult

    client = client_module.SlurmClient(runner=lambda command: CommandResult(0, "HOME=/home/me\nSCRATCH=\n", ""))
    assert resolved_remote_root(client, "$HOME/faxflow") == "/home/me/faxflow"
    assert resolved_remote_root(client, "/abs/root") == "/abs/root"
    with pytest.raises(AirflowFailException, match=r"cluster.remote_root: .*\$SCRATCH is not set"):
        resolved_remote_root(client, "$SCRATCH/faxflow")
    backend = SlurmBackend({"remote_root": "$HOME/faxflow"}, plan_info={"remote_root": "/home/me/faxflow"})
    assert backend.cluster["remote_root"] == "/home/me/faxflow"
