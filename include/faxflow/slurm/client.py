"""A synchronous Slurm client over one persistent SSH connection (paramiko, via the SSH provider's SSHHook).

Operators open one :class:`SlurmClient` per task execution and close it at the end; every command of
that execution (sbatch, squeue, sacct, scancel, SFTP uploads, log tails) goes through the same
connection. Host keys are always verified: a connection that asks for ``no_host_key_check`` is refused.

Failures that a retry cannot fix (no such connection, login refused, wrong host key, sbatch options the
cluster does not know) raise :class:`PermanentClusterError`; the Airflow tasks fail at once on it.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shlex
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Optional

from airflow.sdk.exceptions import AirflowFailException

from faxflow.slurm import commands
from faxflow.slurm.parsers import Submission, parse_sbatch, parse_squeue
from faxflow.slurm.query import CommandResult, QueryOutcome, first_live, run_query
from faxflow.slurm.states import JobStatus

log = logging.getLogger(__name__)


class SlurmCommandError(RuntimeError):
    """A remote command failed; carries its :class:`CommandResult`."""

    def __init__(self, command: str, result: CommandResult):
        self.command = command
        self.result = result
        detail = (result.stderr or result.stdout).strip()[-2000:]
        super().__init__(f"remote command failed (exit {result.exit_status}): {command}\n{detail}")


class PermanentClusterError(AirflowFailException):
    """Retrying cannot help: the connection, the credentials, the host key or the job options are wrong.

    It is an ``AirflowFailException``, so the task that meets it fails in its first try.
    """


class HostKeyMismatchError(PermanentClusterError, PermissionError):
    """The server's host key is not the pinned one (``host_key`` extra / known_hosts): never connect."""


#: What sbatch says about options the cluster does not accept (partition, account, QOS): not transient.
_REJECTED_OPTIONS = re.compile(r"invalid (partition|account|qos)|invalid account or account/partition"
                               r"|invalid qos|no partition specified|partition .* not (found|available)",
                               re.IGNORECASE)


def host_key_mismatch(ssh_conn_id: Optional[str], detail: str) -> HostKeyMismatchError:
    return HostKeyMismatchError(
        f"host key verification failed for connection {ssh_conn_id!r}: {detail}. The server's key is not the "
        "pinned one (connection extra host_key or known_hosts); refusing to connect. If the login node's "
        "key really changed, update the pinned key after checking it out of band.")


class UncheckedHostKeyError(PermanentClusterError, PermissionError):
    """The connection asks to skip host-key checks, which faxflow never does."""


def refuse_unchecked_host_keys(extra: Mapping[str, Any]) -> None:
    """Raise if a connection's extras turn host-key checking off (faxflow never allows that)."""
    for key in ("no_host_key_check", "ignore_hostkey_verification", "allow_host_key_change"):
        if str(extra.get(key, "")).lower() == "true":
            raise UncheckedHostKeyError(f"connection extra {key}=true: faxflow requires verified host keys; "
                                  "set host_key or provide known_hosts instead")


class SlurmClient:
    """Submit, query, cancel and transfer files on a Slurm login node.

    :param ssh_conn_id: Airflow SSH connection id of the login node
    :param command_timeout: inactivity timeout for each remote command, in seconds
    :param runner: replaces SSH in tests: ``runner(command) -> CommandResult``
    :param files: in-memory stand-in for the remote filesystem, used by :meth:`upload`/:meth:`read_bytes`
        together with ``runner``
    """

    def __init__(self, ssh_conn_id: Optional[str] = None, *, command_timeout: float = 60.0,
                 runner: Optional[Callable[[str], CommandResult]] = None,
                 files: Optional[dict[str, bytes]] = None):
        if runner is None and not ssh_conn_id:
            raise ValueError("need an ssh_conn_id (or a runner in tests)")
        self.ssh_conn_id = ssh_conn_id
        self.command_timeout = command_timeout
        self._runner = runner
        self._files = files if files is not None else {}
        self._hook = None
        self._ssh = None
        self._sftp = None
        self.use_sacct = True
        self.commands_run = 0

    # -- connection -------------------------------------------------------------------------------
    def _client(self):
        if self._ssh is None:
            from airflow.providers.ssh.hooks.ssh import SSHHook

            hook = self._hook_for_connection(SSHHook)
            if hook.no_host_key_check or hook.allow_host_key_change:
                raise UncheckedHostKeyError(f"connection {self.ssh_conn_id!r} disables host-key checking; faxflow "
                                      "requires verified host keys (set host_key or known_hosts)")
            self._hook = hook
            import paramiko

            try:
                self._ssh = hook.get_conn()
            except paramiko.BadHostKeyException as error:
                raise host_key_mismatch(self.ssh_conn_id, str(error)) from None
            except paramiko.AuthenticationException as error:
                raise PermanentClusterError(
                    f"connection {self.ssh_conn_id!r}: the login node refused the login ({error}); check the "
                    "connection's login and key_file/private_key") from None
            except paramiko.SSHException as error:
                if "known_hosts" in str(error) or "host key" in str(error).lower():
                    raise host_key_mismatch(self.ssh_conn_id, str(error)) from None
                raise
        return self._ssh

    def _hook_for_connection(self, hook_class):
        from airflow.exceptions import AirflowNotFoundException

        try:
            return hook_class(ssh_conn_id=self.ssh_conn_id, cmd_timeout=self.command_timeout)
        except AirflowNotFoundException:
            variable = f"AIRFLOW_CONN_{str(self.ssh_conn_id).upper()}"
            raise PermanentClusterError(
                f"no Airflow connection {self.ssh_conn_id!r} (cluster.ssh_conn_id): create it in Admin → "
                f"Connections or export {variable} (see the README's Airflow section)") from None

    def close(self) -> None:
        """Close the SFTP session and the SSH connection (safe to call twice)."""
        for handle in (self._sftp, self._ssh):
            if handle is not None:
                try:
                    handle.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    log.debug("ignoring error while closing", exc_info=True)
        self._sftp = self._ssh = None

    def __enter__(self) -> SlurmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------------------------
    def run(self, command: str, *, timeout: Optional[float] = None, check: bool = False) -> CommandResult:
        """Run one remote command.

        :param command: a command string built by :mod:`faxflow.slurm.commands`
        :param timeout: inactivity timeout, default ``command_timeout``
        :param check: raise :class:`SlurmCommandError` on a non-zero exit
        """
        self.commands_run += 1
        if self._runner is not None:
            result = self._runner(command)
        else:
            client = self._client()
            status, out, err = self._hook.exec_ssh_client_command(
                client, command, get_pty=False, environment=None,
                timeout=timeout if timeout is not None else self.command_timeout)
            result = CommandResult(status if status is not None and status >= 0 else -1,
                                   out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        if check and not result.ok:
            raise SlurmCommandError(command, result)
        return result

    def submit(self, script_path: str, *, options: Optional[Mapping[str, str | int]] = None) -> Submission:
        """``sbatch --parsable`` a script that is already on the cluster; returns the job id."""
        command = commands.sbatch(script_path, options=options)
        return parse_sbatch(self.run(command, check=True).stdout)

    def query(self, job_ids: Iterable[str]) -> QueryOutcome:
        """States of many jobs (sacct, falling back to squeue/scontrol)."""
        outcome = run_query(job_ids, self.run, use_sacct=self.use_sacct)
        self.use_sacct = outcome.sacct_available
        return outcome

    def status(self, job_id: str) -> Optional[JobStatus]:
        """One job's folded state, or None if no Slurm view knows it."""
        return self.query([job_id]).statuses.get(job_id)

    def check_job_options(self, script_path: str) -> None:
        """Ask Slurm once whether it would accept the script's job (``sbatch --test-only``), submitting nothing.

        Raises :class:`PermanentClusterError` if the partition, account or QOS is unknown; other failures
        (controller unreachable …) raise :class:`SlurmCommandError`, which is worth a retry.
        """
        command = f"sbatch --test-only {shlex.quote(commands.check_path(script_path))}"
        result = self.run(command)
        if result.ok:
            return
        detail = (result.stderr or result.stdout).strip()
        if _REJECTED_OPTIONS.search(detail):
            raise PermanentClusterError(f"Slurm refuses the job options of {script_path} (cluster.partition, "
                                        f"cluster.account, cluster.qos): {detail[-500:]}")
        raise SlurmCommandError(command, result)

    def find_live_by_name(self, name: str) -> Optional[JobStatus]:
        """The newest queued/running job of this user with exactly this name, if any."""
        result = self.run(commands.squeue_by_name(name))
        if not result.ok:
            return None
        rows = [row for row in parse_squeue(result.stdout).rows if row.name == name]
        return first_live(rows)

    def cancel(self, job_ids: Iterable[str]) -> CommandResult:
        """``scancel`` (a finished or unknown id is not an error)."""
        return self.run(commands.scancel(job_ids))

    def mkdirs(self, *paths: str) -> None:
        self.run(commands.mkdir(*paths), check=True)

    def tail(self, path: str, lines: int = 50) -> str:
        """Last lines of a remote file ('' if it does not exist)."""
        return self.run(commands.tail(path, lines)).stdout

    # -- files ------------------------------------------------------------------------------------
    def _sftp_client(self):
        if self._sftp is None:
            self._sftp = self._client().open_sftp()
        return self._sftp

    def upload(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        """Write ``data`` to ``remote_path`` atomically (temporary name, then rename).

        :param data: file content
        :param remote_path: absolute path on the cluster; its directory must exist
        :param mode: permission bits
        """
        commands.check_path(remote_path)
        if self._runner is not None:
            self._files[remote_path] = bytes(data)
            return
        sftp = self._sftp_client()
        temporary = posixpath.join(posixpath.dirname(remote_path),
                                   f".{posixpath.basename(remote_path)}.{uuid.uuid4().hex[:8]}.tmp")
        with sftp.open(temporary, "wb") as handle:
            handle.write(data)
        sftp.chmod(temporary, mode)
        sftp.posix_rename(temporary, remote_path)

    def upload_file(self, local_path: str | os.PathLike, remote_path: str, *, mode: int = 0o600) -> None:
        with open(local_path, "rb") as handle:
            self.upload(handle.read(), remote_path, mode=mode)

    def read_bytes(self, remote_path: str, *, max_bytes: int = 16 * 1024 * 1024) -> Optional[bytes]:
        """A remote file's content, or None if it does not exist."""
        commands.check_path(remote_path)
        if self._runner is not None:
            return self._files.get(remote_path)
        sftp = self._sftp_client()
        try:
            with sftp.open(remote_path, "rb") as handle:
                return handle.read(max_bytes)
        except FileNotFoundError:
            return None
        except OSError as error:
            if getattr(error, "errno", None) == 2:
                return None
            raise
