"""Status-poll load with many jobs in flight: commands and connections per poll interval (target: 1 and 1).

Runs N ``SlurmJobTrigger`` instances on one event loop, as the triggerer would, against an in-memory Slurm
(default) or a real login node (``--ssh-conn-id``, with jobs you submitted: ``--job-ids``). Counts the
remote commands of every poll round. Prints JSON, writes bench/results/poll.json.

    .venv/bin/python bench/bench_poll.py [--jobs 50] [--interval 0.05] [--rounds 20]
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


async def run(args) -> dict:
    import logging

    logging.getLogger("faxflow").setLevel(logging.WARNING)
    from faxflow.airflow import triggers
    from faxflow.slurm import poller
    from faxflow.slurm.fake import FakeAsyncRunner, FakeSlurm

    connects = []
    if args.ssh_conn_id:
        job_ids = args.job_ids.split(",")
        conn_id = args.ssh_conn_id
        default = triggers.connector

        def connector(ssh_conn_id, command_timeout):
            inner = default(ssh_conn_id, command_timeout)

            async def connect():
                connects.append(ssh_conn_id)
                return await inner()
            return connect
    else:
        slurm = FakeSlurm()
        job_ids = [slurm.add_job(f"ff_bench_g{i:04d}", start_after=2, run_for=args.rounds + i % 5).job_id
                   for i in range(args.jobs)]
        conn_id = "bench"

        def connector(ssh_conn_id, command_timeout):
            async def connect():
                connects.append(ssh_conn_id)
                return FakeAsyncRunner(slurm)
            return connect

    triggers.connector = connector

    async def wait(job_id):
        trigger = triggers.SlurmJobTrigger(conn_id, job_id, poll_interval=args.interval, max_bad_answers=3)
        async for event in trigger.run():
            return event.payload

    started = time.perf_counter()
    waiting = [asyncio.create_task(wait(job_id)) for job_id in job_ids]
    await asyncio.sleep(0)
    shared = next(iter(poller._POLLERS.values()))
    events = await asyncio.gather(*waiting)
    elapsed = time.perf_counter() - started
    stats = shared.stats
    per_round = stats.commands_per_round
    return {"benchmark": "poll", "jobs": len(job_ids), "interval_seconds": args.interval,
            "backend": "ssh" if args.ssh_conn_id else "fake", "rounds": stats.rounds,
            "commands_total": stats.commands, "connections": len(connects),
            "commands_per_round_max": max(per_round), "commands_per_round_mean": statistics.mean(per_round),
            "ids_per_round_max": max(stats.ids_per_round),
            "round_seconds_median": statistics.median(stats.round_times),
            "naive_commands_one_per_job_per_round": sum(stats.ids_per_round),
            "final_states": sorted({e.get("state", e["status"]) for e in events}), "elapsed_seconds": elapsed,
            "target": "1 command and 1 connection per poll interval for all jobs",
            "meets_target": max(per_round) == 1 and len(connects) == 1}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=20, help="fake jobs run for about this many polls")
    parser.add_argument("--ssh-conn-id", help="poll a real cluster through this Airflow connection")
    parser.add_argument("--job-ids", default="", help="comma-separated job ids to watch (with --ssh-conn-id)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=1))
    out = PROJECT / "bench" / "results" / "poll.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
