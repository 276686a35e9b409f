"""Operator extra links: the Slurm job of a group task, and the campaign report of a DAG run.

In Airflow 3 the link is computed on the worker when the task finishes and stored in XCom; here it is
read from the XCom the operator pushed (``faxflow_job`` / ``return_value``). The targets are pages of
the faxflow plugin's FastAPI app (``/faxflow/...``, behind Airflow's login), or, if set, the
``FAXFLOW_SLURM_JOB_URL`` / ``FAXFLOW_REPORT_URL`` templates (``{job_id}``, ``{log}``, ``{path}``).
"""

from __future__ import annotations

import os
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

#: XCom key under which group tasks publish their job (id, log paths, backend).
JOB_XCOM_KEY = "faxflow_job"


def _xcom(ti_key, key: str):
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key=key)


def job_url(job: dict) -> str:
    template = os.environ.get("FAXFLOW_SLURM_JOB_URL")
    if template:
        return template.format(job_id=job.get("job_id", ""), log=job.get("stdout", ""))
    query = {key: str(job.get(key) or "") for key in ("job_id", "job_name", "backend", "stdout", "stderr", "host")}
    return "/faxflow/job?" + urlencode(query)


def report_url(path: str) -> str:
    template = os.environ.get("FAXFLOW_REPORT_URL")
    if template:
        return template.format(path=path)
    return "/faxflow/report?" + urlencode({"path": path})


class SlurmJobLink(BaseOperatorLink):
    """"Slurm job" button on a group task: the job id and its log paths."""

    name = "Slurm job"

    def get_link(self, operator, *, ti_key) -> str:
        job = _xcom(ti_key, JOB_XCOM_KEY)
        return job_url(job) if isinstance(job, dict) and job.get("job_id") else ""


class CampaignReportLink(BaseOperatorLink):
    """"Campaign report" button on the run's report task."""

    name = "Campaign report"

    def get_link(self, operator, *, ti_key) -> str:
        result = _xcom(ti_key, "return_value")
        path = result.get("report") if isinstance(result, dict) else None
        return report_url(path) if path else ""
