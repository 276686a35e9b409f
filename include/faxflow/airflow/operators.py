"""The group operator: submit one group (Slurm over SSH, or a local process), defer, evaluate the outcome.

``FaxflowGroupOperator`` is mapped over a variant's groups. It is deferrable and lives in a pool with
``include_deferred``, so the pool size caps how many of this deployment's jobs are in flight.

Submission is idempotent: the job id is written to ``task_state_store`` right after ``sbatch``; a retry
(or a re-run after a worker crash) first re-attaches to that job if it is still queued/running, then to a
live job with the same deterministic name (``squeue --name``), and only then submits. When a job ends,
the tail of its stdout/stderr and the logs of failed productions are copied into the task log, and
:func:`faxflow.slurm.policy.decide` picks: success, retry (with more time or memory, bounded, remembered
in ``task_state_store``) or fail fast (``AirflowFailException``) for config/bad-input/validation errors.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Optional

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from faxflow import backends
from faxflow.airflow.links import JOB_XCOM_KEY, SlurmJobLink
from faxflow.config import CLUSTER_DEFAULTS
from faxflow.slurm import commands
from faxflow.slurm.policy import LOST, Action, Resources, decide

JOB_KEY = "faxflow_job"
RESOURCES_KEY = "faxflow_resources"


class _Store:
    """``task_state_store`` if the context has one (Airflow ≥ 3.3), else an in-memory dict."""

    def __init__(self, context):
        self._store = context.get("task_state_store") if hasattr(context, "get") else None
        self._memory: dict[str, Any] = {}

    def get(self, key: str, default=None):
        if self._store is None:
            return self._memory.get(key, default)
        try:
            value = self._store.get(key)
        except Exception:  # noqa: BLE001 - a missing store must not break the task
            value = None
        return default if value is None else value

    def set(self, key: str, value) -> None:
        if self._store is None:
            self._memory[key] = value
            return
        self._store.set(key, value)


class FaxflowGroupOperator(BaseOperator):
    """Run one group of a campaign's productions as one job and wait for it without holding a worker.

    :param spec: the group, as prepared by the variant's ``prepare`` task: ``group``, ``job_name``,
        ``variant``, ``backend`` (a :func:`faxflow.backends.names` name), ``manifest``, ``output_root``,
        ``variant_dir``, ``force``, and the backend's own keys (:mod:`faxflow.backends`)
    :param cluster: the variant's cluster settings (time/memory limits and their bounds)
    :param ssh_conn_id: Airflow SSH connection of the login node (backends that use SSH)
    :param poll_interval: seconds between status polls (default ``cluster.poll_interval_seconds``)
    :param missing_grace_seconds: how long a job may be invisible to Slurm before it counts as lost
    :param max_bad_answers: failed/garbled polls in a row before the wait gives up (then the task retries)
    :param max_wait_seconds: cap on one wait (None: the Slurm time limit bounds it)
    :param command_timeout: seconds per remote command
    :param log_tail_lines: lines of stdout/stderr/production logs copied into the task log
    """

    template_fields = ("spec",)
    operator_extra_links = (SlurmJobLink(),)
    ui_color = "#cfe8fc"

    def __init__(self, *, spec: Any, cluster: dict, ssh_conn_id: Optional[str] = None,
                 poll_interval: Optional[float] = None, missing_grace_seconds: Optional[float] = None,
                 max_bad_answers: int = 5, max_wait_seconds: Optional[float] = None, command_timeout: float = 60.0,
                 log_tail_lines: int = 40, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.cluster = {**CLUSTER_DEFAULTS, **cluster}
        self.ssh_conn_id = ssh_conn_id or self.cluster["ssh_conn_id"]
        self.poll_interval = float(poll_interval or self.cluster["poll_interval_seconds"])
        self.missing_grace_seconds = missing_grace_seconds
        self.max_bad_answers = max_bad_answers
        self.max_wait_seconds = max_wait_seconds
        self.command_timeout = command_timeout
        self.log_tail_lines = log_tail_lines
        self._job: Optional[dict] = None

    # -- helpers ----------------------------------------------------------------------------------
    def _backend(self):
        return backends.create(self.spec["backend"], self.cluster, operator=self)

    def _resources(self, store: _Store) -> dict:
        stored = store.get(RESOURCES_KEY)
        if isinstance(stored, dict) and "time_limit_minutes" in stored:
            return stored
        return {"time_limit_minutes": int(self.cluster["time_limit_minutes"]),
                "mem_per_cpu_mb": int(self.cluster["mem_per_cpu_mb"]), "history": []}

    def _publish(self, context, job: dict) -> None:
        self._job = job
        ti = context.get("ti")
        if ti is not None:
            ti.xcom_push(key=JOB_XCOM_KEY, value=job)

    def _defer(self, backend, job: dict) -> None:
        timeout = timedelta(seconds=self.max_wait_seconds * 1.5) if self.max_wait_seconds else None
        self.defer(trigger=backend.trigger(job), method_name="execute_complete", timeout=timeout)

    # -- execution --------------------------------------------------------------------------------
    def execute(self, context) -> Any:
        store = _Store(context)
        backend = self._backend()
        try:
            job = store.get(JOB_KEY)
            if isinstance(job, dict) and job.get("job_id") and job.get("job_name") == self.spec["job_name"]:
                event = backend.status_event(job)
                if event and event["status"] == "active":
                    self.log.info("Re-attaching to %s job %s (%s), still %s", job["backend"], job["job_id"],
                                  job["job_name"], event["state"])
                    self._publish(context, job)
                    self._defer(backend, job)
                # A finished job is never reused: a new try (retry or Clear) resubmits the group, and the
                # job itself skips every step whose done record still matches its files.
                self.log.info("Job %s of a previous try has ended (%s); submitting the group again",
                              job["job_id"], (event or {}).get("state", "no longer known"))
            live = backend.find_live()
            if live:
                job = backend.job_info(live)
                self.log.info("Re-attaching to live %s job %s found by name %s", job["backend"], live,
                              job["job_name"])
                store.set(JOB_KEY, job)
                self._publish(context, job)
                self._defer(backend, job)
            resources = self._resources(store)
            job = backend.submit(resources)
            job["submitted_at"] = time.time()
            job["try_number"] = getattr(context.get("ti"), "try_number", None)
            store.set(JOB_KEY, job)
            self._publish(context, job)
            self.log.info("Submitted %s job %s (%s): group %s, %s min, %s MB/CPU", job["backend"], job["job_id"],
                          job["job_name"], self.spec["group"], resources["time_limit_minutes"],
                          resources["mem_per_cpu_mb"])
            self._defer(backend, job)
        finally:
            backend.close()

    def execute_complete(self, context, event: Optional[dict] = None) -> Any:
        store = _Store(context)
        job = store.get(JOB_KEY) or {}
        event = event or {}
        if not job and event.get("job_id"):
            job = {"job_id": event["job_id"], "job_name": event.get("job_name", self.spec["job_name"])}
        backend = self._backend()
        try:
            self._publish(context, job)
            return self._evaluate(context, backend, store, job, event)
        finally:
            backend.close()

    def _evaluate(self, context, backend, store: _Store, job: dict, event: dict) -> dict:
        status = event.get("status")
        self._log_outputs(backend, job, job_logs_shown=bool(event.get("logs_streamed")))
        if status in ("error", "timeout"):
            raise AirflowException(f"lost track of job {job.get('job_id')}: {event.get('message')}; "
                                   "the retry re-attaches if it is still running")
        state = LOST if status == "lost" else event.get("state", "UNKNOWN")
        resources = self._resources(store)
        bounds = Resources(time_limit_minutes=int(resources["time_limit_minutes"]),
                           mem_per_cpu_mb=int(resources["mem_per_cpu_mb"]),
                           max_time_limit_minutes=int(self.cluster["max_time_limit_minutes"]),
                           max_mem_per_cpu_mb=int(self.cluster["max_mem_per_cpu_mb"]))
        decision = decide(state, event.get("exit_code"), bounds, signal=event.get("signal"))
        history = list(resources.get("history") or [])
        history.append({"job_id": job.get("job_id"), "state": state, "exit_code": event.get("exit_code"),
                        "action": decision.action.value, "reason": decision.reason})
        store.set(RESOURCES_KEY, {"time_limit_minutes": decision.time_limit_minutes,
                                  "mem_per_cpu_mb": decision.mem_per_cpu_mb, "history": history[-20:]})
        summary = backend.read_json(self._group_json())
        if decision.action is Action.SUCCEED:
            self.log.info("Group %s (%s): %s", self.spec["group"], job.get("job_name"), decision.reason)
            return {"group": self.spec["group"], "job_id": job.get("job_id"), "job_name": job.get("job_name"),
                    "state": state, "elapsed": event.get("elapsed", ""),
                    "productions": len((summary or {}).get("productions", [])),
                    "failures": (summary or {}).get("failures", [])}
        message = f"group {self.spec['group']} ({job.get('job_name')}), job {job.get('job_id')}: {decision.reason}"
        if decision.action is Action.FAIL:
            raise AirflowFailException(message)
        raise AirflowException(message)

    def _group_json(self) -> str:
        return f"{self.spec['variant_dir']}/groups/g{int(self.spec['group']):04d}.json"

    def _log_outputs(self, backend, job: dict, job_logs_shown: bool = False) -> None:
        """Copy the end of the job's stdout/stderr (unless the trigger already copied all of it) and of
        failed productions' logs into the task log."""
        lines = self.log_tail_lines
        for label in () if job_logs_shown else ("stdout", "stderr"):
            path = job.get(label)
            if not path:
                continue
            try:
                text = backend.tail(path, lines)
            except Exception as error:  # noqa: BLE001 - logs are best effort
                self.log.warning("could not read %s (%s): %s", label, path, error)
                continue
            if text.strip():
                self.log.info("---- %s of job %s (%s), last %d lines ----\n%s", label, job.get("job_id"), path,
                              lines, text.rstrip())
        try:
            summary = backend.read_json(self._group_json())
        except Exception as error:  # noqa: BLE001 - the summary only adds detail to the log
            self.log.warning("could not read the group summary: %s", error)
            return
        for failure in (summary or {}).get("failures", [])[:10]:
            production = str(failure.get("production", ""))
            try:
                commands.check_name(production)
            except ValueError:
                continue
            path = f"{self.spec['variant_dir']}/logs/{production}.log"
            text = backend.tail(path, lines)
            self.log.warning("---- production %s failed in %s (%s): %s; last %d lines of %s ----\n%s", production,
                             failure.get("step"), failure.get("error_class"), failure.get("message"), lines, path,
                             text.rstrip())

    def on_kill(self) -> None:
        """Killed while submitting or evaluating: cancel the job (deferred waits cancel via the trigger)."""
        if not self._job or not self._job.get("job_id"):
            return
        backend = self._backend()
        try:
            self.log.info("Cancelling job %s (%s)", self._job["job_id"], self._job.get("job_name"))
            backend.cancel(self._job)
        finally:
            backend.close()
