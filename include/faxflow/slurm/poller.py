"""One status poller per SSH connection per event loop, shared by every trigger watching jobs there.

In the triggerer, fifty deferred group tasks mean fifty :class:`~faxflow.airflow.triggers.SlurmJobTrigger`
instances on one asyncio loop. Each calls :func:`watch` for its job id; the first one starts a
:class:`SharedPoller` for its connection key, which keeps a single connection open and, once per poll
interval (with jitter), runs **one** ``sacct`` for all watched ids and fans the results out. When the
last watcher leaves, the poller closes its connection and disappears.

The connection comes from a ``connect`` coroutine factory, so the poller itself knows nothing about SSH:
tests and ``bench/bench_poll.py`` pass a fake.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Optional, Protocol

from faxflow.slurm.query import CommandResult, QueryOutcome, arun_query
from faxflow.slurm.states import JobStatus

log = logging.getLogger(__name__)


class AsyncRunner(Protocol):
    """What a poller needs from a connection."""

    async def run(self, command: str) -> CommandResult: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class PollResult:
    """One poll round, as seen by one watcher.

    :param status: the job's state, or None if no Slurm view showed it this round
    :param error: set when the round failed (connection lost, command failed)
    :param bad_lines: unparsable output lines of this round (garbage answers)
    :param round: the poller's round counter
    """

    status: Optional[JobStatus]
    error: Optional[str] = None
    bad_lines: int = 0
    round: int = 0


@dataclass
class PollerStats:
    rounds: int = 0
    commands: int = 0
    connects: int = 0
    round_times: list[float] = field(default_factory=list)
    ids_per_round: list[int] = field(default_factory=list)
    commands_per_round: list[int] = field(default_factory=list)


class SharedPoller:
    """Polls all watched job ids of one connection in one batched query per interval.

    :param key: connection key (the Airflow ``ssh_conn_id``)
    :param connect: coroutine factory returning an :class:`AsyncRunner`
    :param jitter: relative jitter on the interval (0.1 → ±10 %)
    :param command_timeout: seconds before one status query counts as failed
    """

    def __init__(self, key: str, connect: Callable[[], Awaitable[AsyncRunner]], *, jitter: float = 0.1,
                 command_timeout: float = 120.0):
        self.key = key
        self._connect = connect
        self.jitter = jitter
        self.command_timeout = command_timeout
        self._watchers: dict[str, set[asyncio.Queue]] = {}
        self._intervals: dict[asyncio.Queue, float] = {}
        self._conn: Optional[AsyncRunner] = None
        self._task: Optional[asyncio.Task] = None
        self._wakeup = asyncio.Event()
        self._use_sacct = True
        self.stats = PollerStats()

    @property
    def watched(self) -> list[str]:
        return sorted(self._watchers)

    def _interval(self) -> float:
        return min(self._intervals.values(), default=30.0)

    def subscribe(self, job_id: str, interval: float) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        first_for_id = job_id not in self._watchers
        self._watchers.setdefault(job_id, set()).add(queue)
        self._intervals[queue] = float(interval)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"faxflow-poller-{self.key}")
        elif first_for_id:
            self._wakeup.set()  # a new job: ask about it soon instead of waiting a whole interval
        return queue

    def unsubscribe(self, job_id: str, queue: asyncio.Queue) -> None:
        watchers = self._watchers.get(job_id)
        if watchers is not None:
            watchers.discard(queue)
            if not watchers:
                del self._watchers[job_id]
        self._intervals.pop(queue, None)
        if not self._watchers:
            self._wakeup.set()

    async def _run(self, command: str) -> CommandResult:
        self.stats.commands += 1
        return await self._conn.run(command)

    async def run(self, command: str) -> CommandResult:
        """One extra command over the poller's connection (e.g. reading a job's log), opening it if needed."""
        if self._conn is None:
            self.stats.connects += 1
            self._conn = await asyncio.wait_for(self._connect(), self.command_timeout)
        return await asyncio.wait_for(self._conn.run(command), self.command_timeout)

    async def _poll_once(self, ids: list[str]) -> None:
        self.stats.rounds += 1
        before = self.stats.commands
        started = time.monotonic()
        try:
            if self._conn is None:
                self.stats.connects += 1
                self._conn = await asyncio.wait_for(self._connect(), self.command_timeout)
            outcome: QueryOutcome = await asyncio.wait_for(
                arun_query(ids, self._run, use_sacct=self._use_sacct), self.command_timeout)
            self._use_sacct = outcome.sacct_available
            error = "; ".join(outcome.errors) if outcome.errors and not outcome.statuses else None
            for job_id in ids:
                self._publish(job_id, PollResult(outcome.statuses.get(job_id), error, len(outcome.bad_lines),
                                                 self.stats.rounds))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the watchers, who count them
            log.warning("Slurm status poll over %s failed: %s", self.key, exc)
            await self._drop_connection()
            for job_id in ids:
                self._publish(job_id, PollResult(None, f"{type(exc).__name__}: {exc}", 0, self.stats.rounds))
        finally:
            self.stats.round_times.append(time.monotonic() - started)
            self.stats.ids_per_round.append(len(ids))
            self.stats.commands_per_round.append(self.stats.commands - before)

    def _publish(self, job_id: str, result: PollResult) -> None:
        for queue in list(self._watchers.get(job_id, ())):
            queue.put_nowait(result)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - a failed close of a dropped connection changes nothing
                log.debug("ignoring error while closing poller connection", exc_info=True)

    async def _loop(self) -> None:
        try:
            while self._watchers:
                self._wakeup.clear()
                await self._poll_once(self.watched)
                delay = self._interval() * random.uniform(1 - self.jitter, 1 + self.jitter)
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
                except TimeoutError:
                    pass
        finally:
            _forget(self)
            await self._drop_connection()


#: (id of the event loop, connection key) → poller. Triggers of one triggerer share one loop.
_POLLERS: dict[tuple[int, str], SharedPoller] = {}


def _forget(poller: SharedPoller) -> None:
    for registry_key, value in list(_POLLERS.items()):
        if value is poller:
            del _POLLERS[registry_key]


def get_poller(key: str, connect: Callable[[], Awaitable[AsyncRunner]], **kwargs) -> SharedPoller:
    """The running loop's poller for ``key``, created on first use."""
    registry_key = (id(asyncio.get_running_loop()), key)
    poller = _POLLERS.get(registry_key)
    if poller is None or (poller._task is not None and poller._task.done()):
        poller = SharedPoller(key, connect, **kwargs)
        _POLLERS[registry_key] = poller
    return poller


async def watch(key: str, job_id: str, connect: Callable[[], Awaitable[AsyncRunner]], *, interval: float,
                **kwargs) -> AsyncIterator[PollResult]:
    """Yield a :class:`PollResult` for ``job_id`` after every poll round of the shared poller for ``key``.

    Stop iterating (``break``/``return``) to leave; the poller stops when nobody watches any more.
    """
    poller = get_poller(key, connect, **kwargs)
    queue = poller.subscribe(job_id, interval)
    try:
        while True:
            yield await queue.get()
    finally:
        poller.unsubscribe(job_id, queue)


class AsyncSSHRunner:
    """:class:`AsyncRunner` over one asyncssh connection."""

    def __init__(self, connection, command_timeout: float = 60.0):
        self._connection = connection
        self.command_timeout = command_timeout

    async def run(self, command: str) -> CommandResult:
        result = await self._connection.run(command, check=False, timeout=self.command_timeout)
        status = result.exit_status if result.exit_status is not None else -1
        out = result.stdout if isinstance(result.stdout, str) else (result.stdout or b"").decode("utf-8", "replace")
        err = result.stderr if isinstance(result.stderr, str) else (result.stderr or b"").decode("utf-8", "replace")
        return CommandResult(status, out or "", err or "")

    async def close(self) -> None:
        self._connection.close()
        await self._connection.wait_closed()


def _ssh_modules():
    """Import what an SSH connection needs (paramiko, asyncssh, the SSH provider: seconds on a busy node)."""
    import asyncssh
    from airflow.providers.common.compat.connection import get_async_connection
    from airflow.providers.ssh.hooks.ssh import SSHHookAsync

    from faxflow.slurm import client

    return asyncssh, get_async_connection, SSHHookAsync, client


async def connect_ssh(ssh_conn_id: str, command_timeout: float = 60.0) -> AsyncSSHRunner:
    """Open an asyncssh connection for an Airflow SSH connection id, refusing unchecked host keys.

    The first import of the SSH stack takes long enough to stall every other trigger of the triggerer, so
    it happens in a worker thread.
    """
    asyncssh, get_async_connection, SSHHookAsync, client = await asyncio.to_thread(_ssh_modules)
    conn = await get_async_connection(ssh_conn_id)
    client.refuse_unchecked_host_keys(conn.extra_dejson if conn.extra else {})
    try:
        connection = await SSHHookAsync(ssh_conn_id=ssh_conn_id).get_conn()
    except asyncssh.HostKeyNotVerifiable as error:
        raise client.host_key_mismatch(ssh_conn_id, str(error)) from None
    return AsyncSSHRunner(connection, command_timeout)
