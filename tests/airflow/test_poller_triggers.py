"""The shared poller and the triggers, against an in-memory Slurm (no SSH)."""

import asyncio

import pytest

from faxflow.airflow import triggers
from faxflow.slurm import poller
from faxflow.slurm.fake import FakeAsyncRunner, FakeSlurm


@pytest.fixture
def fake_slurm(monkeypatch):
    slurm = FakeSlurm()
    connects = []

    def connector(ssh_conn_id, command_timeout):
        async def connect():
            connects.append(ssh_conn_id)
            return FakeAsyncRunner(slurm)
        return connect

    monkeypatch.setattr(triggers, "connector", connector)
    slurm.connects = connects
    return slurm


async def _collect(trigger):
    async for event in trigger.run():
        return event.payload


def test_fifty_jobs_one_sacct_per_poll(fake_slurm):
    jobs = [fake_slurm.add_job(f"ff_g{i:04d}", start_after=1, run_for=2 + i % 3) for i in range(50)]

    async def main():
        waits = [_collect(triggers.SlurmJobTrigger("conn", job.job_id, job.name, poll_interval=0.02))
                 for job in jobs]
        return await asyncio.gather(*waits)

    events = asyncio.run(main())
    assert all(event["status"] == "done" and event["state"] == "COMPLETED" for event in events)
    counts = fake_slurm.counts()
    assert counts == {"sacct": counts["sacct"]} and counts["sacct"] <= 6  # one query per round, for all jobs
    assert fake_slurm.connects == ["conn"]  # one connection for all triggers
    assert not poller._POLLERS  # the poller went away with its last watcher


def test_failed_job_reports_exit_code(fake_slurm):
    job = fake_slurm.add_job("ff_bad", final_state="FAILED", exit_code=3)
    event = asyncio.run(_collect(triggers.SlurmJobTrigger("conn", job.job_id, poll_interval=0.01)))
    assert (event["state"], event["exit_code"]) == ("FAILED", 3)


def test_missing_job_is_lost_after_grace(fake_slurm):
    fake_slurm.accounting = False
    event = asyncio.run(_collect(triggers.SlurmJobTrigger("conn", "4242", poll_interval=0.01,
                                                          missing_grace_seconds=0.05)))
    assert event["status"] == "lost"


def test_sacct_lag_is_not_a_failure(fake_slurm):
    fake_slurm.sacct_lag = 2
    job = fake_slurm.add_job("ff_lag", start_after=0, run_for=1)
    event = asyncio.run(_collect(triggers.SlurmJobTrigger("conn", job.job_id, poll_interval=0.01,
                                                          missing_grace_seconds=5)))
    assert event["status"] == "done"


def test_bad_answers_are_bounded(monkeypatch):
    def connector(ssh_conn_id, command_timeout):
        async def connect():
            return FakeAsyncRunner(FakeSlurm(), fail="connection reset")
        return connect

    monkeypatch.setattr(triggers, "connector", connector)
    event = asyncio.run(asyncio.wait_for(_collect(triggers.SlurmJobTrigger("conn", "7", poll_interval=0.01,
                                                                           max_bad_answers=3)), 5))
    assert event["status"] == "error" and "connection reset" in event["message"]


def test_trigger_serializes_and_on_kill_cancels(fake_slurm):
    job = fake_slurm.add_job("ff_long", run_for=10_000)
    trigger = triggers.SlurmJobTrigger("conn", job.job_id, "ff_long", poll_interval=5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "faxflow.airflow.triggers.SlurmJobTrigger"
    assert triggers.SlurmJobTrigger(**kwargs).serialize() == (classpath, kwargs)
    asyncio.run(trigger.on_kill())
    assert job.cancelled and fake_slurm.commands[-1] == f"scancel {job.job_id}"


def test_trigger_rejects_bad_job_id():
    with pytest.raises(ValueError):
        triggers.SlurmJobTrigger("conn", "1; reboot")


def test_local_trigger(tmp_path):
    from faxflow.airflow.local_jobs import kill_local_job, launch

    job = launch(["version"], log_dir=tmp_path, name="ff_local_g0000")
    trigger = triggers.LocalJobTrigger(job.exit_file, job.pid, job.heartbeat_file, "ff_local_g0000",
                                       poll_interval=0.05, max_wait_seconds=60,
                                       log_paths={"stdout": job.stdout})
    event = asyncio.run(_collect(trigger))
    assert event["status"] == "done" and event["state"] == "COMPLETED" and event["logs_streamed"]
    assert open(job.stdout).read().strip()
    kill_local_job(job.pid, job.exit_file)  # already gone: no error


def _local_trigger(tmp_path, **kwargs):
    exit_file, heartbeat = tmp_path / "job.exit", tmp_path / "job.heartbeat"
    heartbeat.touch()
    # a pid no process here has: liveness must come from the files alone (another PID namespace)
    trigger = triggers.LocalJobTrigger(str(exit_file), 4_000_000, str(heartbeat), "ff_ns_g0000",
                                       poll_interval=0.05, max_wait_seconds=30, **kwargs)
    return trigger, exit_file, heartbeat


def test_local_job_in_another_pid_namespace_is_not_lost(tmp_path):
    import threading
    import time

    trigger, exit_file, heartbeat = _local_trigger(tmp_path)

    def job():
        for _ in range(10):
            heartbeat.touch()
            time.sleep(0.1)
        exit_file.write_text("0\n")

    threading.Thread(target=job).start()
    event = asyncio.run(_collect(trigger))
    assert event["status"] == "done" and event["state"] == "COMPLETED"


def test_local_job_with_a_stale_heartbeat_is_lost(tmp_path):
    import os

    trigger, _, heartbeat = _local_trigger(tmp_path)
    old = os.stat(heartbeat).st_mtime - 3600
    os.utime(heartbeat, (old, old))
    event = asyncio.run(_collect(trigger))
    assert event["status"] == "lost" and "heartbeat" in event["message"]


def test_job_log_lines_reach_the_task_log_while_it_runs_once(tmp_path):
    import threading
    import time

    from structlog.testing import capture_logs

    log = tmp_path / "job.out"
    log.write_text("")
    trigger, exit_file, heartbeat = _local_trigger(tmp_path, log_paths={"stdout": str(log)})
    seen_before_end = []

    def lines(captured):
        return [str(entry.get("event")) for entry in captured if "[job ff_ns_g0000 stdout]" in str(entry.get("event"))]

    with capture_logs() as captured:
        def job():
            with open(log, "a") as out:
                for number in range(3):
                    out.write(f'FAXFLOW_PROGRESS {{"group": 0, "done": {number + 1}, "total": 3}}\n')
                    out.flush()
                    time.sleep(0.3)
            seen_before_end.extend(lines(captured))
            with open(log, "a") as out:
                out.write("last line without newline")
            exit_file.write_text("0\n")

        threading.Thread(target=job).start()
        event = asyncio.run(_collect(trigger))
    assert event["logs_streamed"]
    assert len(seen_before_end) >= 2  # progress shown while the job was still running
    assert [line.split("] ", 1)[1] for line in lines(captured)] == [
        'FAXFLOW_PROGRESS {"group": 0, "done": 1, "total": 3}', 'FAXFLOW_PROGRESS {"group": 0, "done": 2, "total": 3}',
        'FAXFLOW_PROGRESS {"group": 0, "done": 3, "total": 3}', "last line without newline"]  # each once


def test_kill_refuses_a_pid_that_is_not_the_jobs_wrapper(tmp_path):
    import subprocess

    from faxflow.airflow.local_jobs import kill_local_job

    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        kill_local_job(other.pid, str(tmp_path / "some.exit"))
        assert other.poll() is None  # same pid number, but not our job: left alone
    finally:
        other.kill()
        other.wait()
