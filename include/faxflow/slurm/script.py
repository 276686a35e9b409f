"""The sbatch job script of one group, rendered from the plan and the variant's cluster settings.

Layout on the cluster (all under ``cluster.remote_root``)::

    <remote_root>/cache/kernels/<version>-<cpu>/   numba kernel cache shared by every job (warmed by prepare)
    <remote_root>/<campaign>/<run_key>/
        manifest/plan-<sha12>/index.json   uploaded by prepare, with groups/g<NNNNNN>.json (one slice per job)
        jobs/<job_name>.sh                 this script
        slurm/<job_name>_<jobid>.out|.err  Slurm stdout/stderr (one pair per attempt)
    <output_root>/<variant output_dir>/…   faxflow outputs (groups/, logs/, merged.parquet, summary.json)
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from faxflow.config import CLUSTER_DEFAULTS
from faxflow.engines.builtin.kernel_cache import ENV_VAR as KERNEL_CACHE_VAR
from faxflow.slurm.commands import check_name, check_path, faxflow_executable


@dataclass(frozen=True)
class RemoteLayout:
    """Where one run of one campaign lives on the cluster.

    :param remote_root: ``cluster.remote_root`` (absolute)
    :param campaign: campaign name
    :param run_key: filesystem-safe run key (from the Airflow run id)
    :param output_root: where faxflow writes outputs; default ``<run dir>/output``
    """

    remote_root: str
    campaign: str
    run_key: str
    output_root: Optional[str] = None

    def __post_init__(self) -> None:
        check_path(self.remote_root)
        check_name(self.campaign)
        check_name(self.run_key)
        if self.output_root is not None:
            check_path(self.output_root)

    @property
    def run_dir(self) -> str:
        return f"{self.remote_root.rstrip('/')}/{self.campaign}/{self.run_key}"

    @property
    def manifest_dir(self) -> str:
        return f"{self.run_dir}/manifest"

    @property
    def scripts_dir(self) -> str:
        return f"{self.run_dir}/jobs"

    @property
    def slurm_log_dir(self) -> str:
        return f"{self.run_dir}/slurm"

    @property
    def outputs(self) -> str:
        return self.output_root or f"{self.run_dir}/output"

    @property
    def kernel_cache(self) -> str:
        """The kernel cache of every job under this remote root (kernel_cache adds the version/CPU level)."""
        return f"{self.remote_root.rstrip('/')}/cache/kernels"

    def script_path(self, job_name: str) -> str:
        return f"{self.scripts_dir}/{check_name(job_name)}.sh"

    def manifest_path(self, filename: str) -> str:
        return f"{self.manifest_dir}/{check_name(filename)}"

    def stdout_path(self, job_name: str, job_id: str = "%j") -> str:
        return f"{self.slurm_log_dir}/{check_name(job_name)}_{job_id}.out"

    def stderr_path(self, job_name: str, job_id: str = "%j") -> str:
        return f"{self.slurm_log_dir}/{check_name(job_name)}_{job_id}.err"

    def directories(self) -> list[str]:
        return [self.manifest_dir, self.scripts_dir, self.slurm_log_dir, self.outputs]


def kernel_cache_export(layout: RemoteLayout) -> str:
    """The shell line pointing faxflow at the cluster's shared kernel cache (before the campaign's setup
    lines, so that a setup line may still choose another cache)."""
    return f"export {KERNEL_CACHE_VAR}={shlex.quote(layout.kernel_cache)}"


def minutes_to_slurm(minutes: int) -> str:
    """``90`` → ``"1:30:00"`` (``--time`` in hours:minutes:seconds; days are folded into hours)."""
    minutes = int(minutes)
    if minutes <= 0:
        raise ValueError("time limit must be positive")
    return f"{minutes // 60}:{minutes % 60:02d}:00"


def render_job_script(*, job_name: str, group_index: int, manifest_path: str, manifest_digest: str,
                      layout: RemoteLayout,
                      cluster: Mapping[str, Any], time_limit_minutes: Optional[int] = None,
                      mem_per_cpu_mb: Optional[int] = None, force: bool = False) -> str:
    """Render the batch script that runs one group of productions.

    :param job_name: deterministic job name from the plan (``ff_<campaign>_<run8>_<variant>_g<NNNN>``)
    :param group_index: the plan's global group index (``faxflow job --group``)
    :param manifest_path: absolute path of the group's manifest slice on the cluster
    :param manifest_digest: the slice's sha256 recorded by the planner (the job refuses any other content)
    :param layout: remote directories of this run
    :param cluster: the variant's cluster settings (partition, qos, account, mem_per_cpu_mb,
        time_limit_minutes, python_env, env_setup)
    :param time_limit_minutes: override of ``cluster.time_limit_minutes``
    :param mem_per_cpu_mb: override of ``cluster.mem_per_cpu_mb``
    :param force: pass ``--force`` (redo steps even if their done records are valid)
    """
    check_name(job_name)
    check_path(manifest_path)
    if not re.fullmatch(r"[0-9a-f]{64}", manifest_digest or ""):
        raise ValueError(f"manifest digest {manifest_digest!r} is not a sha256")
    time_limit = int(time_limit_minutes or cluster.get("time_limit_minutes") or CLUSTER_DEFAULTS["time_limit_minutes"])
    memory = int(mem_per_cpu_mb or cluster.get("mem_per_cpu_mb") or CLUSTER_DEFAULTS["mem_per_cpu_mb"])
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        "#SBATCH --ntasks=1",
        "#SBATCH --cpus-per-task=1",
        f"#SBATCH --mem-per-cpu={memory}",
        f"#SBATCH --time={minutes_to_slurm(time_limit)}",
        f"#SBATCH --output={layout.stdout_path(job_name)}",
        f"#SBATCH --error={layout.stderr_path(job_name)}",
    ]
    for option in ("partition", "qos", "account"):
        value = cluster.get(option)
        if value:
            lines.append(f"#SBATCH --{option}={check_name(value)}")
    lines += [
        "",
        "# Generated by faxflow; re-running this script for the same group skips finished productions.",
        "set -e",
        f"echo \"faxflow job {job_name} (group {int(group_index)}) on $(hostname) as Slurm job ${{SLURM_JOB_ID:-?}}\"",
        kernel_cache_export(layout),
    ]
    for line in cluster.get("env_setup") or ():
        if "\n" in line or "\r" in line or "\0" in line:
            raise ValueError(f"setup line {line!r} must be a single line")
        lines.append(line)
    args = ["job", "--manifest", manifest_path, "--digest", manifest_digest, "--group", str(int(group_index)),
            "--output-root", layout.outputs]
    if force:
        args.append("--force")
    lines.append("exec " + " ".join([faxflow_executable(cluster.get("python_env")),
                                      *(shlex.quote(arg) for arg in args)]))
    return "\n".join(lines) + "\n"
