"""Remote command strings for Slurm and faxflow, built only with :func:`shlex.quote`.

Every argument that reaches the remote shell is validated (job ids, job names, absolute paths) and then
quoted, so a value can never add a second command. The strings are run by ``bash -c``-like login
shells on the cluster, through SSH.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional

from faxflow.names import SAFE_CHARS, SAFE_JOB_NAME, SAFE_PATH_HELP, is_safe_path

#: ``sacct`` fields, in the order :func:`faxflow.slurm.parsers.parse_sacct` expects.
SACCT_FORMAT = "JobIDRaw,JobID,JobName,State,ExitCode,Elapsed"
#: ``squeue`` output format, in the order :func:`faxflow.slurm.parsers.parse_squeue` expects.
SQUEUE_FORMAT = "%i|%A|%j|%T|%r"
#: Most job ids put on one command line; more are split over several commands.
MAX_IDS_PER_COMMAND = 200

_JOB_ID = re.compile(r"^\d+(_\d+)?$")
_SBATCH_OPTION = re.compile(r"^[a-z][a-z0-9-]*$")


def check_job_id(job_id: str) -> str:
    """Return ``job_id`` if it is ``N`` or ``N_M``; raise ValueError otherwise."""
    text = str(job_id)
    if not _JOB_ID.match(text):
        raise ValueError(f"not a Slurm job id: {job_id!r}")
    return text


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe job/partition name from [A-Za-z0-9_.-]; raise ValueError otherwise."""
    if not isinstance(name, str) or not SAFE_JOB_NAME.match(name):
        raise ValueError(f"unsafe name {name!r} (allowed: [{SAFE_CHARS}], not starting with '.' or '-')")
    return name


def check_path(path: str) -> str:
    """Return ``path`` if it is absolute, from [A-Za-z0-9_./+-] and free of ``..``; raise ValueError otherwise."""
    if not is_safe_path(path):
        raise ValueError(f"unsafe remote path {path!r} ({SAFE_PATH_HELP})")
    return path


def _ids(job_ids: Iterable[str]) -> list[str]:
    ids = [check_job_id(job_id) for job_id in job_ids]
    if not ids:
        raise ValueError("no job ids given")
    return ids


def chunks(job_ids: Sequence[str], size: int = MAX_IDS_PER_COMMAND) -> list[list[str]]:
    """Split ids into lists short enough for one command line each."""
    return [list(job_ids[start:start + size]) for start in range(0, len(job_ids), size)]


def sbatch(script_path: str, *, options: Optional[Mapping[str, str | int]] = None) -> str:
    """``sbatch --parsable [--opt=value …] SCRIPT``; command-line options override the script's #SBATCH lines.

    :param script_path: absolute path of the job script on the cluster
    :param options: long option name (``time``, ``mem-per-cpu``) → value
    """
    parts = ["sbatch", "--parsable"]
    for key, value in (options or {}).items():
        if not _SBATCH_OPTION.match(key):
            raise ValueError(f"bad sbatch option name {key!r}")
        parts.append(f"--{key}={shlex.quote(str(value))}")
    parts.append(shlex.quote(check_path(script_path)))
    return " ".join(parts)


def sacct(job_ids: Iterable[str]) -> str:
    """One ``sacct`` for many jobs: allocation lines only, parsable, no header."""
    return (f"sacct -X -P -n --format={SACCT_FORMAT} -j "
            + shlex.quote(",".join(_ids(job_ids))))


def squeue(job_ids: Iterable[str]) -> str:
    """``squeue`` for many jobs in every state (``-t all`` keeps recently finished jobs visible)."""
    return (f"squeue -h -t all -o {shlex.quote(SQUEUE_FORMAT)} -j "
            + shlex.quote(",".join(_ids(job_ids))))


def squeue_by_name(name: str) -> str:
    """This user's jobs with the given name, in every state (for re-attaching after a lost job id)."""
    return (f"squeue -h --me -t all -o {shlex.quote(SQUEUE_FORMAT)} --name="
            + shlex.quote(check_name(name)))


def scontrol_show(job_id: Optional[str] = None) -> str:
    """``scontrol -o show job [ID]`` (one line per job; without an id: every job the controller knows)."""
    if job_id is None:
        return "scontrol -o show job"
    return "scontrol -o show job " + shlex.quote(check_job_id(job_id))


def scancel(job_ids: Iterable[str]) -> str:
    """``scancel ID …`` (exit 0 even for finished or unknown ids)."""
    return "scancel " + " ".join(shlex.quote(job_id) for job_id in _ids(job_ids))


def mkdir(*paths: str) -> str:
    """``mkdir -p -m 700`` for absolute paths (run directories are private to the cluster user)."""
    return "mkdir -p -m 700 -- " + " ".join(shlex.quote(check_path(path)) for path in paths)


def tail(path: str, lines: int = 50) -> str:
    """Last lines of a file; prints nothing (exit 0) if it does not exist."""
    quoted = shlex.quote(check_path(path))
    return f"if [ -f {quoted} ]; then tail -n {int(lines)} -- {quoted}; fi"


def cat(path: str) -> str:
    """The whole file; exit 1 if it does not exist."""
    return "cat -- " + shlex.quote(check_path(path))


def faxflow_executable(python_env: Optional[str]) -> str:
    """``<python_env>/bin/faxflow`` if an env is configured, else ``faxflow`` on PATH (quoted)."""
    if python_env:
        return shlex.quote(check_path(python_env.rstrip("/") + "/bin/faxflow"))
    return "faxflow"


def faxflow(args: Sequence[str], *, python_env: Optional[str] = None, env_setup: Sequence[str] = ()) -> str:
    """A remote ``faxflow`` call after the campaign's setup lines.

    ``env_setup`` lines (``module load python/3.11``) are shell by design: they come from the campaign
    file (validated single lines), not from trigger parameters. Arguments are quoted.

    :param args: faxflow arguments, e.g. ``["collect", "--manifest", path, "--variant", name]``
    :param python_env: venv/conda env directory holding ``bin/faxflow``
    :param env_setup: shell lines run first
    """
    for line in env_setup:
        if "\n" in line or "\r" in line or "\0" in line:
            raise ValueError(f"setup line {line!r} must be a single line")
    call = " ".join([faxflow_executable(python_env), *(shlex.quote(str(arg)) for arg in args)])
    return " && ".join([*env_setup, call]) if env_setup else call
