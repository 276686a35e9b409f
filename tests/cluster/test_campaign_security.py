"""Tests 9 and 10: host-key pinning through faxflow's own SSH code, and shell-metacharacter names
rejected by validation before anything reaches a shell."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest

from .test_campaign_support import Campaign, airflow_ready, base_config, cluster_env, sacct_jobs, states, unique  # noqa: F401 - fixtures used as test arguments

pytestmark = pytest.mark.cluster


@pytest.fixture
def wrong_key_conn(cluster_env, tmp_path, monkeypatch):
    """Connection ``faxflow_badkey``: the sandbox, but pinned to a freshly generated (wrong) host key."""
    key = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    wrong = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    conn = cluster_env.airflow_connection()
    conn["extra"]["host_key"] = wrong
    monkeypatch.setenv("AIRFLOW_CONN_FAXFLOW_BADKEY", json.dumps(conn))
    return "faxflow_badkey"


def test_wrong_pinned_host_key_is_refused(cluster_env, wrong_key_conn):
    from faxflow.airflow.operators import FaxflowGroupOperator
    from faxflow.slurm.client import HostKeyMismatchError, SlurmClient
    from faxflow.slurm.poller import connect_ssh

    sb = cluster_env
    # the right key works (sanity)
    with SlurmClient("faxflow_cluster") as client:
        assert client.run("echo ok", check=True).stdout.strip() == "ok"

    with SlurmClient(wrong_key_conn) as client:
        with pytest.raises(HostKeyMismatchError, match="host key verification failed.*faxflow_badkey"):
            client.run("echo should-not-run")

    with pytest.raises(HostKeyMismatchError, match="host key verification failed"):
        asyncio.run(connect_ssh(wrong_key_conn))

    # through the group operator: refused before any Slurm command
    name = unique("hk")
    spec = {"group": 0, "job_name": f"ff_{name}_x_g0000", "variant": "va", "backend": "slurm",
            "manifest": f"{sb.remote_root}/{name}/m.json", "output_root": f"{sb.remote_root}/{name}/outputs",
            "variant_dir": f"{sb.remote_root}/{name}/outputs/va", "script": f"{sb.remote_root}/{name}/job.sh",
            "slurm_log_dir": f"{sb.remote_root}/{name}/slurm"}
    op = FaxflowGroupOperator(task_id="run", spec=spec, cluster={"ssh_conn_id": wrong_key_conn,
                                                                "poll_interval_seconds": 1})
    with pytest.raises(HostKeyMismatchError, match="refusing to connect"):
        op.execute({"ti": None})
    assert sacct_jobs(sb, f"ff_{name}_", settle=0) == []


def _no_jobs_from(sb, since: str) -> list[str]:
    cp = sb.slurm("sacct", "-a", "-X", "-P", "-n", "-S", since, "-u", sb.ssh_user, "--format=JobIDRaw,JobName")
    return [line for line in cp.stdout.splitlines() if line.strip()]


BAD_VALUES = [
    ("variant name", lambda c: c["variants"][0].update(name="va;touch${IFS}/tmp/faxflow_pwned")),
    ("variant name with $()", lambda c: c["variants"][0].update(name="va$(id)")),
    ("remote_root", lambda c: c["cluster"].update(remote_root="/tmp/x;touch /tmp/faxflow_pwned")),
    ("python_env", lambda c: c["cluster"].update(python_env="/opt/env`id`")),
    ("partition", lambda c: c["cluster"].update(partition="debug --wrap=id")),
    ("ssh_conn_id", lambda c: c["cluster"].update(ssh_conn_id="conn|id")),
    ("env_setup newline", lambda c: c["cluster"].update(env_setup=["module load x\ntouch /tmp/faxflow_pwned"])),
]


@pytest.mark.parametrize("what,mutate", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_shell_metacharacters_rejected_before_any_shell(cluster_env, what, mutate):
    from faxflow.config import load_campaign
    from faxflow.errors import ConfigError

    sb = cluster_env
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    name = unique("inj")
    config = base_config(name, sb, groups=1, variants=("va",), share_kernels=False)  # nothing on the cluster
    mutate(config)
    campaign = Campaign(config)
    with pytest.raises(ConfigError):
        load_campaign(campaign.path)

    # the DAG file turns it into a placeholder DAG whose only task fails: nothing is planned or submitted
    dag = campaign.dag()
    assert [t.task_id for t in dag.tasks] == ["config_error"]
    run = dag.test()
    assert run.state == "failed" and states(run) == {("config_error", -1): "failed"}
    assert _no_jobs_from(sb, since) == []
    assert not (sb.remote_root / name).exists()


def test_command_builders_refuse_metacharacters():
    from faxflow.slurm import commands
    from faxflow.slurm.script import RemoteLayout

    for bad in ("a;b", "a b", "$(id)", "`id`", "a|b", "-rf", ".hidden", "a\nb", "a&&b", "a>b"):
        with pytest.raises(ValueError):
            commands.check_name(bad)
    for bad in ("relative/x", "/a/../b", "/a;b", "/a b", "/a$(id)", "/a\nb"):
        with pytest.raises(ValueError):
            commands.check_path(bad)
    for bad in ("1;2", "1 2", "$(id)", "12_x"):
        with pytest.raises(ValueError):
            commands.check_job_id(bad)
    with pytest.raises(ValueError):
        RemoteLayout("/tmp/r", "camp;id", "run")
