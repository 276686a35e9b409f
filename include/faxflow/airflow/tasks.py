"""The Python callables behind the campaign DAG's tasks: plan, prepare, collect and report.

They import faxflow's planning/collection code lazily (the DAG file stays cheap to parse) and reach the
place where jobs run only through the campaign's backend (:mod:`faxflow.backends`, one per task run): this
module holds the Airflow-facing part (skips, retry or fail-fast exceptions, messages, summaries).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from faxflow import backends

#: Exit codes of ``faxflow collect``/``report`` after which a retry cannot help.
_FAIL_FAST = (2, 3, 6)


def run_key(run_id: str) -> str:
    """A filesystem- and job-name-safe form of an Airflow run id (≤ 64 characters)."""
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id or "manual").strip("._-") or "manual"
    if len(key) > 64:
        import hashlib

        key = key[:55] + "_" + hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return key


def project_root(config_path: str | Path) -> Path:
    """``FAXFLOW_PROJECT_ROOT``, else the directory above the configs folder."""
    env = os.environ.get("FAXFLOW_PROJECT_ROOT")
    return Path(env).resolve() if env else Path(config_path).resolve().parent.parent


def local_output_root(campaign, config_path: str | Path) -> Path:
    root = Path(campaign.output_root)
    return root if root.is_absolute() else project_root(config_path) / root


# -- plan ------------------------------------------------------------------------------------------------
def plan_campaign(config_path: str, run_id: str, params: dict) -> dict:
    """Load the campaign, apply the trigger parameters, write the manifest; return what later tasks need."""
    from faxflow.config import input_problems, load_campaign
    from faxflow.errors import ConfigError, FaxflowError
    from faxflow.manifest import write_manifest
    from faxflow.plan import format_dry_run, make_plan

    try:
        campaign = load_campaign(config_path)
        if problems := input_problems(campaign):
            raise ConfigError(problems)
        key = run_key(run_id)
        local_root = local_output_root(campaign, config_path)
        with backends.for_cluster(campaign.cluster.model_dump(mode="json")) as backend:
            located = backend.locate(local_root)
        plan = make_plan(campaign, run_id=key, output_root=located["output_root"],
                         variants=params.get("variants") or None,
                         number_job=params.get("number_job"), events=params.get("events"))
        manifest = write_manifest(plan, local_root / campaign.name / "manifests")
    except FaxflowError as error:
        raise AirflowFailException(f"cannot plan {config_path}: {error}") from None
    print(format_dry_run(plan))
    variants = {}
    for variant in plan.variants:
        variants[variant.name] = {
            "key": variant.key, "output_dir": variant.output_dir, "productions": len(variant.productions),
            "events": variant.productions.events,
            "groups": [{"group": g.index, "job_name": g.job_name, "slice": str(manifest.slices[g.index][0]),
                        "digest": manifest.slices[g.index][1]} for g in plan.groups if g.variant == variant.name],
        }
    return {**located, "campaign": plan.campaign, "run_id": run_id, "run_key": key,
            "manifest": str(manifest.index_path), "manifest_digest": manifest.index_digest,
            "manifest_name": manifest.index_path.parent.name, "local_root": str(local_root),
            "backend": campaign.cluster.backend, "dry_run": bool(params.get("dry_run")),
            "force": bool(params.get("force")), "variants": variants, "totals": plan.totals()}


def _selected(plan_info: dict, variant: str) -> dict:
    if plan_info.get("dry_run"):
        raise AirflowSkipException("dry run: planned only")
    info = plan_info["variants"].get(variant)
    if info is None:
        raise AirflowSkipException(f"variant {variant} not selected for this run")
    return info


# -- prepare ---------------------------------------------------------------------------------------------
def prepare_variant(plan_info: dict, variant: str, cluster: dict) -> list[dict]:
    """Make the variant's groups runnable where they run; return one spec per group for the mapped group tasks.

    The backend does the work (e.g. uploads and checks on a cluster, see :mod:`faxflow.backends`); each
    spec is the group's plan entry, where its outputs go, and the backend's own part.
    """
    info = _selected(plan_info, variant)
    output_root = plan_info["output_root"]
    base = {"variant": variant, "backend": cluster["backend"], "force": plan_info["force"],
            "output_root": output_root, "variant_dir": f"{output_root}/{info['output_dir']}"}
    with backends.for_cluster(cluster, plan_info) as backend:
        prepared = backend.prepare(variant, info)
    return [{**base, **group, **own} for group, own in zip(info["groups"], prepared, strict=True)]


# -- collect ---------------------------------------------------------------------------------------------
def collect_variant(plan_info: dict, variant: str, cluster: dict, specs: list[dict],
                    tolerance: float = 0.0) -> dict:
    """Run ``faxflow collect`` where the outputs are, check events in = out, return the variant summary.

    :param tolerance: allowed fraction of events missing (0: every event must come out)
    """
    info = _selected(plan_info, variant)
    if not specs:
        raise AirflowSkipException("no groups ran")
    spec = specs[0]
    summary_path = f"{spec['variant_dir']}/summary.json"
    with backends.for_cluster(cluster, plan_info) as backend:
        args = ["collect", "--manifest", backend.index_path(), "--digest", plan_info["manifest_digest"],
                "--variant", variant, "--output-root", spec["output_root"]]
        code, out, err = backend.run_faxflow(args, spec)
        summary = backend.read_json(summary_path)
        location = backend.location
    if out.strip():
        print(out.rstrip())
    if code != 0:
        detail = (err or out).strip()[-2000:]
        if summary and summary.get("failed"):
            detail += f"\nincomplete productions: {', '.join(summary['failed'][:50])}"
        if code in _FAIL_FAST:
            raise AirflowFailException(f"faxflow collect failed for {variant} (exit {code}): {detail}")
        raise AirflowException(f"faxflow collect failed for {variant} (exit {code}): {detail}")
    if summary is None:
        raise AirflowException(f"faxflow collect wrote no {summary_path}")
    events_in, events_out = int(summary.get("events_in", 0)), int(summary.get("events_out", 0))
    if events_in != info["events"]:
        raise AirflowFailException(f"{variant}: summary counts {events_in} planned events, the plan has "
                                   f"{info['events']}")
    if events_out < events_in * (1.0 - tolerance) or events_out > events_in:
        raise AirflowFailException(f"{variant}: {events_out} events out of {events_in} in "
                                   f"(tolerance {tolerance:.1%})")
    print(f"{variant}: {summary.get('productions_ok')}/{summary.get('productions')} productions, "
          f"{events_out}/{events_in} events, merged table {summary.get('merged')}")
    summary = dict(summary)
    summary.pop("per_production", None)
    summary["location"] = location
    return summary


# -- report ----------------------------------------------------------------------------------------------
#: What a report run leaves next to each other (``faxflow.report.report_files``), pulled back from the cluster.
REPORT_SUFFIXES = (".html", ".json")


def campaign_report(plan_info: dict, collected: dict[str, Any], cluster: dict) -> dict:
    """Build catalog + report with ``faxflow report`` where the outputs are; write the run summary.

    A backend whose outputs are elsewhere builds them there and brings back only the report, its summary
    and the catalog. The fit table goes to the task log; the returned ``report`` path feeds the
    "Campaign report" link.
    """
    from faxflow.plan import run_tag

    local_dir = Path(plan_info["local_root"]) / plan_info["campaign"]
    local_dir.mkdir(parents=True, exist_ok=True)
    tag = run_tag(plan_info["run_key"])
    summary_path = local_dir / f"summary-{tag}.json"
    result: dict[str, Any] = {"campaign": plan_info["campaign"], "run_id": plan_info["run_id"],
                              "dry_run": plan_info["dry_run"], "totals": plan_info["totals"],
                              "variants": {name: collected.get(name) for name in plan_info["variants"]},
                              "manifest": plan_info["manifest"], "summary": str(summary_path), "report": None}
    if not plan_info["dry_run"] and any(collected.values()):
        report, run_summary, catalog = _report(plan_info, cluster, local_dir)
        result.update(report=str(report), measured=run_summary["totals"], catalog=str(catalog))
    summary_path.write_text(json.dumps(result, indent=1, sort_keys=True, default=str))
    print(f"campaign summary: {summary_path}")
    if result["report"]:
        print(f"campaign report: {result['report']}")
        print(f"CPU-hours used: {result['measured']['cpu_hours']:.4g} ({result['measured']['cpu_source']} time)")
    for name, variant in result["variants"].items():
        if variant:
            print(f"  {name}: {variant.get('events_out')}/{variant.get('events_in')} events -> {variant.get('merged')}")
    return result


def _report(plan_info: dict, cluster: dict, local_dir: Path) -> tuple[Path, dict, Path]:
    """Run ``faxflow report`` through the backend; the local report, its run summary and the catalog."""
    with backends.for_cluster(cluster, plan_info) as backend:
        code, out, err = backend.run_faxflow(["report", "--manifest", backend.index_path(), "--digest",
                                              plan_info["manifest_digest"], "--output-root", plan_info["output_root"]])
        html = str(_report_path(code, out, err))
        stem = html[:-len(".html")] if html.endswith(".html") else html
        run_summary = backend.read_json(stem + ".json")
        if not run_summary or not run_summary.get("catalog"):
            raise AirflowException(f"faxflow report left no run summary {stem}.json")
        try:
            fetched = backend.fetch([stem + suffix for suffix in REPORT_SUFFIXES] + [run_summary["catalog"]],
                                    local_dir)
        except (FileNotFoundError, ValueError) as error:
            raise AirflowException(f"cannot bring back the report files: {error}") from None
    return fetched[0], run_summary, fetched[-1]


def _report_path(code: int, out: str, err: str) -> Path:
    """Print ``faxflow report``'s output (the fit table) and return the report it names on its last line."""
    lines = [line for line in out.splitlines() if line.strip()]
    if code != 0 or not lines:
        detail = (err or out).strip()[-1500:]
        if code in _FAIL_FAST:
            raise AirflowFailException(f"faxflow report failed (exit {code}): {detail}")
        raise AirflowException(f"faxflow report failed (exit {code}): {detail}")
    print("\n".join(lines[:-1]))
    return Path(lines[-1].strip())
