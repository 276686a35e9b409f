"""The triggerer's event loop never blocks: a Slurm trigger run in a fresh interpreter (nothing imported
yet, as in a new triggerer) under asyncio debug mode with a 0.2 s slow-callback threshold, against the
real sshd and Slurm of the sandbox, while it copies a running job's log, logs no slow callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .test_campaign_support import PROJECT, airflow_ready, cluster_env, unique  # noqa: F401 - fixtures used as test arguments

pytestmark = pytest.mark.cluster

PROBE = r"""
import asyncio, json, logging, sys
from faxflow.airflow.triggers import SlurmJobTrigger

slow = []

class Slow(logging.Handler):
    def emit(self, record):
        message = record.getMessage()
        if "took" in message and "seconds" in message:
            slow.append(message)

logging.getLogger("asyncio").addHandler(Slow())
logging.getLogger("asyncio").setLevel(logging.WARNING)
conn, job_id, log_path = sys.argv[1:4]

async def main():
    asyncio.get_running_loop().slow_callback_duration = 0.2
    trigger = SlurmJobTrigger(ssh_conn_id=conn, job_id=job_id, poll_interval=0.5, command_timeout=30,
                              log_paths={"stdout": log_path})
    async for event in trigger.run():
        return event.payload

payload = asyncio.run(main(), debug=True)
print("RESULT " + json.dumps({"payload": payload, "slow": slow}))
"""


def test_trigger_never_blocks_the_event_loop(cluster_env):
    sandbox = cluster_env
    conn = "faxflow_cluster"
    log = f"{sandbox.remote_root}/{unique('loop')}_%j.out"
    job = sandbox.sbatch(f"--output={log}", wrap="for i in 1 2 3 4; do echo FAXFLOW_PROGRESS $i; sleep 1; done",
                         name=unique("loop"))
    env = {**os.environ, f"AIRFLOW_CONN_{conn.upper()}": sandbox.airflow_connection_json()}
    done = subprocess.run([sys.executable, "-c", PROBE, conn, job, log.replace("%j", job)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=PROJECT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["payload"]["state"] == "COMPLETED", result
    assert result["slow"] == [], result["slow"]
