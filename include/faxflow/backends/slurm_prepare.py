"""The Slurm backend's prepare step: everything a variant's groups need on the cluster before sbatch.

Over one SSH connection: create the run's directories, upload the manifest and its slices, find (or
install) this exact faxflow there, ``faxflow check-manifest`` the upload, probe a pax env, upload one job
script per group, ask Slurm once whether it accepts the job options, and warm the kernel cache the jobs
use (``<remote_root>/cache/kernels``). Failures that a retry cannot fix raise ``AirflowFailException``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Optional

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from faxflow.slurm import commands
from faxflow.slurm.script import RemoteLayout, kernel_cache_export, render_job_script


def resolved_remote_root(client, remote_root: str) -> str:
    """``remote_root`` with a leading ``$HOME``/``$SCRATCH`` replaced by its value on the cluster."""
    from faxflow.names import resolve_remote_path

    if not remote_root.startswith("$"):
        return remote_root
    result = client.run('echo "HOME=$HOME"; echo "SCRATCH=${SCRATCH:-}"', check=True)
    environment = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    try:
        return resolve_remote_path(remote_root, environment)
    except ValueError as error:
        raise AirflowFailException(f"cluster.remote_root: {error}") from None


def prepare_groups(client, cluster: dict, plan_info: dict, variant: str, info: dict) -> list[dict]:
    """Upload and check everything; per group the Slurm part of its spec (see the module docstring)."""
    layout = RemoteLayout(cluster["remote_root"], plan_info["campaign"], plan_info["run_key"],
                          plan_info["output_root"])
    remote_plan = layout.manifest_path(plan_info["manifest_name"])
    client.mkdirs(*layout.directories(), remote_plan, f"{remote_plan}/groups")
    remote_index = f"{remote_plan}/index.json"
    client.upload_file(plan_info["manifest"], remote_index, mode=0o600)
    slices = [f"{remote_plan}/groups/{commands.check_name(Path(group['slice']).name)}" for group in info["groups"]]
    for group, remote_slice in zip(info["groups"], slices):
        client.upload_file(group["slice"], remote_slice, mode=0o600)
    effective = {**cluster, "python_env": ensure_remote_faxflow(client, cluster)}
    check = client.run(commands.faxflow(["check-manifest", remote_index, "--digest", plan_info["manifest_digest"]],
                                        python_env=effective["python_env"], env_setup=cluster.get("env_setup") or ()))
    if not check.ok:
        raise AirflowFailException(f"the cluster's faxflow cannot run {remote_index}: "
                                   f"{(check.stderr or check.stdout).strip()[-1000:]}")
    settings = _variant_settings(info)
    probe_engine(client, variant, settings)
    specs = []
    for group, remote_slice in zip(info["groups"], slices):
        script = render_job_script(job_name=group["job_name"], group_index=group["group"], manifest_path=remote_slice,
                                   manifest_digest=group["digest"], layout=layout, cluster=effective,
                                   force=plan_info["force"])
        script_path = layout.script_path(group["job_name"])
        client.upload(script.encode(), script_path, mode=0o700)
        specs.append({"manifest": remote_slice, "script": script_path, "slurm_log_dir": layout.slurm_log_dir,
                      "python_env": effective["python_env"]})
    if specs:
        client.check_job_options(specs[0]["script"])  # unknown partition/account/QOS: fail now, once
    warm_kernels(client, effective, layout, settings)  # last: it may compile for minutes
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


def warm_kernels(client, cluster: dict, layout: RemoteLayout, settings: dict) -> None:
    """builtin only: compile the kernels once on the login node into the cache the jobs use.

    The cache is ``<remote_root>/cache/kernels`` (per faxflow version and CPU inside), exported the same
    way as in the job script, so every job of every campaign under this root loads the kernels instead of
    compiling them. A failure is only logged: a job that finds no warm cache compiles the kernels itself
    (and says so in its log).
    """
    if settings.get("engine", "builtin") != "builtin":
        return
    print(f"warming the kernel cache {layout.kernel_cache} on the login node")
    result = client.run(commands.faxflow(["warm"], python_env=cluster.get("python_env"),
                                         env_setup=[kernel_cache_export(layout), *(cluster.get("env_setup") or ())]),
                        timeout=900)
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
