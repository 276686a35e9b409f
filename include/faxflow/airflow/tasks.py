"""The Python callables behind the campaign DAG's tasks: plan, prepare, collect and report.

They import faxflow's planning/collection code lazily (the DAG file stays cheap to parse) and talk to the
cluster only through :class:`faxflow.slurm.client.SlurmClient` (one SSH connection per task run).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Optional

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from faxflow.slurm import commands

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
        slurm = campaign.cluster.backend == "slurm"
        remote_root = resolved_remote_root(campaign.cluster) if slurm else None
        output_root = f"{remote_root}/outputs" if slurm else str(local_root)
        plan = make_plan(campaign, run_id=key, output_root=output_root, variants=params.get("variants") or None,
                         number_job=params.get("number_job"), events=params.get("events"))
        manifest = write_manifest(plan, local_root / campaign.name / "manifests")
    except FaxflowError as error:
        raise AirflowFailException(f"cannot plan {config_path}: {error}") from None
    print(format_dry_run(plan))
    variants = {}
    for variant in plan.variants:
        variants[variant.name] = {
            "key": variant.key, "output_dir": variant.output_dir, "productions": len(variant.productions),
            "events": sum(p.n_events for p in variant.productions),
            "groups": [{"group": g.index, "job_name": g.job_name, "slice": str(manifest.slices[g.index][0]),
                        "digest": manifest.slices[g.index][1]} for g in plan.groups if g.variant == variant.name],
        }
    return {"campaign": plan.campaign, "run_id": run_id, "run_key": key, "manifest": str(manifest.index_path),
            "manifest_digest": manifest.index_digest, "manifest_name": manifest.index_path.parent.name,
            "local_root": str(local_root), "output_root": output_root, "remote_root": remote_root,
            "backend": campaign.cluster.backend, "dry_run": bool(params.get("dry_run")),
            "force": bool(params.get("force")), "variants": variants, "totals": plan.totals()}


def resolved_remote_root(cluster) -> str:
    """``cluster.remote_root`` with a leading ``$HOME``/``$SCRATCH`` replaced by its value on the cluster."""
    from faxflow.names import resolve_remote_path

    if not cluster.remote_root.startswith("$"):
        return cluster.remote_root
    from faxflow.slurm.client import SlurmClient

    with SlurmClient(cluster.ssh_conn_id) as client:
        result = client.run('echo "HOME=$HOME"; echo "SCRATCH=${SCRATCH:-}"', check=True)
    environment = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    try:
        return resolve_remote_path(cluster.remote_root, environment)
    except ValueError as error:
        raise AirflowFailException(f"cluster.remote_root: {error}") from None


def _with_remote_root(cluster: dict, plan_info: dict) -> dict:
    """The variant's cluster settings with the remote root the plan resolved on the cluster (if it had to)."""
    if cluster.get("remote_root", "").startswith("$") and plan_info.get("remote_root"):
        return {**cluster, "remote_root": plan_info["remote_root"]}
    return cluster


def _selected(plan_info: dict, variant: str) -> dict:
    if plan_info.get("dry_run"):
        raise AirflowSkipException("dry run: planned only")
    info = plan_info["variants"].get(variant)
    if info is None:
        raise AirflowSkipException(f"variant {variant} not selected for this run")
    return info


def _remote_output_root(cluster: dict) -> str:
    return commands.check_path(f"{cluster['remote_root'].rstrip('/')}/outputs")


# -- prepare ---------------------------------------------------------------------------------------------
def prepare_variant(plan_info: dict, variant: str, cluster: dict) -> list[dict]:
    """Make the variant's groups runnable; return one spec per group for the mapped group tasks.

    Slurm: create the remote directories, upload the manifest, check (or install) the remote faxflow,
    ``faxflow check-manifest`` it there, and upload one job script per group. Local: create log dirs.
    """
    info = _selected(plan_info, variant)
    cluster = _with_remote_root(cluster, plan_info)
    base = {"variant": variant, "backend": cluster["backend"], "force": plan_info["force"]}
    if cluster["backend"] == "local":
        output_root = plan_info["output_root"]
        log_dir = Path(plan_info["local_root"]) / plan_info["campaign"] / "airflow" / plan_info["run_key"] / "jobs"
        log_dir.mkdir(parents=True, exist_ok=True)
        return [{**base, **group, "manifest": group["slice"], "index": plan_info["manifest"],
                 "index_digest": plan_info["manifest_digest"], "output_root": output_root,
                 "variant_dir": f"{output_root}/{info['output_dir']}", "log_dir": str(log_dir)}
                for group in info["groups"]]

    from faxflow.slurm.client import SlurmClient
    from faxflow.slurm.script import RemoteLayout, render_job_script

    output_root = _remote_output_root(cluster)
    layout = RemoteLayout(cluster["remote_root"], plan_info["campaign"], plan_info["run_key"], output_root)
    with SlurmClient(cluster["ssh_conn_id"]) as client:
        remote_plan = layout.manifest_path(plan_info["manifest_name"])
        client.mkdirs(*layout.directories(), remote_plan, f"{remote_plan}/groups")
        remote_manifest = f"{remote_plan}/index.json"
        client.upload_file(plan_info["manifest"], remote_manifest, mode=0o600)
        for group in info["groups"]:
            client.upload_file(group["slice"], f"{remote_plan}/groups/{Path(group['slice']).name}", mode=0o600)
        python_env = ensure_remote_faxflow(client, cluster)
        effective = {**cluster, "python_env": python_env}
        check = client.run(commands.faxflow(["check-manifest", remote_manifest, "--digest",
                                             plan_info["manifest_digest"]], python_env=python_env,
                                            env_setup=cluster.get("env_setup") or ()))
        if not check.ok:
            raise AirflowFailException(f"the cluster's faxflow cannot run {remote_manifest}: "
                                       f"{(check.stderr or check.stdout).strip()[-1000:]}")
        settings = _variant_settings(info)
        probe_engine(client, variant, settings)
        warm_kernels(client, effective, settings)
        specs = []
        for group in info["groups"]:
            remote_slice = f"{remote_plan}/groups/{Path(group['slice']).name}"
            script = render_job_script(job_name=group["job_name"], group_index=group["group"],
                                       manifest_path=remote_slice, manifest_digest=group["digest"], layout=layout,
                                       cluster=effective, force=plan_info["force"])
            script_path = layout.script_path(group["job_name"])
            client.upload(script.encode(), script_path, mode=0o700)
            specs.append({**base, **group, "manifest": remote_slice, "index": remote_manifest,
                          "index_digest": plan_info["manifest_digest"], "output_root": output_root,
                          "variant_dir": f"{output_root}/{info['output_dir']}", "script": script_path,
                          "slurm_log_dir": layout.slurm_log_dir, "python_env": python_env})
        if specs:
            client.check_job_options(specs[0]["script"])  # unknown partition/account/QOS: fail now, once
    return specs


def _variant_settings(info: dict) -> dict:
    """The variant's resolved settings, read from its first group's verified manifest slice."""
    from faxflow.manifest import load_slice

    first = info["groups"][0]
    return load_slice(first["slice"], first["digest"]).variants[0].settings


def probe_engine(client, variant: str, settings: dict) -> None:
    """pax only: one remote probe of the conda env (paxer, pax, hax, config names); fail at once if unusable."""
    if settings.get("engine") != "pax":
        return
    from faxflow.engines.pax import PaxEngine

    result = client.run(PaxEngine.from_settings(settings).probe_command(), timeout=300)
    if not result.ok:
        raise AirflowFailException(f"the pax env of variant {variant} is not usable: "
                                   f"{(result.stderr + result.stdout).strip()[-1500:]}")
    print(f"pax env of {variant}: {result.stdout.strip()[-300:]}")


def warm_kernels(client, cluster: dict, settings: dict) -> None:
    """builtin only: compile the kernels once on the login node, so jobs load them instead of compiling.

    The cache is the cluster user's default one (``~/.cache/faxflow/kernels``, per faxflow version and
    CPU), which jobs use too and which every campaign and run shares. A failure is only logged: a job that
    finds no warm cache compiles the kernels itself (and says so in its log).
    """
    if settings.get("engine", "builtin") != "builtin":
        return
    result = client.run(commands.faxflow(["warm"],
                                         python_env=cluster.get("python_env"),
                                         env_setup=cluster.get("env_setup") or ()), timeout=900)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.ok:
        print(f"kernel cache on the login node: {lines[-1] if lines else 'ready'}")
    else:
        print(f"warning: warming the kernel cache failed (exit {result.exit_status}); "
              f"each job compiles its kernels: {' | '.join(lines[-3:])}")


def remote_faxflow_version(client, python_env: Optional[str], env_setup) -> Optional[str]:
    result = client.run(commands.faxflow(["version"], python_env=python_env, env_setup=env_setup))
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return lines[-1] if result.ok and lines else None


def ensure_remote_faxflow(client, cluster: dict) -> Optional[str]:
    """Return the python_env whose faxflow equals ours, installing it if ``install_faxflow`` allows."""
    from faxflow import __version__

    env_setup = cluster.get("env_setup") or ()
    configured = cluster.get("python_env")
    found = remote_faxflow_version(client, configured, env_setup)
    if found == __version__:
        return configured
    if not cluster.get("install_faxflow"):
        where = configured or "PATH"
        raise AirflowFailException(f"faxflow on the cluster ({where}) is {found or 'missing'}, this deployment is "
                                   f"{__version__}; install it there or set cluster.install_faxflow: true")
    venv = commands.check_path(f"{cluster['remote_root'].rstrip('/')}/venvs/faxflow-{__version__}")
    if remote_faxflow_version(client, venv, env_setup) == __version__:
        return venv
    wheel = local_wheel()
    wheels_dir = commands.check_path(f"{cluster['remote_root'].rstrip('/')}/wheels")
    client.mkdirs(wheels_dir)
    remote_wheel = f"{wheels_dir}/{commands.check_name(wheel.name)}"
    client.upload_file(wheel, remote_wheel)
    steps = [*env_setup, f"python3 -m venv {venv}", f"{venv}/bin/pip install --quiet {remote_wheel}"]
    install = client.run(" && ".join(steps), timeout=1800)
    if not install.ok or remote_faxflow_version(client, venv, env_setup) != __version__:
        raise AirflowException(f"installing faxflow {__version__} into {venv} failed: "
                               f"{(install.stderr or install.stdout).strip()[-1500:]}")
    return venv


def local_wheel() -> Path:
    """A wheel of this faxflow: ``FAXFLOW_WHEEL``, else one built from the project with ``pip wheel``."""
    import sys
    import tempfile

    from faxflow import __version__

    if os.environ.get("FAXFLOW_WHEEL"):
        return Path(os.environ["FAXFLOW_WHEEL"])
    source = Path(__file__).resolve().parents[3]
    if not (source / "pyproject.toml").exists():
        raise AirflowFailException("no FAXFLOW_WHEEL set and no faxflow source tree to build a wheel from")
    target = Path(tempfile.mkdtemp(prefix="faxflow-wheel-"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(target), str(source)], check=True)
    wheels = sorted(target.glob(f"faxflow-{__version__}-*.whl"))
    if not wheels:
        raise AirflowException(f"pip wheel produced no faxflow {__version__} wheel")
    return wheels[0]


# -- collect ---------------------------------------------------------------------------------------------
def _run_faxflow(cluster: dict, args: list[str], python_env: Optional[str] = None, client=None):
    """Run faxflow locally (subprocess) or remotely; return (exit code, stdout, stderr)."""
    if cluster["backend"] == "local":
        from faxflow.airflow.local_jobs import faxflow_command

        done = subprocess.run([*faxflow_command(), *args], capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    result = client.run(commands.faxflow(args, python_env=python_env, env_setup=cluster.get("env_setup") or ()),
                        timeout=1800)
    return result.exit_status, result.stdout, result.stderr


def collect_variant(plan_info: dict, variant: str, cluster: dict, specs: list[dict],
                    tolerance: float = 0.0) -> dict:
    """Run ``faxflow collect`` where the outputs are, check events in = out, return the variant summary.

    :param tolerance: allowed fraction of events missing (0: every event must come out)
    """
    info = _selected(plan_info, variant)
    if not specs:
        raise AirflowSkipException("no groups ran")
    spec = specs[0]
    args = ["collect", "--manifest", spec["index"], "--digest", spec["index_digest"], "--variant", variant,
            "--output-root", spec["output_root"]]
    summary_path = f"{spec['variant_dir']}/summary.json"
    client = None
    try:
        if cluster["backend"] == "slurm":
            from faxflow.slurm.client import SlurmClient

            client = SlurmClient(cluster["ssh_conn_id"])
        code, out, err = _run_faxflow(cluster, args, spec.get("python_env"), client)
        if client is not None:
            raw = client.read_bytes(summary_path)
            summary = json.loads(raw) if raw else None
        else:
            path = Path(summary_path)
            summary = json.loads(path.read_text()) if path.exists() else None
    finally:
        if client is not None:
            client.close()
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
    summary["location"] = "cluster" if cluster["backend"] == "slurm" else "local"
    return summary


# -- report ----------------------------------------------------------------------------------------------
#: What a report run leaves next to each other (``faxflow.report.report_files``), pulled back from the cluster.
REPORT_SUFFIXES = (".html", ".json")


def campaign_report(plan_info: dict, collected: dict[str, Any], cluster: dict) -> dict:
    """Build catalog + report with ``faxflow report`` where the outputs are; write the run summary.

    Slurm runs build them on the cluster and pull back only the report, its summary and the catalog.
    The fit table goes to the task log; the returned ``report`` path feeds the "Campaign report" link.
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
        if cluster["backend"] == "local":
            args = ["report", "--manifest", plan_info["manifest"], "--digest", plan_info["manifest_digest"],
                    "--output-root", plan_info["output_root"]]
            code, out, err = _run_faxflow(cluster, args)
            report = _report_path(code, out, err)
        else:
            report = _remote_report(plan_info, cluster, local_dir)
        result["report"] = str(report)
        run_summary = json.loads(report.with_suffix(".json").read_text())
        result["measured"] = run_summary["totals"]
        result["catalog"] = str(local_dir / Path(run_summary["catalog"]).name)
    summary_path.write_text(json.dumps(result, indent=1, sort_keys=True, default=str))
    print(f"campaign summary: {summary_path}")
    if result["report"]:
        print(f"campaign report: {result['report']}")
        print(f"CPU-hours used: {result['measured']['cpu_hours']:.4g} ({result['measured']['cpu_source']} time)")
    for name, variant in result["variants"].items():
        if variant:
            print(f"  {name}: {variant.get('events_out')}/{variant.get('events_in')} events -> {variant.get('merged')}")
    return result


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


def _remote_report(plan_info: dict, cluster: dict, local_dir: Path) -> Path:
    from faxflow.slurm.client import SlurmClient
    from faxflow.slurm.script import RemoteLayout

    cluster = _with_remote_root(cluster, plan_info)
    output_root = _remote_output_root(cluster)
    layout = RemoteLayout(cluster["remote_root"], plan_info["campaign"], plan_info["run_key"], output_root)
    manifest = f"{layout.manifest_path(plan_info['manifest_name'])}/index.json"
    with SlurmClient(cluster["ssh_conn_id"]) as client:
        python_env = ensure_remote_faxflow(client, cluster)
        code, out, err = _run_faxflow(cluster, ["report", "--manifest", manifest, "--digest",
                                                plan_info["manifest_digest"], "--output-root", output_root],
                                      python_env, client)
        remote = _report_path(code, out, err)
        remote_html = commands.check_path(str(remote))
        remote_summary = json.loads(client.read_bytes(remote_html[:-len(".html")] + ".json") or b"{}")
        pulled = [remote_html[:-len(".html")] + suffix for suffix in REPORT_SUFFIXES]
        for path in [*pulled, commands.check_path(remote_summary.get("catalog", ""))]:
            data = client.read_bytes(path, max_bytes=256 * 1024 * 1024)
            if data is None:
                raise AirflowException(f"the cluster's report run left no {path}")
            (local_dir / Path(path).name).write_bytes(data)
    return local_dir / Path(remote_html).name
