"""Overhead of the real Slurm backend (sbatch/sacct over SSH) against the local backend, same work.

Starts a real single-node Slurm sandbox (tests/cluster/harness.py, SANDBOX_CPUS=8, slurmdbd; needs root)
and runs one campaign of ``--productions`` productions × ``--events`` events (builtin engine, one
production per group) twice, with the same parallelism (``--parallel`` groups in flight, as a pool of that
size would allow):

* slurm: plan + prepare (SSH/SFTP) → every group through ``FaxflowGroupOperator.execute`` (sbatch over
  SSH, defer) → its ``SlurmJobTrigger`` (all triggers on one asyncio loop share one poller, exactly as in
  the triggerer) → ``execute_complete`` → collect;
* local: the same with the local backend (``faxflow job`` subprocesses, ``LocalJobTrigger``).

Scheduler latency is left out on purpose (it is the same for both backends). Every remote command
faxflow issues is counted by its first word (sbatch, sacct, squeue, scontrol, scancel, …) by wrapping
the sync client and the async runner. Prints JSON and writes bench/results/cluster.json.

    sudo .venv/bin/python bench/bench_cluster.py [--productions 200] [--events 20] [--parallel 8]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
_home = Path(tempfile.mkdtemp(prefix="faxflow-bench-cluster-airflow-"))
os.environ.update({"AIRFLOW_HOME": str(_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                   "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"), "FAXFLOW_PROJECT_ROOT": str(PROJECT)})

import yaml  # noqa: E402 - after the environment / sys.path set-up above

from tests.cluster.conftest import sandbox_kwargs  # noqa: E402 - after the environment / sys.path set-up above
from tests.cluster.harness import SlurmSandbox  # noqa: E402 - after the environment / sys.path set-up above

COMMANDS: collections.Counter = collections.Counter()


def _count(command: str) -> None:
    if command.startswith("if [ -f"):
        COMMANDS["tail"] += 1
        return
    words = command.split("&&")[-1].split()
    word = words[0] if words else "?"
    if word.endswith("/faxflow"):
        word = "faxflow " + (words[1] if len(words) > 1 else "")
    COMMANDS[word] += 1


def instrument() -> None:
    from faxflow.slurm import client, poller

    original_run = client.SlurmClient.run

    def run(self, command, **kwargs):
        _count(command)
        return original_run(self, command, **kwargs)

    client.SlurmClient.run = run
    original_async = poller.AsyncSSHRunner.run

    async def arun(self, command):
        _count(command)
        return await original_async(self, command)

    poller.AsyncSSHRunner.run = arun


class Store(dict):
    def set(self, key, value):
        self[key] = value


def campaign_file(directory: Path, name: str, backend: str, sandbox: SlurmSandbox, args) -> Path:
    config = yaml.safe_load((PROJECT / "tests/cluster/campaigns/tiny.yaml").read_text())
    config.update(name=name, number_job=args.productions, number_event_per_job=args.events,
                  output_root=str(directory / "local"))
    config["variants"] = [{"name": "bench", "physics": {"diffusion_constant_cm2_per_s": 22.8}}]
    config["cluster"].update(backend=backend, ssh_conn_id="faxflow_bench", remote_root=f"{sandbox.remote_root}/{name}",
                             python_env=str(Path(sandbox.python).parent.parent), productions_per_job=1,
                             max_concurrent_jobs=args.parallel, pool="bench", poll_interval_seconds=args.poll,
                             time_limit_minutes=30)
    path = directory / f"{name}_{backend}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def run_groups(specs, cluster, parallel: int) -> list[dict]:
    from airflow.sdk.exceptions import TaskDeferred

    from faxflow.airflow.operators import FaxflowGroupOperator

    slots = asyncio.Semaphore(parallel)

    async def one(spec):
        async with slots:  # the pool: a slot is held from submission to the end of the deferred wait
            op = FaxflowGroupOperator(task_id="run", spec=spec, cluster=cluster)
            context = {"ti": None, "task_state_store": Store()}
            try:
                await asyncio.to_thread(op.execute, context)
                raise RuntimeError("operator did not defer")
            except TaskDeferred as deferred:
                trigger = deferred.trigger
            async for event in trigger.run():
                payload = event.payload
                break
            return await asyncio.to_thread(op.execute_complete, context, payload)

    return await asyncio.gather(*(one(spec) for spec in specs))


def one_backend(backend: str, name: str, directory: Path, sandbox: SlurmSandbox, args) -> dict:
    from faxflow.airflow import tasks
    from faxflow.config import load_campaign

    path = campaign_file(directory, name, backend, sandbox, args)
    before = collections.Counter(COMMANDS)
    started = time.monotonic()
    plan_info = tasks.plan_campaign(str(path), f"bench_{backend}", {})
    cluster = load_campaign(path).variant("bench").settings["cluster"]
    specs = tasks.prepare_variant(plan_info, "bench", cluster)
    prepared = time.monotonic()
    results = asyncio.run(run_groups(specs, cluster, args.parallel))
    ran = time.monotonic()
    summary = tasks.collect_variant(plan_info, "bench", cluster, specs)
    finished = time.monotonic()
    used = COMMANDS - before
    assert len(results) == len(specs) and summary["events_out"] == args.productions * args.events, summary
    return {"backend": backend, "jobs": len(specs), "wall_s": round(finished - started, 2),
            "prepare_s": round(prepared - started, 2), "groups_s": round(ran - prepared, 2),
            "collect_s": round(finished - ran, 2), "commands": dict(used)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--productions", type=int, default=200)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--poll", type=float, default=1.0, help="poll interval (s) of both triggers")
    parser.add_argument("--output", default=str(PROJECT / "bench/results/cluster.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_cluster needs root (it starts a Slurm sandbox)", file=sys.stderr)
        return 2

    kwargs = sandbox_kwargs("faxflow-bench-cluster-")
    sandbox = SlurmSandbox(**kwargs, cpus=8)
    sandbox.start()
    try:
        os.environ["AIRFLOW_CONN_FAXFLOW_BENCH"] = sandbox.airflow_connection_json()
        instrument()
        directory = Path(tempfile.mkdtemp(prefix="faxflow-bench-cluster-"))
        name = f"bench{uuid.uuid4().hex[:6]}"
        # warm-up, not measured: the builtin engine's numba cache of the sandbox user (a fresh user: cold
        # cache; the project's __pycache__ is not theirs to write) and of this user
        warm = argparse.Namespace(**{**vars(args), "productions": 1, "events": 5})
        for backend in ("slurm", "local"):
            one_backend(backend, f"warm{uuid.uuid4().hex[:6]}", directory, sandbox, warm)
        COMMANDS.clear()
        local = one_backend("local", name, directory, sandbox, args)
        slurm = one_backend("slurm", name, directory, sandbox, args)
    finally:
        sandbox.stop()
    per_job = {word: round(count / slurm["jobs"], 3) for word, count in sorted(slurm["commands"].items())}
    slurm_words = ("sbatch", "sacct", "squeue", "scontrol", "scancel")
    result = {
        "productions": args.productions, "events_per_production": args.events, "parallel": args.parallel,
        "poll_interval_s": args.poll, "cpus": 8, "host_cpus": os.cpu_count(),
        "local": local, "slurm": slurm,
        "overhead_ratio_total": round(slurm["wall_s"] / local["wall_s"], 3),
        "overhead_ratio_groups": round(slurm["groups_s"] / local["groups_s"], 3),
        "target_ratio": 1.25,
        "slurm_commands_per_job": round(sum(slurm["commands"].get(w, 0) for w in slurm_words) / slurm["jobs"], 3),
        "remote_commands_per_job_by_kind": per_job,
        "command": "sudo .venv/bin/python bench/bench_cluster.py " + " ".join(sys.argv[1:]),
    }
    text = json.dumps(result, indent=1, sort_keys=True)
    print(text)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
