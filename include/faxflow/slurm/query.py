"""Status queries for many jobs at once, written once for both the sync client and the async poller.

:func:`status_query` is a generator: it yields command strings and is sent back a
:class:`CommandResult` for each, then returns a :class:`QueryOutcome`. :func:`run_query` drives it with a
sync ``run`` callable, :func:`arun_query` with an async one.

Order: one ``sacct`` for all ids (chunked only beyond 200 ids). Ids sacct does not show yet (accounting
lags by up to ~2 s) or all ids when accounting is disabled go to one ``squeue -t all``; ``scontrol`` is
asked only for the exit codes of jobs squeue shows as finished, and for ids neither knows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Optional

from faxflow.slurm import commands
from faxflow.slurm.parsers import accounting_disabled, parse_sacct, parse_scontrol, parse_squeue, statuses_for
from faxflow.slurm.states import JobStatus

#: At most this many single-job scontrol calls per query (they are the fallback of a fallback).
MAX_SCONTROL_CALLS = 20


@dataclass(frozen=True)
class CommandResult:
    """Exit status (``-1`` if killed by a signal or unknown), stdout and stderr of one remote command."""

    exit_status: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass
class QueryOutcome:
    """Statuses found (by submitted id), ids nobody knows, unparsable lines and failed commands."""

    statuses: dict[str, JobStatus] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    commands: int = 0
    sacct_available: bool = True


def status_query(job_ids: Iterable[str], *, use_sacct: bool = True
                 ) -> Generator[str, CommandResult, QueryOutcome]:
    """Yield the commands needed to learn the state of ``job_ids``; return what was learnt.

    :param job_ids: submitted job ids (plain ``12`` or array element ``12_3``)
    :param use_sacct: False once sacct said accounting is disabled (skip straight to squeue)
    """
    ids = list(dict.fromkeys(commands.check_job_id(job_id) for job_id in job_ids))
    outcome = QueryOutcome(sacct_available=use_sacct)
    if not ids:
        return outcome

    if use_sacct:
        for chunk in commands.chunks(ids):
            result = yield commands.sacct(chunk)
            outcome.commands += 1
            if not result.ok:
                if accounting_disabled(result.stderr):
                    outcome.sacct_available = False
                    break
                outcome.errors.append(f"sacct exit {result.exit_status}: {result.stderr.strip()[:300]}")
                continue
            parsed = parse_sacct(result.stdout)
            outcome.bad_lines.extend(parsed.bad_lines)
            outcome.statuses.update(statuses_for(chunk, parsed.rows))

    pending = [job_id for job_id in ids if job_id not in outcome.statuses]
    need_exit_code: list[str] = []
    if pending:
        for chunk in commands.chunks(pending):
            result = yield commands.squeue(chunk)
            outcome.commands += 1
            if not result.ok and "invalid job id" not in result.stderr.lower() + result.stdout.lower():
                outcome.errors.append(f"squeue exit {result.exit_status}: {result.stderr.strip()[:300]}")
                continue
            parsed = parse_squeue(result.stdout if result.ok else "")
            found = statuses_for(chunk, parsed.rows)
            outcome.statuses.update(found)
            need_exit_code += [job_id for job_id, status in found.items()
                               if status.state.terminal and status.exit_code is None]

    unknown = [job_id for job_id in ids if job_id not in outcome.statuses]
    for job_id in (need_exit_code + unknown)[:MAX_SCONTROL_CALLS]:
        result = yield commands.scontrol_show(job_id)
        outcome.commands += 1
        if not result.ok:
            continue  # "Invalid job id specified": purged; stays unknown
        parsed = parse_scontrol(result.stdout)
        found = statuses_for([job_id], parsed.rows)
        if job_id in found:
            outcome.statuses[job_id] = found[job_id]
        else:
            outcome.bad_lines.extend(parsed.bad_lines)

    outcome.missing = [job_id for job_id in ids if job_id not in outcome.statuses]
    return outcome


def run_query(job_ids: Iterable[str], run: Callable[[str], CommandResult], *, use_sacct: bool = True
              ) -> QueryOutcome:
    """Drive :func:`status_query` with a sync command runner."""
    generator = status_query(job_ids, use_sacct=use_sacct)
    try:
        command = next(generator)
        while True:
            command = generator.send(run(command))
    except StopIteration as stop:
        return stop.value


async def arun_query(job_ids: Iterable[str], run: Callable[[str], Awaitable[CommandResult]], *,
                     use_sacct: bool = True) -> QueryOutcome:
    """Drive :func:`status_query` with an async command runner."""
    generator = status_query(job_ids, use_sacct=use_sacct)
    try:
        command = next(generator)
        while True:
            command = generator.send(await run(command))
    except StopIteration as stop:
        return stop.value


def first_live(rows: list[JobStatus]) -> Optional[JobStatus]:
    """The newest job among ``rows`` that is still queued or running (for re-attaching by name)."""
    live = [row for row in rows if row.state.active]
    return max(live, key=lambda row: int(row.raw_id or row.array_master)) if live else None
