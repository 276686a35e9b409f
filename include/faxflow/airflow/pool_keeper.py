"""Campaign pools that follow the campaign files, kept by the scheduler itself.

A campaign's ``run`` tasks sit in ``cluster.pool``; a pool that does not exist leaves them "scheduled"
forever. ``make up`` and the compose init create every pool, but a campaign file added later (or a
changed ``max_concurrent_jobs``) would not be seen until the next deployment. So the scheduler, through
this Airflow listener, creates or resizes the pools of a campaign (``include_deferred``) each time one of
its runs starts, in the scheduler's own database transaction, before any of the run's tasks is queued.

A task cannot look a pool up (the Task SDK has no pool call), so whoever keeps the pools also records them
in the Airflow Variable :data:`POOLS_VARIABLE`; the plan task reads it (:func:`check_pools`) and fails at
once, naming the pool and the command that fixes it, where the scheduler runs without this listener.
"""

from __future__ import annotations

import json
import logging

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

#: Pool description: says who keeps the pool, so an operator knows a manual resize will be undone.
POOL_DESCRIPTION = "faxflow: jobs in flight (include_deferred; sized by cluster.max_concurrent_jobs)"

#: The Variable holding ``{pool: {"slots": n, "include_deferred": bool}}`` as last written with the pools.
POOLS_VARIABLE = "faxflow_pools"


def ensure_pools(sizes: dict[str, int], session) -> list[str]:
    """Create or resize each pool with ``include_deferred``; return what changed (for the log)."""
    from airflow.models.pool import Pool
    from sqlalchemy import select

    changes = []
    for name, size in sorted(sizes.items()):
        pool = session.scalar(select(Pool).filter_by(pool=name))
        if pool is not None and pool.slots == size and pool.include_deferred:
            continue
        changes.append(f"{name}: {'created' if pool is None else f'{pool.slots} →'} {size} slots")
        Pool.create_or_update_pool(name, size, POOL_DESCRIPTION, True, session=session)
    record_pools(set(sizes), session)
    return changes


def record_pools(names: set[str], session) -> None:
    """Write the state of ``names`` (and of the pools recorded before) to :data:`POOLS_VARIABLE`.

    Pools deleted since the last record drop out of it, so a later run fails fast instead of waiting.
    """
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from sqlalchemy import select

    session.flush()  # Airflow's sessions do not autoflush: the pools just added must be visible below
    stored = session.scalar(select(Variable).filter_by(key=POOLS_VARIABLE))
    previous = parse_record(stored.val if stored is not None else None)
    wanted = sorted(names | set(previous))
    text = json.dumps({pool.pool: {"slots": pool.slots, "include_deferred": bool(pool.include_deferred)}
                       for pool in session.scalars(select(Pool).where(Pool.pool.in_(wanted)))}, sort_keys=True)
    if stored is None:
        session.add(Variable(key=POOLS_VARIABLE, val=text, description=POOL_DESCRIPTION))
    elif stored.val != text:
        stored.val = text


def parse_record(text) -> dict[str, dict]:
    """The pools of a :data:`POOLS_VARIABLE` value (anything unreadable counts as no record)."""
    try:
        record = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(record, dict):
        return {}
    return {name: entry for name, entry in record.items() if isinstance(entry, dict)}


def pool_problems(sizes: dict[str, int], record: dict[str, dict]) -> list[str]:
    """One line per pool of ``sizes`` that the record shows missing, of another size or not include_deferred."""
    problems = []
    for name, size in sorted(sizes.items()):
        wanted = f"pool {name} ({size} slots, include_deferred)"
        entry = record.get(name)
        if entry is None:
            problems.append(f"{wanted} does not exist (or was not made by faxflow)")
        elif entry.get("slots") != size or entry.get("include_deferred") is not True:
            deferred = "include_deferred" if entry.get("include_deferred") is True else "without include_deferred"
            problems.append(f"{wanted} has {entry.get('slots')} slots, {deferred}")
    return problems


def check_pools(sizes: dict[str, int]) -> None:
    """In a task: fail (no retry) if a pool of ``sizes`` is missing or wrong, saying how to fix it."""
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowFailException

    from faxflow.airflow.home import pools_command

    problems = pool_problems(sizes, parse_record(Variable.get(POOLS_VARIABLE, default=None)))
    if problems:
        raise AirflowFailException("\n".join([
            *problems, "The run tasks would wait in 'scheduled' forever. Fix: run "
            f"`{pools_command()}` (creates and records every campaign pool), or load the faxflow_operations "
            "plugin in the scheduler, which keeps the pools at each run start; then clear this task."]))


@hookimpl
def on_dag_run_running(dag_run, msg: str) -> None:
    """A campaign run starts: make its pools match its campaign file (errors are logged, never raised)."""
    if not str(dag_run.dag_id).startswith("fax_"):
        return
    from sqlalchemy.orm import object_session

    from faxflow.airflow.dag_factory import campaign_for_dag, campaign_pools

    session = object_session(dag_run)
    campaign = campaign_for_dag(dag_run.dag_id)
    if session is None or campaign is None:
        return
    changes = ensure_pools(campaign_pools(campaign), session)
    if changes:
        log.warning("faxflow: pools of %s made to follow its campaign file: %s", dag_run.dag_id, "; ".join(changes))
