"""Where a group's job runs: one module per backend behind one small interface, chosen by name.

The group operator (:class:`faxflow.airflow.operators.FaxflowGroupOperator`) never looks at the backend's
name: it calls :func:`create` with ``spec["backend"]`` and uses only the methods below. A backend class is
constructed with the operator (its ``spec``, ``cluster``, ``ssh_conn_id``, ``poll_interval``,
``max_wait_seconds``, ``command_timeout`` …) and provides:

``submit(resources) -> job``
    start the group's job with ``resources`` (``time_limit_minutes``, ``mem_per_cpu_mb``); return a JSON-able
    dict with at least ``backend``, ``job_id``, ``job_name``, ``stdout``, ``stderr``
``status_event(job) -> event | {"status": "active", ...} | None``
    a stored job's state: a finished-job event (``status: done``, ``state``, ``exit_code``, ``signal`` …),
    active, or None if the backend no longer knows it
``find_live() -> job id | None`` and ``job_info(job_id) -> job``
    a live job of this group that the task never recorded (submitted, then the worker died)
``trigger(job) -> BaseTrigger``
    the deferrable wait; it copies the job's new log lines into the task log and fires the finished event
``tail(path, lines) -> str`` and ``read_json(path) -> dict | None``
    fetch the job's logs, the failed productions' logs and the group summary
``cancel(job)`` and ``close()``

Adding a scheduler (PBS, HTCondor …) is one module with such a class plus :func:`register` (or an entry in
:data:`BUILTIN`); campaign validation decides which names a campaign file may use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: The backends that ship with faxflow: name → "module:class" (imported on first use).
BUILTIN = {"slurm": "faxflow.backends.slurm:SlurmBackend", "local": "faxflow.backends.local:LocalBackend"}

_registered: dict[str, Callable[[Any], Any]] = {}


def register(name: str, factory: Callable[[Any], Any]) -> None:
    """Make ``factory(operator)`` the backend called ``name`` (replaces an earlier registration)."""
    _registered[name] = factory


def create(name: str, operator: Any):
    """The backend ``name`` for one execution of ``operator``."""
    if name not in _registered:
        if name not in BUILTIN:
            known = ", ".join(sorted({*BUILTIN, *_registered}))
            raise ValueError(f"unknown backend {name!r} (known: {known})")
        module, attribute = BUILTIN[name].split(":")
        _registered[name] = getattr(importlib.import_module(module), attribute)
    return _registered[name](operator)
