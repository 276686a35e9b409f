"""Python API and CLI for the faxflow real-cluster sandbox (tests/cluster).

A real single-node Slurm (slurmctld + slurmd, optionally slurmdbd on MariaDB so
that ``sacct`` works) and a real key-only sshd, all on 127.0.0.1, started by
``up.sh`` and removed by ``down.sh`` in this directory.  Needs root.

    from tests.cluster.harness import SlurmSandbox
    sb = SlurmSandbox(run_dir="/tmp/x")      # ports/user/... from kwargs or env
    sb.start()
    try:
        jid = sb.ssh("sbatch --parsable --wrap 'echo hi'").stdout.strip()
        sb.wait_job(jid)                      # -> "COMPLETED"
    finally:
        sb.stop()

CLI (what ``make cluster-up`` / ``make cluster-down`` run)::

    python -m tests.cluster.harness up|down|env|status|restart DAEMON [--hard]

equivalent to ``tests/cluster/up.sh`` etc. (RUN defaults to tests/cluster/run).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent.parent
DEFAULT_RUN = HERE / "run"
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sshd")
TERMINAL_STATES = (
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
)


class SandboxError(RuntimeError):
    pass


def free_port(n: int = 1, lo: int = 20000, hi: int = 60000, tries: int = 200) -> int:
    """A port p such that p..p+n-1 are all free on 127.0.0.1 (bind test)."""
    import random

    rnd = random.SystemRandom()
    for _ in range(tries):
        base = rnd.randrange(lo, hi - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SandboxError("no free port range found")


def parse_env_sh(path: Path) -> dict[str, str]:
    """Parse the ``export K=V`` lines (printf %q quoting) of env.sh."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line.startswith("export "):
            continue
        if "$'" in line:  # ANSI-C quoting: let bash decode it
            out = subprocess.run(
                ["bash", "-c", line + '; printf "%s" "${!1}"', "_", line[7:].split("=", 1)[0]],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            env[line[7:].split("=", 1)[0]] = out
            continue
        key, _, val = line[len("export ") :].partition("=")
        parts = shlex.split(val) if val else [""]
        env[key] = parts[0] if parts else ""
    return env


def _read_kv(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            parts = shlex.split(v) if v else [""]
            out[k] = parts[0] if parts else ""
    return out


class SlurmSandbox:
    """One sandbox instance bound to one RUN directory.

    Every keyword left as None falls back to the environment variable of the
    same name used by up.sh (SLURM_PORT_BASE, SSH_PORT, DB_PORT, SANDBOX_CPUS,
    SANDBOX_MINJOBAGE, TEST_USER, WITH_DBD, WARMUP) and then to up.sh's default.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str] | None = None,
        *,
        slurm_port_base: int | None = None,
        ssh_port: int | None = None,
        db_port: int | None = None,
        cpus: int | None = None,
        min_job_age: int | None = None,
        test_user: str | None = None,
        with_dbd: bool | None = None,
        warmup: bool | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir or os.environ.get("RUN") or DEFAULT_RUN).resolve()
        cfg: dict[str, str] = {}

        def put(name: str, value: object) -> None:
            if value is None:
                if name in os.environ:
                    cfg[name] = os.environ[name]
            elif isinstance(value, bool):
                cfg[name] = "1" if value else "0"
            else:
                cfg[name] = str(value)

        put("SLURM_PORT_BASE", slurm_port_base)
        put("SSH_PORT", ssh_port)
        put("DB_PORT", db_port)
        put("SANDBOX_CPUS", cpus)
        put("SANDBOX_MINJOBAGE", min_job_age)
        put("TEST_USER", test_user)
        put("WITH_DBD", with_dbd)
        put("WARMUP", warmup)
        cfg.update(extra_env or {})
        self.config = cfg
        self.env: dict[str, str] = {}
        self.daemon_pids: dict[str, int] = {}
        self.seen_pids: set[int] = set()
        self._tag: str | None = None
        self._test_uid: int | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.started = False
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------ lifecycle
    def _script_env(self) -> dict[str, str]:
        e = dict(os.environ)
        # A sourced env.sh of another sandbox must not leak into ours.
        for k in list(e):
            if k.startswith("SANDBOX_SSH_") or k == "SLURM_CONF":
                e.pop(k)
        e.update(self.config)
        e["RUN"] = str(self.run_dir)
        return e

    def _run_script(self, name: str, *args: str, timeout: float = 300, env=None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(HERE / name), *args],
            env=env or self._script_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, watchdog: bool = True) -> SlurmSandbox:
        """Run up.sh. On failure raises SandboxError (up.sh has already stopped
        whatever it started); call stop() anyway to remove RUN."""
        if self.started:
            raise SandboxError("already started")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o755)
        t0 = time.monotonic()
        if watchdog:
            self._start_watchdog()
        cp = self._run_script("up.sh")
        self.timings["up"] = time.monotonic() - t0
        self.up_output = cp.stderr
        if cp.returncode != 0:
            raise SandboxError(f"up.sh failed (rc={cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
        self.started = True
        self.env = parse_env_sh(self.run_dir / "env.sh")
        conf = _read_kv(self.run_dir / "sandbox.conf")
        self._tag = conf.get("SANDBOX_TAG")
        self._test_uid = int(conf["TEST_UID"]) if conf.get("TEST_UID") else None
        self._refresh_pids()
        return self

    def _start_watchdog(self) -> None:
        """A detached process that runs down.sh if this Python process dies
        without calling stop() (e.g. pytest-timeout's os._exit)."""
        script = (
            'while kill -0 "$1" 2>/dev/null; do sleep 1; done; '
            'RUN="$2" exec bash "$3" >/dev/null 2>&1'
        )
        self._watchdog = subprocess.Popen(
            ["bash", "-c", script, "faxflow-sandbox-watchdog", str(os.getpid()), str(self.run_dir),
             str(HERE / "down.sh")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd="/",
        )

    def _stop_watchdog(self) -> None:
        w, self._watchdog = self._watchdog, None
        if w is not None and w.poll() is None:
            w.kill()
            w.wait(timeout=10)

    def stop(self, keep_run: bool = False) -> subprocess.CompletedProcess[str] | None:
        """Run down.sh. Safe to call at any time, repeatedly, after failures."""
        self._refresh_pids()
        self._stop_watchdog()
        env = self._script_env()
        env["KEEP_RUN"] = "1" if keep_run else env.get("KEEP_RUN", "0")
        t0 = time.monotonic()
        cp = self._run_script("down.sh", env=env, timeout=180)
        self.timings["down"] = time.monotonic() - t0
        self.started = False
        self.down_output = cp.stderr
        if cp.returncode != 0:
            sys.stderr.write(f"[sandbox] down.sh failed (rc={cp.returncode}):\n{cp.stdout}\n{cp.stderr}\n")
        return cp

    def __enter__(self) -> SlurmSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ daemons
    def ctl(self, action: str, daemon: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        if daemon not in DAEMONS:
            raise ValueError(f"unknown daemon {daemon!r}; one of {DAEMONS}")
        cp = self._run_script("ctl.sh", action, daemon, timeout=timeout)
        self._refresh_pids()
        if cp.returncode != 0 and action != "status":
            raise SandboxError(f"ctl.sh {action} {daemon} failed (rc={cp.returncode}):\n{cp.stderr}")
        return cp

    def restart(self, daemon: str, hard: bool = False) -> None:
        """Restart slurmctld / slurmd / sshd (hard=SIGKILL). Returns once it is
        ready again (slurmctld: UP and the node re-registered; sshd: listening;
        restarting sshd drops all existing connections)."""
        self.ctl("hard-restart" if hard else "restart", daemon)

    def stop_daemon(self, daemon: str, hard: bool = False) -> None:
        self.ctl("kill" if hard else "stop", daemon)

    def start_daemon(self, daemon: str) -> None:
        self.ctl("start", daemon)

    def daemon_pid(self, daemon: str) -> int | None:
        pf = {
            "munged": "munge/munged.pid",
            "mariadbd": "mysql/mysqld.pid",
            "slurmdbd": "slurm/slurmdbd.pid",
            "slurmctld": "slurm/slurmctld.pid",
            "slurmd": "slurm/slurmd.pid",
            "sshd": "ssh/sshd.pid",
        }[daemon]
        try:
            pid = int((self.run_dir / pf).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def _refresh_pids(self) -> None:
        for d in DAEMONS:
            pid = self.daemon_pid(d)
            if pid:
                self.daemon_pids[d] = pid
                self.seen_pids.add(pid)
        for pid in self.our_processes():
            self.seen_pids.add(pid)

    def our_processes(self) -> list[int]:
        """Live (non-zombie) processes of this sandbox: tagged, cmdline/cwd in
        RUN, or owned by the test user."""
        if not self._tag and not self.run_dir.exists():
            return []
        run = str(self.run_dir)
        tag = f"SANDBOX_TAG={self._tag}".encode() if self._tag else None
        me = os.getpid()
        found = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) in (1, me):
                continue
            pid = int(d.name)
            try:
                if not pid_alive(pid):
                    continue
                if self._test_uid is not None and d.stat().st_uid == self._test_uid:
                    found.append(pid)
                    continue
                cmd = (d / "cmdline").read_bytes().split(b"\0")
                if any(a == run.encode() or (run + "/").encode() in a for a in cmd):
                    found.append(pid)
                    continue
                if tag and tag in (d / "environ").read_bytes().split(b"\0"):
                    found.append(pid)
                    continue
                cwd = os.readlink(d / "cwd")
                if cwd == run or cwd.startswith(run + "/"):
                    found.append(pid)
            except (OSError, ValueError):
                continue
        return found

    # ------------------------------------------------------------ ssh
    @property
    def ssh_host(self) -> str:
        return self.env.get("SANDBOX_SSH_HOST", "127.0.0.1")

    @property
    def ssh_port(self) -> int:
        return int(self.env["SANDBOX_SSH_PORT"])

    @property
    def ssh_user(self) -> str:
        return self.env["SANDBOX_SSH_USER"]

    @property
    def ssh_key(self) -> str:
        return self.env["SANDBOX_SSH_KEY"]

    @property
    def known_hosts(self) -> str:
        return self.env["SANDBOX_SSH_KNOWN_HOSTS"]

    @property
    def host_key_pub(self) -> str:
        """The server's pinned public host key, "ssh-ed25519 AAAA..."."""
        return self.env["SANDBOX_SSH_HOST_KEY_PUB"]

    @property
    def remote_root(self) -> Path:
        """Directory owned by the test user, where jobs write outputs."""
        return Path(self.env["SANDBOX_REMOTE_ROOT"])

    @property
    def remote_home(self) -> Path:
        return Path(self.env["SANDBOX_HOME"])

    @property
    def python(self) -> str:
        """The project interpreter, usable by the test user over ssh."""
        return self.env.get("SANDBOX_PYTHON", str(PROJECT_ROOT / ".venv/bin/python"))

    def ssh_argv(
        self,
        command: str | Sequence[str],
        *,
        known_hosts: str | None = None,
        options: Sequence[str] = (),
    ) -> list[str]:
        """argv for running `command` as the test user over real ssh.

        A str is a remote *shell command line* (sent as one argument, so the
        remote shell parses it exactly once); a sequence is an argv that is
        shlex.join-ed, so each element arrives verbatim."""
        if not isinstance(command, str):
            command = shlex.join(list(command))
        return [
            "ssh",
            "-p", str(self.ssh_port),
            "-i", self.ssh_key,
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10",
            "-o", "LogLevel=ERROR",
            "-F", "/dev/null",
            *options,
            f"{self.ssh_user}@{self.ssh_host}",
            "--",
            command,
        ]  # fmt: skip

    def ssh(
        self,
        command: str | Sequence[str],
        *,
        timeout: float = 60,
        check: bool = False,
        input: str | None = None,
        known_hosts: str | None = None,
        options: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as the test user over ssh (pinned host key, BatchMode)."""
        cp = subprocess.run(
            self.ssh_argv(command, known_hosts=known_hosts, options=options),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and cp.returncode != 0:
            raise SandboxError(f"ssh {command!r} failed rc={cp.returncode}: {cp.stderr.strip()}")
        return cp

    def sbatch(self, *args: str, wrap: str | None = None, name: str | None = None) -> str:
        """Submit as the test user over ssh; returns the job id."""
        argv = ["sbatch", "--parsable"]
        if name:
            argv.append(f"--job-name={name}")
        argv += list(args)
        if wrap is not None:
            argv += ["--wrap", wrap]
        cp = self.ssh(argv, check=True)
        return cp.stdout.strip().split(";")[0]

    # ------------------------------------------------------------ local slurm (as root)
    def slurm(self, *argv: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command locally as root against this sandbox."""
        env = dict(os.environ, SLURM_CONF=self.env["SLURM_CONF"])
        cp = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
        if check and cp.returncode != 0:
            raise SandboxError(f"{argv} failed rc={cp.returncode}: {cp.stderr.strip()}")
        return cp

    def squeue_names(self, *, user: str | None = None, all_states: bool = False) -> list[str]:
        """Job names in the queue (pending/running; all_states adds finished jobs
        not yet purged). The warm-up job is excluded."""
        argv = ["squeue", "-h", "-o", "%j"]
        if all_states:
            argv += ["-t", "all"]
        if user:
            argv += ["-u", user]
        cp = self.slurm(*argv, check=True)
        return [n for n in cp.stdout.split() if n and n != "sandbox-warmup"]

    def sacct(self, jobid: str, *, allocations_only: bool = True) -> list[dict[str, str]]:
        """sacct rows for a job (needs WITH_DBD=1). Missing rows mean "unknown":
        sacct lags slurmctld by up to ~2 s."""
        fields = ["JobID", "JobName", "User", "State", "ExitCode"]
        argv = ["sacct", "-n", "-P", "-j", str(jobid), f"--format={','.join(fields)}"]
        if allocations_only:
            argv.append("-X")
        cp = self.slurm(*argv)
        return [dict(zip(fields, line.split("|"))) for line in cp.stdout.splitlines() if line.strip()]

    def job_state(self, jobid: str) -> str | None:
        """Current state: squeue -t all first (while slurmctld remembers the
        job), then sacct. None if unknown."""
        cp = self.slurm("squeue", "-h", "-t", "all", "-j", str(jobid), "-o", "%T")
        st = cp.stdout.strip()
        if cp.returncode == 0 and st:
            return st.splitlines()[0]
        if self.env.get("SANDBOX_WITH_DBD") == "1":
            rows = self.sacct(jobid)
            if rows:
                return rows[0]["State"].split()[0]
        return None

    def wait_job(
        self, jobid: str, timeout: float = 30, *, via_sacct: bool | None = None, full_record: bool = False
    ) -> str:
        """Wait until the job is in a terminal state; returns that state. With
        slurmdbd (default) the state is read from sacct, so callers may then
        assert on sacct's State/ExitCode.

        full_record=True also waits until sacct's JobName/User match slurmctld:
        for 0.5-4 s after a short job ends, slurmdbd may hold a stub row
        ("allocation", User root/UID 0) whose State/ExitCode are already right."""
        if via_sacct is None:
            via_sacct = self.env.get("SANDBOX_WITH_DBD") == "1"
        deadline = time.monotonic() + timeout
        last = None
        expect: tuple[str, str] | None = None
        while time.monotonic() < deadline:
            if via_sacct:
                # slurmdbd may briefly hold a stub row for a finished job
                # (JobName "allocation", User root): wait until the row agrees
                # with what slurmctld knows about the job.
                if full_record and expect is None:
                    cp = self.slurm("squeue", "-h", "-t", "all", "-j", str(jobid), "-o", "%j|%u")
                    if cp.returncode == 0 and "|" in cp.stdout:
                        n, _, u = cp.stdout.strip().splitlines()[0].partition("|")
                        expect = (n, u)
                rows = self.sacct(jobid)
                last = rows[0]["State"].split()[0] if rows else None
                if rows and expect and (rows[0]["JobName"], rows[0]["User"]) != expect:
                    last = None
            else:
                last = self.job_state(jobid)
            if last and last.startswith(TERMINAL_STATES):
                return last
            time.sleep(0.2)
        raise SandboxError(f"job {jobid} not finished after {timeout}s (last state {last})")

    # ------------------------------------------------------------ airflow
    def airflow_connection(
        self,
        conn_timeout: int = 10,
        cmd_timeout: int | None = 60,
        keepalive_interval: int = 30,
    ) -> dict:
        return {
            "conn_type": "ssh",
            "host": "127.0.0.1",
            "port": self.ssh_port,
            "login": self.ssh_user,
            "extra": {
                "key_file": self.ssh_key,
                "host_key": self.host_key_pub,
                "no_host_key_check": False,
                "allow_host_key_change": False,
                "look_for_keys": False,
                "conn_timeout": conn_timeout,
                "cmd_timeout": cmd_timeout,
                # NB: SSHHook (providers-ssh 7.0.1) takes keepalive_interval only as a
                # constructor argument; it is here for faxflow's own code to read.
                "keepalive_interval": keepalive_interval,
            },
        }

    def airflow_connection_json(self, conn_timeout: int = 10, cmd_timeout: int | None = 60,
                                keepalive_interval: int = 30) -> str:
        """JSON for AIRFLOW_CONN_<ID> (Airflow >= 2.3 JSON connection format)."""
        return json.dumps(self.airflow_connection(conn_timeout, cmd_timeout, keepalive_interval))


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


# ---------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tests.cluster.harness", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="RUN dir (default $RUN or tests/cluster/run)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="run install.sh")
    sub.add_parser("up", help="run up.sh")
    p = sub.add_parser("down", help="run down.sh")
    p.add_argument("--keep-run", action="store_true")
    sub.add_parser("env", help="print env.sh (eval-able)")
    sub.add_parser("status", help="daemon status")
    sub.add_parser("airflow-conn", help="print the Airflow SSH connection JSON")
    p = sub.add_parser("restart", help="restart a daemon")
    p.add_argument("daemon", choices=DAEMONS)
    p.add_argument("--hard", action="store_true")
    a = ap.parse_args(argv)
    sb = SlurmSandbox(a.run)
    script_env = sb._script_env()
    if a.cmd == "install":
        return subprocess.call(["bash", str(HERE / "install.sh")])
    if a.cmd == "up":
        return subprocess.call(["bash", str(HERE / "up.sh")], env=script_env)
    if a.cmd == "down":
        if a.keep_run:
            script_env["KEEP_RUN"] = "1"
        return subprocess.call(["bash", str(HERE / "down.sh")], env=script_env)
    if a.cmd == "restart":
        action = "hard-restart" if a.hard else "restart"
        return subprocess.call(["bash", str(HERE / "ctl.sh"), action, a.daemon], env=script_env)
    envsh = sb.run_dir / "env.sh"
    if not envsh.exists():
        print(f"no sandbox up in {sb.run_dir}", file=sys.stderr)
        return 1
    if a.cmd == "env":
        sys.stdout.write(envsh.read_text())
        return 0
    sb.env = parse_env_sh(envsh)
    if a.cmd == "airflow-conn":
        print(sb.airflow_connection_json())
        return 0
    if a.cmd == "status":
        rc = 0
        for d in DAEMONS:
            pid = sb.daemon_pid(d)
            print(f"{d:10s} {'running pid ' + str(pid) if pid else 'stopped'}")
        return rc
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
