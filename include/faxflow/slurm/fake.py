"""An in-memory stand-in for a Slurm login node, for unit tests and ``bench/bench_poll.py``.

It understands the exact command strings :mod:`faxflow.slurm.commands` builds (sbatch, sacct, squeue,
scontrol, scancel) and answers in real Slurm formats. Each job becomes RUNNING after ``start_after``
status queries and ends (with its scripted final state) after ``run_for`` more.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Optional

from faxflow.slurm.query import CommandResult


@dataclass
class FakeJob:
    job_id: str
    name: str
    final_state: str = "COMPLETED"
    exit_code: int = 0
    start_after: int = 1
    run_for: int = 2
    polls: int = 0
    cancelled: bool = False
    sbatch_options: dict = field(default_factory=dict)

    @property
    def state(self) -> str:
        if self.cancelled:
            return "CANCELLED by 0"
        if self.polls < self.start_after:
            return "PENDING"
        if self.polls < self.start_after + self.run_for:
            return "RUNNING"
        return self.final_state


class FakeSlurm:
    """Answers Slurm commands; records every command it was sent.

    :param accounting: False → sacct fails like a cluster without slurmdbd
    :param sacct_lag: sacct omits a job for this many of its first polls
    """

    def __init__(self, *, accounting: bool = True, sacct_lag: int = 0):
        self.jobs: dict[str, FakeJob] = {}
        self.commands: list[str] = []
        self.accounting = accounting
        self.sacct_lag = sacct_lag
        self.next_id = 100
        self.script: dict[str, tuple[str, int]] = {}

    def add_job(self, name: str, final_state: str = "COMPLETED", exit_code: int = 0, **kwargs) -> FakeJob:
        job = FakeJob(str(self.next_id), name, final_state, exit_code, **kwargs)
        self.next_id += 1
        self.jobs[job.job_id] = job
        return job

    def _ids(self, text: str) -> list[str]:
        return [item for item in text.split(",") if item]

    def run(self, command: str) -> CommandResult:
        self.commands.append(command)
        words = shlex.split(command)
        tool = words[0]
        if tool == "sbatch":
            options = dict(word[2:].split("=", 1) for word in words[1:-1] if "=" in word)
            final, code = self.script.get(words[-1], ("COMPLETED", 0))
            job = self.add_job(words[-1].rsplit("/", 1)[-1].removesuffix(".sh"), final, code)
            job.sbatch_options = options
            return CommandResult(0, f"{job.job_id}\n")
        if tool == "sacct":
            if not self.accounting:
                return CommandResult(1, "", "sacct: error: Slurm accounting storage is disabled")
            lines = []
            for job_id in self._ids(words[words.index("-j") + 1]):
                job = self.jobs.get(job_id)
                if job is None:
                    continue
                job.polls += 1
                if job.polls <= self.sacct_lag:
                    continue
                code = job.exit_code if job.state == "FAILED" else 0
                lines.append(f"{job.job_id}|{job.job_id}|{job.name}|{job.state}|{code}:0|00:00:01")
            return CommandResult(0, "\n".join(lines) + ("\n" if lines else ""))
        if tool == "squeue":
            if "--name" in command:
                name = next(word.split("=", 1)[1] for word in words if word.startswith("--name="))
                rows = [job for job in self.jobs.values() if job.name == name]
            else:
                rows = [self.jobs[i] for i in self._ids(words[words.index("-j") + 1]) if i in self.jobs]
                for job in rows:
                    job.polls += 1
            return CommandResult(0, "".join(f"{j.job_id}|{j.job_id}|{j.name}|{j.state.split()[0]}|None\n"
                                            for j in rows))
        if tool == "scontrol":
            job = self.jobs.get(words[-1])
            if job is None:
                return CommandResult(1, "", "slurm_load_jobs error: Invalid job id specified")
            code = job.exit_code if job.state == "FAILED" else 0
            return CommandResult(0, f"JobId={job.job_id} JobName={job.name} JobState={job.state.split()[0]} "
                                    f"Reason=None ExitCode={code}:0 RunTime=00:00:01\n")
        if tool == "scancel":
            for job_id in words[1:]:
                if job_id in self.jobs:
                    self.jobs[job_id].cancelled = True
            return CommandResult(0)
        return CommandResult(0)

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for command in self.commands:
            tool = command.split()[0]
            totals[tool] = totals.get(tool, 0) + 1
        return totals


class FakeAsyncRunner:
    """:class:`~faxflow.slurm.poller.AsyncRunner` over a :class:`FakeSlurm` (optionally failing)."""

    def __init__(self, slurm: FakeSlurm, fail: Optional[str] = None):
        self.slurm = slurm
        self.fail = fail
        self.closed = False

    async def run(self, command: str) -> CommandResult:
        if self.fail:
            raise ConnectionError(self.fail)
        return self.slurm.run(command)

    async def close(self) -> None:
        self.closed = True
