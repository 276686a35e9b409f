"""Airflow plugin for faxflow: extra links (Slurm job, campaign report) and a small report/job viewer.

The viewer is a FastAPI app under ``/faxflow`` that requires an Airflow login (the same JWT/cookie the
UI uses): plugin FastAPI apps are not protected by Airflow on their own. It serves only campaign
reports and their companions (``report-*.html``, ``report-*.json``, ``catalog-*.parquet``,
``summary-*.json``) inside the campaigns' output roots (or ``FAXFLOW_REPORT_ROOTS``, ``:``-separated),
and shows job details passed in the link; it never opens SSH connections. Reports are self-contained, so
they are served with a Content-Security-Policy that forbids every network request.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from airflow.plugins_manager import AirflowPlugin

from faxflow import backends
from faxflow.airflow.links import CampaignReportLink, SlurmJobLink

_REPORT_NAME = re.compile(r"^(report-[0-9a-f]{8}\.(html|json)|catalog-[0-9a-f]{8}\.parquet|summary-[0-9a-f]{8}\.json)$")
_MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json",
                ".parquet": "application/vnd.apache.parquet"}
#: A report needs nothing but its own inline styles and data: images.
_REPORT_HEADERS = {"Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'",
                   "X-Content-Type-Options": "nosniff"}


def report_roots() -> list[Path]:
    """Directories reports may be served from."""
    if os.environ.get("FAXFLOW_REPORT_ROOTS"):
        return [Path(p).resolve() for p in os.environ["FAXFLOW_REPORT_ROOTS"].split(os.pathsep) if p]
    from faxflow.airflow.dag_factory import default_configs_dir, load_configs
    from faxflow.airflow.tasks import local_output_root

    configs = default_configs_dir(Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", "dags")) / "x.py")
    roots = []
    for path, campaign, _ in load_configs(configs):
        if campaign is not None:
            roots.append(local_output_root(campaign, path).resolve())
    return roots


def allowed_report(path: str) -> Path | None:
    """The resolved file if it is a report/summary inside an allowed root, else None."""
    if "\x00" in path:
        return None
    try:
        candidate = Path(path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not _REPORT_NAME.match(candidate.name) or not candidate.is_file():
        return None
    for root in report_roots():
        if candidate.is_relative_to(root):
            return candidate
    return None


def _build_app():
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse

    app = FastAPI(title="faxflow", dependencies=[Depends(get_user)])

    @app.get("/job", response_class=HTMLResponse)
    def job(job_id: str = "", job_name: str = "", backend: str = "", stdout: str = "", stderr: str = "",
            host: str = "") -> str:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>"
                       for k, v in (("job id", job_id), ("job name", job_name), ("backend", backend),
                                    ("connection", host), ("stdout", stdout), ("stderr", stderr)))
        hints = backends.job_hints(backend, {"job_id": job_id, "stdout": stdout, "stderr": stderr})
        hint = "".join(f"<p>By hand: <code>{html.escape(line)}</code></p>" for line in hints)
        return f"<html><body><h1>faxflow job {html.escape(job_id)}</h1><table>{rows}</table>{hint}</body></html>"

    @app.get("/report")
    def report(path: str):
        found = allowed_report(path)
        if found is None:
            raise HTTPException(status_code=404, detail="no such campaign report")
        return FileResponse(found, media_type=_MEDIA_TYPES[found.suffix], headers=_REPORT_HEADERS)

    return app


def _fastapi_apps() -> list[dict]:
    try:
        return [{"app": _build_app(), "url_prefix": "/faxflow", "name": "faxflow reports"}]
    except Exception:  # noqa: BLE001 - components without the API server still need the links
        return []


class FaxflowPlugin(AirflowPlugin):
    name = "faxflow"
    operator_extra_links = [SlurmJobLink(), CampaignReportLink()]
    fastapi_apps = _fastapi_apps()
