"""Parsers for what ``sbatch``, ``sacct``, ``squeue`` and ``scontrol`` print.

Every parser is total: malformed lines are collected in ``bad_lines`` rather than raising, so a poller can
count bad answers and give up after a bound instead of crashing or spinning forever.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Optional

from faxflow.slurm.states import JobState, JobStatus, fold, normalize_state, parse_exit_code

#: Field order of :data:`faxflow.slurm.commands.SACCT_FORMAT`.
SACCT_FIELDS = ("JobIDRaw", "JobID", "JobName", "State", "ExitCode", "Elapsed")
#: Field order of :data:`faxflow.slurm.commands.SQUEUE_FORMAT` (``%i|%A|%j|%T|%r``).
SQUEUE_FIELDS = ("JobID", "JobIDRaw", "JobName", "State", "Reason")

_JOB_ID = re.compile(r"^\d+(_(\d+|\[[0-9,\-%]+\]))?(\+\d+)?$")
_SBATCH_ID = re.compile(r"^(\d+)(?:;([A-Za-z0-9_.-]+))?$")
_SCONTROL_TOKEN = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=(.*?)(?=\s+[A-Za-z][A-Za-z0-9_:/]*=|\s*$)")


class SlurmParseError(ValueError):
    """A Slurm command answered something we cannot use at all (e.g. sbatch printed no job id)."""


@dataclass
class ParseResult:
    """Rows that parsed, plus the lines that did not (kept for the log and for bad-answer counting)."""

    rows: list[JobStatus] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Submission:
    """What ``sbatch --parsable`` printed: ``id`` or ``id;cluster``."""

    job_id: str
    cluster: Optional[str] = None


def parse_sbatch(stdout: str) -> Submission:
    """Parse ``sbatch --parsable`` output.

    :param stdout: the command's stdout; the id is on the last non-empty line (``\\r`` from a PTY is ignored)
    :raises SlurmParseError: if no line is a job id
    """
    lines = [line.strip() for line in (stdout or "").replace("\r", "").splitlines() if line.strip()]
    for line in reversed(lines):
        match = _SBATCH_ID.match(line)
        if match:
            return Submission(job_id=match.group(1), cluster=match.group(2))
    raise SlurmParseError(f"sbatch printed no job id: {stdout!r:.200}")


def _valid_job_id(text: str) -> bool:
    return bool(_JOB_ID.match(text))


def parse_sacct(stdout: str) -> ParseResult:
    """Parse ``sacct -X -P -n --format=JobIDRaw,JobID,JobName,State,ExitCode,Elapsed``.

    Handles array elements (``15|12_3|…``), pending array ranges (``12|12_[4-9]|…``),
    ``CANCELLED by 123`` and job names containing ``|`` (the name is whatever sits between the fixed
    leading and trailing fields).
    """
    result = ParseResult()
    for line in (stdout or "").replace("\r", "").splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < len(SACCT_FIELDS):
            result.bad_lines.append(line)
            continue
        raw_id, job_id = parts[0].strip(), parts[1].strip()
        state_text, exit_text, elapsed = parts[-3], parts[-2], parts[-1]
        name = "|".join(parts[2:-3])
        if not (_valid_job_id(job_id) and _valid_job_id(raw_id)):
            result.bad_lines.append(line)
            continue
        state, by = normalize_state(state_text)
        if state is JobState.UNKNOWN:
            result.bad_lines.append(line)
            continue
        code, signal = parse_exit_code(exit_text)
        result.rows.append(JobStatus(job_id=job_id, raw_id=raw_id, name=name, state=state, exit_code=code,
                                     signal=signal, elapsed=elapsed.strip(), cancelled_by=by, source="sacct"))
    return result


def parse_squeue(stdout: str) -> ParseResult:
    """Parse ``squeue -h -t all -o '%i|%A|%j|%T|%r'``.

    squeue reports no exit code; a FAILED row therefore has ``exit_code=None`` (ask scontrol for it).
    """
    result = ParseResult()
    for line in (stdout or "").replace("\r", "").splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < len(SQUEUE_FIELDS):
            result.bad_lines.append(line)
            continue
        job_id, raw_id = parts[0].strip(), parts[1].strip()
        state_text, reason = parts[-2], parts[-1]
        name = "|".join(parts[2:-2])
        state, by = normalize_state(state_text)
        if not (_valid_job_id(job_id) and _valid_job_id(raw_id)) or state is JobState.UNKNOWN:
            result.bad_lines.append(line)
            continue
        result.rows.append(JobStatus(job_id=job_id, raw_id=raw_id, name=name, state=state,
                                     reason=reason.strip(), cancelled_by=by, source="squeue"))
    return result


def parse_scontrol_fields(line: str) -> dict[str, str]:
    """``Key=Value Key2=Value with spaces …`` (one ``scontrol -o`` line) → dict."""
    return {match.group(1): match.group(2) for match in _SCONTROL_TOKEN.finditer(line.strip())}


def parse_scontrol(stdout: str) -> ParseResult:
    """Parse ``scontrol -o show job [ID]``: one line per job (array elements are separate lines).

    Lines such as ``slurm_load_jobs error: Invalid job id specified`` or ``No jobs in the system`` are
    reported as bad lines, which callers treat as "not known to the controller".
    """
    result = ParseResult()
    for line in (stdout or "").replace("\r", "").splitlines():
        if not line.strip():
            continue
        fields = parse_scontrol_fields(line)
        raw_id = fields.get("JobId", "")
        state, by = normalize_state(fields.get("JobState", ""))
        if not _valid_job_id(raw_id) or state is JobState.UNKNOWN:
            result.bad_lines.append(line)
            continue
        array_id, task_id = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        job_id = f"{array_id}_{task_id}" if array_id and task_id and task_id != "N/A" else raw_id
        if task_id and task_id.startswith("["):
            job_id = f"{array_id}_{task_id}"
        code, signal = parse_exit_code(fields.get("ExitCode", ""))
        result.rows.append(JobStatus(job_id=job_id, raw_id=raw_id, name=fields.get("JobName", ""), state=state,
                                     exit_code=code, signal=signal, elapsed=fields.get("RunTime", ""),
                                     reason=fields.get("Reason", ""), cancelled_by=by, source="scontrol"))
    return result


def statuses_for(job_ids: Iterable[str], rows: list[JobStatus]) -> dict[str, JobStatus]:
    """Map each submitted id to one folded :class:`JobStatus`; ids with no row are left out (unknown).

    A row belongs to an id when the id equals its ``job_id``, its ``raw_id`` or its array master
    (``12`` owns ``12_3`` and ``12_[4-9]``). Repeated rows for one job id (requeues) keep the last.
    """
    found: dict[str, JobStatus] = {}
    for job_id in job_ids:
        mine: dict[str, JobStatus] = {}
        for row in rows:
            if job_id in (row.job_id, row.raw_id, row.array_master):
                mine[row.job_id] = row
        if mine:
            found[job_id] = fold(job_id, list(mine.values()))
    return found


def accounting_disabled(stderr: str) -> bool:
    """True when sacct says accounting is off (then poll with squeue/scontrol instead)."""
    text = (stderr or "").lower()
    return "accounting storage is disabled" in text or "slurmdbd" in text and "connection" in text
