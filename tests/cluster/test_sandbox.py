"""Smoke tests of the real Slurm + sshd sandbox itself (fast: no TIMEOUT tests)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import paramiko
import pytest

from .harness import SlurmSandbox, pid_alive

pytestmark = pytest.mark.cluster


def _uniq(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_sbatch_over_ssh_completes(slurm_sandbox: SlurmSandbox):
    sb = slurm_sandbox
    out = sb.remote_root / _uniq("hello")
    # One remote shell command line; the --wrap payload is quoted by the argv form.
    jid = sb.sbatch(f"--output={out}", wrap="sleep 0.2; echo hi from $SLURM_JOB_ID; id -un")
    assert jid.isdigit()
    assert sb.wait_job(jid, full_record=True) == "COMPLETED"
    rows = sb.sacct(jid)
    assert rows[0]["State"] == "COMPLETED" and rows[0]["ExitCode"] == "0:0"
    assert (rows[0]["User"], rows[0]["JobName"]) == (sb.ssh_user, "wrap")
    # the user sees the same through sacct over ssh
    cp = sb.ssh(f"sacct -X -n -P -j {jid} --format=JobID,State,ExitCode", check=True)
    assert cp.stdout.strip() == f"{jid}|COMPLETED|0:0"
    text = out.read_text()
    assert f"hi from {jid}" in text and sb.ssh_user in text


def test_raw_shell_command_line_quoting(slurm_sandbox: SlurmSandbox):
    # A str is parsed once by the remote shell: quoting inside it is honoured.
    cp = slurm_sandbox.ssh("sbatch --parsable --wrap 'sleep 0.1; exit 0'", check=True)
    assert cp.stdout.strip().isdigit()
    assert slurm_sandbox.wait_job(cp.stdout.strip()) == "COMPLETED"


def test_failing_job_is_failed_in_sacct(slurm_sandbox: SlurmSandbox):
    sb = slurm_sandbox
    jid = sb.sbatch(f"--output={sb.remote_root}/fail_%j.out", wrap="echo about to fail; exit 3")
    assert sb.wait_job(jid) == "FAILED"
    rows = sb.sacct(jid)
    assert (rows[0]["State"], rows[0]["ExitCode"]) == ("FAILED", "3:0")


def test_squeue_by_name(slurm_sandbox: SlurmSandbox):
    sb = slurm_sandbox
    name = _uniq("wf_step")
    jid = sb.sbatch("--hold", name=name, wrap="true")  # stays PENDING, uses nothing
    try:
        cp = sb.ssh(["squeue", "-h", f"--name={name}", "-o", "%i %j %T"], check=True)
        assert cp.stdout.split() == [jid, name, "PENDING"]
        assert name in sb.squeue_names()
        cp = sb.ssh(["squeue", "-h", "--name=no_such_job_name", "-o", "%i"])
        assert (cp.returncode, cp.stdout.strip()) == (0, "")
    finally:
        sb.ssh(["scancel", jid])
    deadline = time.monotonic() + 10
    while name in sb.squeue_names() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert name not in sb.squeue_names()


def test_wrong_host_key_is_rejected(slurm_sandbox: SlurmSandbox, tmp_path: Path):
    sb = slurm_sandbox
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    pub = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"[127.0.0.1]:{sb.ssh_port} {pub}\n")
    cp = sb.ssh("true", known_hosts=str(wrong), options=["-o", "LogLevel=INFO"])
    assert cp.returncode == 255
    assert "Host key verification failed" in cp.stderr
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    cp = sb.ssh("true", known_hosts=str(empty), options=["-o", "LogLevel=INFO"])
    assert cp.returncode == 255 and "Host key verification failed" in cp.stderr
    # paramiko with a wrong pinned key refuses too (what Airflow's SSHHook does)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.get_host_keys().add(f"[127.0.0.1]:{sb.ssh_port}", "ssh-ed25519", paramiko.Ed25519Key(filename=str(other)))
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect("127.0.0.1", port=sb.ssh_port, username=sb.ssh_user, key_filename=sb.ssh_key,
                       look_for_keys=False, allow_agent=False, timeout=10)
    client.close()


def test_password_and_root_logins_refused(slurm_sandbox: SlurmSandbox):
    sb = slurm_sandbox
    cp = sb.ssh("true", options=["-o", "PubkeyAuthentication=no",
                                 "-o", "PreferredAuthentications=password,keyboard-interactive",
                                 "-o", "LogLevel=INFO"])
    assert cp.returncode == 255 and "Permission denied (publickey)" in cp.stderr
    # the server only offers publickey at all
    t = paramiko.Transport(("127.0.0.1", sb.ssh_port))
    try:
        t.connect()
        with pytest.raises(paramiko.BadAuthenticationType) as ei:
            t.auth_password(sb.ssh_user, "anything")
        assert ei.value.allowed_types == ["publickey"]
    finally:
        t.close()
    # root cannot log in even with the right key
    argv = sb.ssh_argv("true")
    argv[argv.index(f"{sb.ssh_user}@{sb.ssh_host}")] = f"root@{sb.ssh_host}"
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert cp.returncode == 255


def test_project_python_runs_as_test_user(slurm_sandbox: SlurmSandbox):
    sb = slurm_sandbox
    assert sb.env["SANDBOX_PYTHON_OK"] == "1", "see $RUN/python-check.log"
    cp = sb.ssh([sb.python, "-c", "import faxflow, sys; print(sys.prefix)"], check=True)
    assert cp.stdout.strip().endswith(".venv")
    faxflow_cli = Path(sb.python).parent / "faxflow"
    if faxflow_cli.exists():
        sb.ssh([str(faxflow_cli), "--help"], check=True)
    # and inside a job
    jid = sb.sbatch(f"--output={sb.remote_root}/py_%j.out", wrap=f"{sb.python} -c 'import faxflow'")
    assert sb.wait_job(jid) == "COMPLETED"


def test_slurmctld_restart_keeps_accepting_jobs(slurm_sandbox: SlurmSandbox):
    sb = slurm_sandbox
    running = sb.sbatch(wrap="sleep 3", name=_uniq("survivor"))
    old = sb.daemon_pid("slurmctld")
    sb.restart("slurmctld")  # SIGTERM: state saved, running job survives
    assert sb.daemon_pid("slurmctld") not in (None, old)
    after_soft = sb.sbatch(wrap="true")
    assert sb.wait_job(after_soft) == "COMPLETED"
    assert len({running, after_soft}) == 2
    # SIGKILL, as a crash would. NB: slurmctld saves state asynchronously, so
    # jobs submitted < ~4 s before a crash are forgotten and THEIR IDS ARE
    # REUSED afterwards (measured: delay 0-2 s -> reused, >= 4 s -> kept).
    sb.restart("slurmctld", hard=True)
    after_hard = sb.sbatch(wrap="true")
    for jid in (running, after_hard):
        assert sb.wait_job(jid, timeout=30) == "COMPLETED", jid


def test_sshd_restart_drops_connections(slurm_sandbox: SlurmSandbox):
    sb = slurm_sandbox
    proc = subprocess.Popen(sb.ssh_argv("echo started; sleep 60"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        sb.restart("sshd")
        assert proc.wait(timeout=10) == 255
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sb.ssh("echo back", check=True).stdout.strip() == "back"


def test_airflow_connection_json(slurm_sandbox: SlurmSandbox):
    """The JSON works with Airflow's SSHHook (pinned ed25519 host key, key file)."""
    sb = slurm_sandbox
    code = (
        "from airflow.providers.ssh.hooks.ssh import SSHHook\n"
        "h = SSHHook(ssh_conn_id='faxflow_sandbox')\n"
        "with h.get_conn() as c:\n"
        "    rc, out, err = h.exec_ssh_client_command(c, 'echo $USER $SLURM_CONF; sbatch --version',"
        " get_pty=False, environment=None)\n"
        "print(rc, out.decode().strip())\n"
    )
    env = dict(os.environ, AIRFLOW_CONN_FAXFLOW_SANDBOX=sb.airflow_connection_json())
    cp = subprocess.run([sb.python, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert f"0 {sb.ssh_user} {sb.env['SLURM_CONF']}" in cp.stdout
    assert "slurm-wlm 22." in cp.stdout or "slurm 22." in cp.stdout


def test_down_leaves_nothing_running(sandbox_factory):
    """A second, independent sandbox (no dbd, no warm-up): crash slurmctld
    with jobs running, then stop; every pid we saw must be gone."""
    sb = sandbox_factory(with_dbd=False, warmup=False, cpus=4)
    user, run = sb.ssh_user, sb.run_dir
    ids = [sb.sbatch(wrap="trap '' TERM; sleep 300") for _ in range(2)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = sb.slurm("squeue", "-h", "-o", "%T").stdout.split()
        if st.count("RUNNING") == 2:
            break
        time.sleep(0.2)
    held = subprocess.Popen(sb.ssh_argv("sleep 120"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    sb.stop_daemon("slurmctld", hard=True)
    pids = set(sb.daemon_pids.values()) | set(sb.our_processes())
    assert len(pids) >= 6, pids  # daemons + slurmstepd + job processes + session
    sb.stop()
    held.wait(timeout=10)
    alive = [p for p in pids if pid_alive(p)]
    assert alive == [], alive
    assert sb.our_processes() == []
    assert subprocess.run(["getent", "passwd", user], capture_output=True).returncode == 2
    assert not run.exists()
    assert ids
