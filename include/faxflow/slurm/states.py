"""Slurm job states, typed, plus the classification of terminal states.

State names are those printed by ``sacct -P``, ``squeue -o %T`` and ``scontrol show job``.
``sacct`` decorates some (``CANCELLED by 1234``); :func:`normalize_state` strips that.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Optional


class JobState(str, enum.Enum):
    """Every state Slurm reports, plus ``UNKNOWN`` for text we do not recognise."""

    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    SUSPENDED = "SUSPENDED"
    STOPPED = "STOPPED"
    SIGNALING = "SIGNALING"
    STAGE_OUT = "STAGE_OUT"
    RESIZING = "RESIZING"
    REQUEUED = "REQUEUED"
    REQUEUE_HOLD = "REQUEUE_HOLD"
    REQUEUE_FED = "REQUEUE_FED"
    RESV_DEL_HOLD = "RESV_DEL_HOLD"
    SPECIAL_EXIT = "SPECIAL_EXIT"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    REVOKED = "REVOKED"
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def active(self) -> bool:
        """Still queued or running (the job may yet finish by itself)."""
        return self not in TERMINAL_STATES and self is not JobState.UNKNOWN


#: States after which the job will not run again by itself.
TERMINAL_STATES = frozenset({
    JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.OUT_OF_MEMORY,
    JobState.NODE_FAIL, JobState.PREEMPTED, JobState.BOOT_FAIL, JobState.DEADLINE, JobState.REVOKED,
    JobState.SPECIAL_EXIT,
})

#: sacct short forms (``sacct`` without ``-P`` may print these).
_ABBREVIATIONS = {
    "PD": JobState.PENDING, "R": JobState.RUNNING, "CG": JobState.COMPLETING, "CD": JobState.COMPLETED,
    "F": JobState.FAILED, "CA": JobState.CANCELLED, "TO": JobState.TIMEOUT, "OOM": JobState.OUT_OF_MEMORY,
    "NF": JobState.NODE_FAIL, "PR": JobState.PREEMPTED, "BF": JobState.BOOT_FAIL, "DL": JobState.DEADLINE,
    "S": JobState.SUSPENDED, "CF": JobState.CONFIGURING, "RQ": JobState.REQUEUED, "RV": JobState.REVOKED,
    "SE": JobState.SPECIAL_EXIT, "ST": JobState.STOPPED, "SO": JobState.STAGE_OUT, "RS": JobState.RESIZING,
    "RH": JobState.REQUEUE_HOLD, "RF": JobState.REQUEUE_FED, "SI": JobState.SIGNALING,
}


def normalize_state(text: str) -> tuple[JobState, Optional[str]]:
    """``"CANCELLED by 123"`` → ``(CANCELLED, "123")``; ``"RUNNING+"`` → ``RUNNING``; junk → ``UNKNOWN``.

    :param text: one state field as printed by sacct, squeue or scontrol
    :return: the state and, for cancellations, the uid that cancelled (else None)
    """
    words = (text or "").strip().split()
    if not words:
        return JobState.UNKNOWN, None
    word = words[0].rstrip("+").upper()
    by = words[2] if len(words) >= 3 and words[1].lower() == "by" else None
    try:
        return JobState(word), by
    except ValueError:
        return _ABBREVIATIONS.get(word, JobState.UNKNOWN), by


def parse_exit_code(text: str) -> tuple[Optional[int], Optional[int]]:
    """``"2:0"`` → ``(2, 0)`` (exit code, signal); missing or malformed → ``(None, None)``."""
    parts = (text or "").strip().split(":")
    try:
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
        if len(parts) == 1 and parts[0]:
            return int(parts[0]), 0
    except ValueError:
        pass
    return None, None


@dataclass(frozen=True)
class JobStatus:
    """One job (or one array element) as reported by Slurm.

    :param job_id: the id as shown (``12``, ``12_3``, ``12_[4-9]``)
    :param raw_id: the numeric id (``JobIDRaw``/``%A``/``JobId``); equals ``job_id`` for plain jobs
    :param name: job name, if the source reports it
    :param state: typed state
    :param exit_code: the job's exit code (``None`` if unknown)
    :param signal: the signal that ended it (``0`` if none)
    :param elapsed: run time as printed (``00:01:02``)
    :param reason: scheduler reason (``Priority``, ``NonZeroExitCode``), if reported
    :param cancelled_by: uid from ``CANCELLED by N``
    :param source: which command produced this status (sacct, squeue, scontrol)
    """

    job_id: str
    state: JobState
    raw_id: str = ""
    name: str = ""
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    elapsed: str = ""
    reason: str = ""
    cancelled_by: Optional[str] = None
    source: str = ""
    elements: tuple[str, ...] = field(default_factory=tuple)

    @property
    def array_master(self) -> str:
        """The id a user submits/cancels: ``12`` for ``12_3`` and ``12_[4-9]``."""
        return self.job_id.split("_", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["elements"] = list(self.elements)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobStatus:
        data = dict(data)
        data["state"] = JobState(data.get("state", "UNKNOWN"))
        data["elements"] = tuple(data.get("elements") or ())
        return cls(**data)


#: How bad each terminal state is, for folding array elements into one status (higher wins).
_SEVERITY = {
    JobState.COMPLETED: 0, JobState.PREEMPTED: 1, JobState.NODE_FAIL: 2, JobState.BOOT_FAIL: 2,
    JobState.TIMEOUT: 3, JobState.OUT_OF_MEMORY: 4, JobState.FAILED: 5, JobState.SPECIAL_EXIT: 5,
    JobState.DEADLINE: 6, JobState.REVOKED: 6, JobState.CANCELLED: 7,
}


def fold(job_id: str, rows: list[JobStatus]) -> JobStatus:
    """Fold the rows of one submitted job (an array's elements, or a single row) into one status.

    Any element still active → the job is active (RUNNING if any runs, else PENDING-like); once all are
    terminal, the worst terminal state wins and carries its exit code.

    :param job_id: the submitted (master) id
    :param rows: all rows whose :attr:`JobStatus.array_master` or ``raw_id`` is ``job_id``
    """
    if not rows:
        return JobStatus(job_id=job_id, state=JobState.UNKNOWN)
    if len(rows) == 1 and rows[0].job_id == job_id:
        return rows[0]
    elements = tuple(sorted(row.job_id for row in rows))
    active = [row for row in rows if not row.state.terminal]
    if active:
        running = [row for row in active if row.state is JobState.RUNNING]
        pick = running[0] if running else active[0]
    else:
        pick = max(rows, key=lambda row: (_SEVERITY.get(row.state, 5), row.exit_code or 0))
    return JobStatus(job_id=job_id, state=pick.state, raw_id=job_id, name=pick.name, exit_code=pick.exit_code,
                     signal=pick.signal, elapsed=pick.elapsed, reason=pick.reason,
                     cancelled_by=pick.cancelled_by, source=pick.source, elements=elements)
