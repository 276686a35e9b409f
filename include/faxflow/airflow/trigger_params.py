"""The trigger parameters of a campaign DAG: the form Airflow shows, and the strict check of a run's conf.

Airflow validates each declared param but accepts any extra key, so ``{"bogus": 1}`` would start a
full-size run, and its messages are schema dumps. :func:`conf_problems` is the one check: unknown keys
are refused with the allowed names, values with the allowed range, in faxflow's own words. It runs in the
api-server before a run is created (:class:`TriggerConfGuard`, HTTP 400) and again in the ``plan`` task
(for triggers that bypass the REST API, such as ``airflow dags trigger`` or ``dag.test``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Optional

from faxflow import limits

#: Every key a campaign run's conf may hold.
TRIGGER_KEYS = ("variants", "number_job", "events", "dry_run", "force")
#: The REST path that creates DAG runs (the UI's trigger form posts here too).
_TRIGGER_PATH_PREFIX, _TRIGGER_PATH_SUFFIX = "/api/v2/dags/", "/dagRuns"


def variant_names(campaign) -> list[str]:
    return [variant.name for variant in campaign.resolved_variants()]


def params_for(campaign) -> dict:
    """The DAG's params: every one optional (null = the campaign file's value), maxima from faxflow.limits."""
    from airflow.sdk import Param

    names = variant_names(campaign)
    maxima = limits.trigger_maxima(campaign.limits)
    return {
        "variants": Param(None, type=["null", "array"], items={"type": "string", "enum": names}, uniqueItems=True,
                          examples=names, title="Variants", description="Run only these variants (empty: all)"),
        "number_job": Param(None, type=["null", "integer"], minimum=1, maximum=maxima["number_job"],
                            title="Productions per variant",
                            description="Override number_job (empty: from the campaign file)"),
        "events": Param(None, type=["null", "integer"], minimum=1, maximum=maxima["events"],
                        title="Events per production",
                        description="Override number_event_per_job (empty: from the campaign file)"),
        "dry_run": Param(False, type=["null", "boolean"], title="Dry run",
                         description="Plan and write the manifest only"),
        "force": Param(False, type=["null", "boolean"], title="Force",
                       description="Redo steps even if their outputs are already complete"),
    }


def _integer_problem(key: str, value: Any, maximum: int) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{key}: {value!r} is not a whole number (allowed: 1..{maximum}, or empty)"
    if not 1 <= value <= maximum:
        return f"{key}: {value} is outside 1..{maximum} (the ceiling comes from the campaign's limits)"
    return None


def conf_problems(conf: Any, campaign) -> list[str]:
    """Everything wrong with a run's conf for this campaign (empty list: acceptable)."""
    prefix = f"campaign {campaign.name} trigger parameters"
    if conf is None:
        return []
    if not isinstance(conf, dict):
        return [f"{prefix}: conf must be a JSON object with keys from {', '.join(TRIGGER_KEYS)}"]
    problems = [f"{prefix}: unknown key {key!r} (allowed: {', '.join(TRIGGER_KEYS)})"
                for key in conf if key not in TRIGGER_KEYS]
    names = variant_names(campaign)
    chosen = conf.get("variants")
    if chosen is not None:
        if not isinstance(chosen, list) or not all(isinstance(name, str) for name in chosen):
            problems.append(f"{prefix}: variants must be a list of variant names (allowed: {', '.join(names)})")
        else:
            unknown = [name for name in chosen if name not in names]
            if unknown:
                problems.append(f"{prefix}: variants: unknown {', '.join(map(repr, unknown))} "
                                f"(allowed: {', '.join(names)})")
            if len(set(chosen)) != len(chosen):
                problems.append(f"{prefix}: variants: a name is listed twice")
    maxima = limits.trigger_maxima(campaign.limits)
    for key in ("number_job", "events"):
        problem = _integer_problem(key, conf.get(key), maxima[key])
        if problem:
            problems.append(f"{prefix}: {problem}")
    for key in ("dry_run", "force"):
        if conf.get(key) is not None and not isinstance(conf.get(key), bool):
            problems.append(f"{prefix}: {key}: {conf[key]!r} is not true or false")
    return problems


class TriggerConfGuard:
    """ASGI middleware of the api-server: refuse a campaign run whose conf :func:`conf_problems` rejects.

    Only ``POST /api/v2/dags/fax_…/dagRuns`` is looked at; its body is read, checked and passed on unchanged.
    """

    def __init__(self, app: Callable, find_campaign: Optional[Callable[[str], Any]] = None):
        self.app = app
        self.find_campaign = find_campaign

    @staticmethod
    def _dag_id(scope) -> Optional[str]:
        path = scope.get("path", "")
        if scope.get("type") != "http" or scope.get("method") != "POST":
            return None
        if not (path.startswith(_TRIGGER_PATH_PREFIX) and path.endswith(_TRIGGER_PATH_SUFFIX)):
            return None
        dag_id = path[len(_TRIGGER_PATH_PREFIX):-len(_TRIGGER_PATH_SUFFIX)]
        return dag_id if dag_id.startswith("fax_") and "/" not in dag_id else None

    async def __call__(self, scope, receive, send):
        dag_id = self._dag_id(scope)
        if dag_id is None:
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(chunk.get("body", b"") for chunk in chunks)
        problems = self._problems(dag_id, body)
        if problems:
            payload = json.dumps({"detail": "; ".join(problems)}).encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return None
        pending = list(chunks)

        async def replay():
            return pending.pop(0) if pending else await receive()

        return await self.app(scope, replay, send)

    def _problems(self, dag_id: str, body: bytes) -> list[str]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return []  # not JSON: Airflow's own validation answers
        if not isinstance(request, dict):
            return []
        if self.find_campaign is None:
            from faxflow.airflow.dag_factory import campaign_for_dag

            self.find_campaign = campaign_for_dag
        campaign = self.find_campaign(dag_id)
        return conf_problems(request.get("conf"), campaign) if campaign is not None else []
