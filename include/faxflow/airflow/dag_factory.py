"""One DAG ``fax_<campaign>`` per ``configs/*.yaml``.

Shape of a campaign DAG::

    plan ─┬─> <variant A>.prepare ─> <variant A>.run[group…] ─> <variant A>.collect ─┬─> report
          └─> <variant B>.prepare ─> <variant B>.run[group…] ─> <variant B>.collect ─┘

``run`` is :class:`~faxflow.airflow.operators.FaxflowGroupOperator` mapped over the variant's groups, in
the variant's pool (``include_deferred``), with exponential retry backoff. Trigger parameters
(:mod:`faxflow.airflow.trigger_params`): ``variants`` (subset of the variant names), ``number_job``/``events``
overrides (1 … the campaign's limits), ``dry_run`` (plan only) and ``force`` (redo finished steps); any
other key is refused. A ``schedule:`` runs at its next cron time from now on, or with ``catchup: true`` first at
the latest missed one (:mod:`faxflow.airflow.schedules`). The plan task fails at once, naming the fix, if a pool
of the campaign is missing or of another size (:func:`~faxflow.airflow.pool_keeper.check_pools`).

Parsing is cheap: YAML + pydantic validation only; no SSH, no network, no pandas. A campaign file that
does not validate becomes a one-task DAG that fails with the problems (also shown in its doc), and
``dags/config_lint.py`` raises them as that file's import error; other campaigns are unaffected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Optional

from airflow.sdk import DAG, TaskGroup, task
from airflow.sdk.exceptions import AirflowFailException

from faxflow.airflow.operators import FaxflowGroupOperator
from faxflow.airflow.pool_keeper import check_pools
from faxflow.airflow.reporting import CampaignReportOperator
from faxflow.airflow.schedules import campaign_schedule
from faxflow.airflow.trigger_params import conf_problems, params_for

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
MAX_RETRY_DELAY = timedelta(hours=1)
TAGS = ["faxflow"]


def default_configs_dir(dags_file: str | Path) -> Path:
    import os

    env = os.environ.get("FAXFLOW_CONFIGS_DIR")
    return Path(env) if env else Path(dags_file).resolve().parent.parent / "configs"


def config_files(configs_dir: Path) -> list[Path]:
    return sorted(list(configs_dir.glob("*.yaml")) + list(configs_dir.glob("*.yml")))


def dag_id_for(name: str) -> str:
    return f"fax_{name}"


def _doc(campaign, config_path: Path) -> str:
    rows = ["| variant | backend | pool | productions × events | per job |", "|---|---|---|---|---|"]
    for variant in campaign.resolved_variants():
        settings = variant.settings
        cluster = settings["cluster"]
        rows.append(f"| {variant.name} | {cluster['backend']} | {cluster['pool']} | "
                    f"{settings['number_job']} × {settings['number_event_per_job']} | "
                    f"{cluster['productions_per_job']} |")
    return "\n".join([f"# Campaign `{campaign.name}`", "", campaign.description or "", "",
                      f"Config: `{config_path}`; schedule: `{campaign.schedule}`"
                      f"{' (catchup: latest missed time first)' if campaign.catchup else ''}", "", *rows])


def group_ids(names: list[str]) -> dict[str, str]:
    """Variant name → TaskGroup id (Airflow keys allow no '.'; collisions get a numeric suffix)."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        candidate = base = re.sub(r"[^A-Za-z0-9_-]", "_", name)
        number = 2
        while candidate in taken:
            candidate = f"{base}_{number}"
            number += 1
        taken.add(candidate)
        ids[name] = candidate
    return ids


def _retry_args(cluster: dict) -> dict:
    return {"retries": int(cluster.get("retries", 2)),
            "retry_delay": timedelta(seconds=float(cluster.get("retry_delay_seconds", 60.0))),
            "retry_exponential_backoff": 2.0, "max_retry_delay": MAX_RETRY_DELAY}


def build_campaign_dag(config_path: Path, campaign, *, collect_tolerance: float = 0.0) -> DAG:
    """The DAG of one validated campaign."""
    from faxflow.airflow import tasks

    config = str(config_path.resolve())
    top_cluster = campaign.cluster.model_dump(mode="json")
    with DAG(dag_id=dag_id_for(campaign.name), schedule=campaign_schedule(campaign.schedule, campaign.catchup),
             start_date=START_DATE,
             catchup=False,
             max_active_runs=1, params=params_for(campaign), doc_md=_doc(campaign, config_path),
             description=(campaign.description or f"faxflow campaign {campaign.name}")[:200],
             tags=[*TAGS, top_cluster["backend"]], default_args=_retry_args(top_cluster),
             render_template_as_native_obj=False) as dag:

        @task(task_id="plan", retries=0)
        def plan(**context):
            problems = conf_problems(getattr(context.get("dag_run"), "conf", None), campaign)
            if problems:
                raise AirflowFailException("\n".join(problems))
            if not context["params"].get("dry_run"):
                check_pools(campaign_pools(campaign))
            return tasks.plan_campaign(config, context["run_id"], dict(context["params"]))

        planned = plan()
        collected = {}
        ids = group_ids([variant.name for variant in campaign.resolved_variants()])
        for variant in campaign.resolved_variants():
            cluster = variant.settings["cluster"]
            with TaskGroup(group_id=ids[variant.name], tooltip=f"variant {variant.name}"):

                @task(task_id="prepare", **_retry_args(cluster))
                def prepare(plan_info: dict, variant_name: str = variant.name, cluster: dict = cluster):
                    return tasks.prepare_variant(plan_info, variant_name, cluster)

                specs = prepare(planned)
                ran = FaxflowGroupOperator.partial(
                    task_id="run", cluster=cluster, pool=cluster["pool"], **_retry_args(cluster),
                    map_index_template="{{ task.spec['job_name'] }}",
                ).expand(spec=specs)

                @task(task_id="collect", **_retry_args(cluster))
                def collect(plan_info: dict, specs: list, variant_name: str = variant.name,
                            cluster: dict = cluster):
                    return tasks.collect_variant(plan_info, variant_name, cluster, specs, collect_tolerance)

                result = collect(planned, specs)
                ran >> result
                collected[variant.name] = result

        CampaignReportOperator(task_id="report", plan_info=planned, collected=collected, cluster=top_cluster,
                               trigger_rule="none_failed")
    return dag


def build_invalid_dag(config_path: Path, problems: list[str], dag_id: Optional[str] = None) -> DAG:
    """A placeholder for a campaign file that does not validate: its doc and its one task show why."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", config_path.stem)
    text = "\n".join(problems)
    doc = "\n".join([f"# Invalid campaign file `{config_path.name}`", "",
                     "This DAG cannot run until the file validates. Problems:", "", "```", text, "```"])
    with DAG(dag_id=dag_id or f"fax_{stem}", schedule=None, start_date=START_DATE, catchup=False, doc_md=doc,
             description=f"INVALID campaign file {config_path.name}", tags=[*TAGS, "invalid-config"]) as dag:

        @task(task_id="config_error", retries=0)
        def config_error():
            raise AirflowFailException(f"{config_path} is invalid:\n{text}")

        config_error()
    return dag


def load_configs(configs_dir: Path) -> Iterable[tuple[Path, object, Optional[list[str]]]]:
    """Yield ``(path, campaign or None, problems or None)`` for every campaign file."""
    from faxflow.config import load_campaign
    from faxflow.errors import ConfigError

    for path in config_files(configs_dir):
        try:
            yield path, load_campaign(path), None
        except ConfigError as error:
            yield path, None, error.problems
        except Exception as error:  # noqa: BLE001 - one bad file must never hide the others
            yield path, None, [f"{path}: {type(error).__name__}: {error}"]


def build_dags(configs_dir: Path) -> dict[str, DAG]:
    """Every campaign DAG (valid or placeholder) by DAG id; duplicate names get a placeholder too."""
    dags: dict[str, DAG] = {}
    for path, campaign, problems in load_configs(configs_dir):
        if campaign is not None and dag_id_for(campaign.name) in dags:
            problems = [f"{path}: name: campaign {campaign.name!r} is already defined by another file"]
            campaign = None
        if campaign is None:
            dag = build_invalid_dag(path, problems or [])
            if dag.dag_id in dags:
                continue
        else:
            try:
                dag = build_campaign_dag(path, campaign)
            except Exception as error:  # noqa: BLE001 - keep the other campaigns
                dag = build_invalid_dag(path, [f"{path}: cannot build the DAG: {type(error).__name__}: {error}"],
                                        dag_id=dag_id_for(campaign.name))
        dags[dag.dag_id] = dag
    return dags


def lint_configs(configs_dir: Path) -> list[str]:
    """Every problem of every campaign file (empty if all validate)."""
    problems: list[str] = []
    names: dict[str, Path] = {}
    for path, campaign, found in load_configs(configs_dir):
        problems.extend(found or [])
        if campaign is not None:
            if campaign.name in names:
                problems.append(f"{path}: name: campaign {campaign.name!r} is already defined by "
                                f"{names[campaign.name]}")
            names[campaign.name] = path
    return problems


def campaign_pools(campaign) -> dict[str, int]:
    """Pool name → size for one campaign (the largest ``max_concurrent_jobs`` of the variants sharing it)."""
    sizes: dict[str, int] = {}
    for variant in campaign.resolved_variants():
        cluster = variant.settings["cluster"]
        sizes[cluster["pool"]] = max(sizes.get(cluster["pool"], 0), int(cluster["max_concurrent_jobs"]))
    return sizes


def pools(configs_dir: Path) -> dict[str, int]:
    """Pool name → size from every valid campaign (the largest ``max_concurrent_jobs`` wins)."""
    sizes: dict[str, int] = {}
    for _, campaign, _ in load_configs(configs_dir):
        if campaign is None:
            continue
        for name, size in campaign_pools(campaign).items():
            sizes[name] = max(sizes.get(name, 0), size)
    return sizes


def campaign_for_dag(dag_id: str, configs_dir: Optional[Path] = None):
    """The valid campaign whose DAG is ``dag_id`` (None if no campaign file defines it or it is invalid)."""
    import os

    if configs_dir is None:
        dags = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", "dags")
        configs_dir = default_configs_dir(Path(dags) / "faxflow_campaigns.py")
    for _, campaign, _ in load_configs(configs_dir):
        if campaign is not None and dag_id_for(campaign.name) == dag_id:
            return campaign
    return None
