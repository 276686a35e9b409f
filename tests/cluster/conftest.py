"""Fixtures for the real-cluster tests (tests/cluster).

``slurm_sandbox`` (session scope) installs the packages if needed (root only),
starts a sandbox in a fresh temp RUN dir with random free ports and a unique
test user, yields the :class:`SlurmSandbox`, and always stops it.

Environment knobs:
  FAXFLOW_CLUSTER_INSTALL=0   never run install.sh (skip if packages missing)
  FAXFLOW_CLUSTER_KEEP=1      keep the RUN dir (logs) after the session
  FAXFLOW_CLUSTER_TMP=DIR     parent of the temp RUN dir (default: system tmp)
  SLURM_PORT_BASE, SSH_PORT, DB_PORT, SANDBOX_CPUS, SANDBOX_MINJOBAGE,
  TEST_USER, WITH_DBD         as for up.sh (default: random ports, a unique
                              user "fft<hex>", 8 CPUs, MinJobAge 300, slurmdbd on)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from .harness import HERE, SlurmSandbox, free_port, pid_alive

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge", "openssh-server", "openssh-client", "acl"]
DBD_PACKAGES = ["slurmdbd", "mariadb-server"]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cluster)


def _missing_packages(with_dbd: bool) -> list[str]:
    missing = []
    for p in PACKAGES + (DBD_PACKAGES if with_dbd else []):
        cp = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status}", p], capture_output=True, text=True
        )
        if cp.stdout.strip() != "installed":
            missing.append(p)
    return missing


def sandbox_kwargs(prefix: str = "faxflow-cluster-") -> dict:
    """Fresh RUN dir + random ports + unique user (env overrides win)."""
    parent = os.environ.get("FAXFLOW_CLUSTER_TMP") or None
    run = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    run.chmod(0o755)
    env = os.environ
    return dict(
        run_dir=run,
        slurm_port_base=int(env["SLURM_PORT_BASE"]) if "SLURM_PORT_BASE" in env else free_port(3),
        ssh_port=int(env["SSH_PORT"]) if "SSH_PORT" in env else free_port(),
        db_port=int(env["DB_PORT"]) if "DB_PORT" in env else free_port(),
        test_user=env.get("TEST_USER") or f"fft{uuid.uuid4().hex[:8]}",
    )


def ensure_installed() -> None:
    """Install the packages (root) or skip the test/session with a reason."""
    with_dbd = os.environ.get("WITH_DBD", "1") == "1"
    if shutil.which("dpkg-query") is None:
        pytest.skip("cluster tests need a Debian-like system (dpkg-query not found)")
    missing = _missing_packages(with_dbd)
    if os.geteuid() != 0:
        why = f"packages missing: {' '.join(missing)}; " if missing else ""
        pytest.skip(f"cluster tests need root ({why}run tests/cluster/install.sh and pytest as root)")
    if missing:
        if os.environ.get("FAXFLOW_CLUSTER_INSTALL", "1") == "0":
            pytest.skip(f"packages missing ({' '.join(missing)}) and FAXFLOW_CLUSTER_INSTALL=0")
        cp = subprocess.run(["bash", str(HERE / "install.sh")], capture_output=True, text=True, timeout=900)
        if cp.returncode != 0:
            pytest.fail(f"tests/cluster/install.sh failed:\n{cp.stdout[-3000:]}\n{cp.stderr[-3000:]}")


@pytest.fixture(scope="session")
def slurm_sandbox():
    """The running sandbox (SlurmSandbox); stopped at the end of the session."""
    ensure_installed()
    sb = SlurmSandbox(**sandbox_kwargs())
    keep = os.environ.get("FAXFLOW_CLUSTER_KEEP") == "1"
    try:
        try:
            sb.start()
        except Exception as exc:  # noqa: BLE001 - any start failure fails the session clearly
            pytest.fail(f"sandbox did not start: {exc}")
        yield sb
    finally:
        sb.stop(keep_run=keep)
        leftover = [p for p in sb.seen_pids if pid_alive(p)]
        if leftover:
            raise RuntimeError(f"sandbox processes still alive after down.sh: {leftover}")


@pytest.fixture
def sandbox_factory():
    """Start extra, independent sandboxes inside one test (each stopped at the
    end of the test). ``sandbox_factory(with_dbd=False, warmup=False)``."""
    ensure_installed()
    made: list[SlurmSandbox] = []

    def make(**overrides) -> SlurmSandbox:
        kw = sandbox_kwargs()
        kw["test_user"] = f"fft{uuid.uuid4().hex[:8]}"  # never share the session's user
        kw.update(overrides)
        sb = SlurmSandbox(**kw)
        made.append(sb)
        sb.start()
        return sb

    yield make
    for sb in made:
        sb.stop()
