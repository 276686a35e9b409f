"""What to do when a group's job ends: succeed, retry (maybe with more time or memory) or fail fast.

The decision depends on the terminal Slurm state and, for FAILED, on the faxflow exit code
(:mod:`faxflow.errors`, where each failure class carries its retry decision): config, bad input and
validation errors fail fast; engine and I/O errors and unknown codes are retried; running out of
memory is retried with more memory.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

from faxflow.errors import MORE_MEMORY, NEVER, failure_class
from faxflow.slurm.states import JobState

#: Extra state the poller reports when a job vanished from every Slurm view for too long.
LOST = "LOST"


class Action(str, enum.Enum):
    SUCCEED = "succeed"
    RETRY = "retry"
    RETRY_MORE_TIME = "retry_more_time"
    RETRY_MORE_MEMORY = "retry_more_memory"
    FAIL = "fail"

    @property
    def retries(self) -> bool:
        return self in (Action.RETRY, Action.RETRY_MORE_TIME, Action.RETRY_MORE_MEMORY)


@dataclass(frozen=True)
class Resources:
    """The per-job resources a retry may raise, with their bounds.

    :param time_limit_minutes: current ``--time`` in minutes
    :param mem_per_cpu_mb: current ``--mem-per-cpu`` in MB
    :param max_time_limit_minutes: never ask for more than this
    :param max_mem_per_cpu_mb: never ask for more than this
    :param growth: multiplier applied on TIMEOUT / OUT_OF_MEMORY
    """

    time_limit_minutes: int
    mem_per_cpu_mb: int
    max_time_limit_minutes: int
    max_mem_per_cpu_mb: int
    growth: float = 2.0


@dataclass(frozen=True)
class Decision:
    """The outcome: an action, a human-readable reason and the resources for the next attempt."""

    action: Action
    reason: str
    time_limit_minutes: Optional[int] = None
    mem_per_cpu_mb: Optional[int] = None


def _grow(current: int, bound: int, growth: float) -> Optional[int]:
    if current >= bound:
        return None
    return min(bound, max(current + 1, int(round(current * growth))))


def decide(state: str | JobState, exit_code: Optional[int], resources: Resources,
           signal: Optional[int] = None) -> Decision:
    """Classify a finished job.

    :param state: terminal :class:`JobState` (or its name), or :data:`LOST`
    :param exit_code: the job's exit code if known
    :param resources: the resources the job ran with and their bounds
    :param signal: the signal part of Slurm's ``ExitCode`` (``0:9`` → 9)
    """
    name = state.value if isinstance(state, JobState) else str(state)
    keep = {"time_limit_minutes": resources.time_limit_minutes, "mem_per_cpu_mb": resources.mem_per_cpu_mb}
    if name == JobState.COMPLETED.value and not exit_code:
        return Decision(Action.SUCCEED, "job completed", **keep)
    if name == JobState.TIMEOUT.value:
        more = _grow(resources.time_limit_minutes, resources.max_time_limit_minutes, resources.growth)
        if more is None:
            return Decision(Action.FAIL, f"TIMEOUT at the maximum time limit "
                                         f"({resources.max_time_limit_minutes} min); split the group "
                                         "(fewer productions_per_job) or raise max_time_limit_minutes", **keep)
        return Decision(Action.RETRY_MORE_TIME, f"TIMEOUT after {resources.time_limit_minutes} min; "
                                                f"retrying with {more} min", more, resources.mem_per_cpu_mb)
    failure = failure_class(exit_code) if name in (JobState.FAILED.value, JobState.COMPLETED.value,
                                                   JobState.SPECIAL_EXIT.value) else None
    if name == JobState.OUT_OF_MEMORY.value or failure is not None and failure.retry == MORE_MEMORY:
        what = f"faxflow {failure.label} error (exit code {exit_code})" if failure else "OUT_OF_MEMORY"
        more = _grow(resources.mem_per_cpu_mb, resources.max_mem_per_cpu_mb, resources.growth)
        if more is None:
            return Decision(Action.FAIL, f"{what} at the maximum memory "
                                         f"({resources.max_mem_per_cpu_mb} MB per CPU)", **keep)
        return Decision(Action.RETRY_MORE_MEMORY, f"{what} with {resources.mem_per_cpu_mb} MB per CPU; "
                                                  f"retrying with {more} MB", resources.time_limit_minutes, more)
    if name in (JobState.NODE_FAIL.value, JobState.PREEMPTED.value, JobState.BOOT_FAIL.value,
                JobState.REQUEUED.value, LOST):
        return Decision(Action.RETRY, f"{name}: transient cluster problem, resubmitting", **keep)
    if name in (JobState.FAILED.value, JobState.COMPLETED.value, JobState.SPECIAL_EXIT.value):
        if failure is not None and failure.retry == NEVER:
            return Decision(Action.FAIL, f"faxflow {failure.label} error (exit code {exit_code}); retrying cannot help",
                            **keep)
        if failure is not None:
            return Decision(Action.RETRY, f"faxflow {failure.label} error (exit code {exit_code}); retrying", **keep)
        detail = f"exit code {exit_code}" if exit_code is not None else "unknown exit code"
        if signal:
            detail += f", signal {signal}"
        return Decision(Action.RETRY, f"job failed ({detail}); retrying", **keep)
    if name == JobState.CANCELLED.value:
        return Decision(Action.FAIL, "job was cancelled outside this task (scancel); not resubmitting", **keep)
    if name in (JobState.DEADLINE.value, JobState.REVOKED.value):
        return Decision(Action.FAIL, f"{name}: the job can no longer run", **keep)
    return Decision(Action.RETRY, f"unexpected final state {name}; retrying", **keep)
