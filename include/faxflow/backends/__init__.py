"""Where a campaign's groups run: one module per backend behind one small interface, chosen by name.

The Airflow code (:mod:`faxflow.airflow.tasks`, :mod:`faxflow.airflow.operators`) never looks at the
backend's name: it builds the backend of a variant's cluster settings with :func:`for_cluster` (tasks) or
:func:`create` (the group operator) and uses only the methods below (defaults in
:class:`faxflow.backends.base.Backend`). A backend is constructed as ``factory(cluster, plan_info=…,
operator=…)``: the variant's cluster settings, the plan task's output (later tasks), and for group tasks the
operator (its ``spec``, ``ssh_conn_id``, ``poll_interval``, ``max_wait_seconds``, ``command_timeout`` …).

Plan, prepare, collect and report:

``planned_output_root(cluster, local_root) -> str`` (a static method)
    where the jobs write, as far as it is known without reaching the backend (a dry run's plan);
    ``locate`` may resolve it further
``locate(local_root) -> dict``
    where the jobs write: ``{"output_root": …}`` plus anything the backend wants back in ``plan_info``
``prepare(variant, info) -> [dict]``
    make the variant's groups runnable; per group (in ``info["groups"]`` order) the backend's part of the
    group task's spec, at least ``manifest`` (the slice where the job runs)
``index_path() -> str``
    the manifest index where ``faxflow collect``/``report`` run
``run_faxflow(args, spec=None) -> (exit code, stdout, stderr)``
    run ``faxflow <args>`` where the outputs are (``spec``: a group spec of this backend, to reuse what
    prepare found)
``read_bytes(path) -> bytes | None``, ``read_json(path) -> dict | None`` and ``fetch(paths, local_dir) -> [Path]``
    read an output, or bring output files to this machine (a backend that writes here returns them as they are)
``location``
    ``"local"`` or ``"cluster"``: where the outputs are, for summaries

A group's job (the operator):

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
``tail(path, lines) -> str``
    the end of the job's logs and of failed productions' logs
``cancel(job)`` and ``close()`` (a backend is also a context manager that closes itself)
``job_hints(job) -> [str]`` (a static method)
    shell commands an operator can run to look at a stored job by hand (the plugin's job page)

Adding a scheduler (PBS, HTCondor …) is one module with such a class plus registration: :func:`register`
in the running process, or an entry point in the group :data:`ENTRY_POINT_GROUP` of an installed package
(``[project.entry-points."faxflow.backends"] pbs = "site_faxflow.pbs:PbsBackend"``), which every process
(scheduler, workers, triggerer, jobs) finds. Campaign validation accepts exactly the names of
:func:`names`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib import metadata
from typing import Any, Optional

#: The backends that ship with faxflow: name → "module:class" (imported on first use).
BUILTIN = {"slurm": "faxflow.backends.slurm:SlurmBackend", "local": "faxflow.backends.local:LocalBackend"}
#: Entry-point group under which installed packages add backends.
ENTRY_POINT_GROUP = "faxflow.backends"

_registered: dict[str, Callable[..., Any]] = {}


def register(name: str, factory: Callable[..., Any]) -> None:
    """Make ``factory(cluster, plan_info=…, operator=…)`` the backend called ``name`` in this process."""
    _registered[name] = factory


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {point.name: point for point in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Every backend name a campaign may use: faxflow's, registered ones and installed entry points."""
    return sorted({*BUILTIN, *_registered, *_entry_points()})


def check_name(name: str) -> str:
    """``name`` if a backend of that name exists (looking at installed entry points only if needed)."""
    if name in BUILTIN or name in _registered or name in _entry_points():
        return name
    raise ValueError(f"unknown backend {name!r} (allowed: {', '.join(names())})")


def _factory(name: str) -> Callable[..., Any]:
    if name in _registered:
        return _registered[name]
    if name in BUILTIN:
        module, attribute = BUILTIN[name].split(":")
        factory = getattr(importlib.import_module(module), attribute)
    else:
        factory = _entry_points()[check_name(name)].load()
    _registered[name] = factory
    return factory


def create(name: str, cluster: dict, *, plan_info: Optional[dict] = None, operator: Any = None):
    """The backend ``name`` for ``cluster`` (a partial mapping is completed with the defaults)."""
    return _factory(name)(cluster, plan_info=plan_info, operator=operator)


def job_hints(name: str, job: dict) -> list[str]:
    """The backend ``name``'s commands for looking at ``job`` by hand; none for an unknown name."""
    try:
        factory = _factory(name)
    except (ValueError, ImportError):
        return []
    hints = getattr(factory, "job_hints", None)
    return list(hints(job)) if hints else []


def planned_output_root(cluster: dict, local_root: str) -> str:
    """The output root of the backend ``cluster`` names, as :meth:`planned_output_root` gives it."""
    return _factory(cluster.get("backend", "local")).planned_output_root(cluster, local_root)


def for_cluster(cluster: dict, plan_info: Optional[dict] = None):
    """The backend a variant's (or the campaign's) cluster settings name, for a plan/prepare/collect/report task."""
    return create(cluster.get("backend", "local"), cluster, plan_info=plan_info)
