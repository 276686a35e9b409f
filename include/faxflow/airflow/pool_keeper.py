"""Campaign pools that follow the campaign files, kept by the scheduler itself.

A campaign's ``run`` tasks sit in ``cluster.pool``; a pool that does not exist leaves them "scheduled"
forever. ``make up`` and the compose init create every pool, but a campaign file added later (or a
changed ``max_concurrent_jobs``) would not be seen until the next deployment. So the scheduler, through
this Airflow listener, creates or resizes the pools of a campaign (``include_deferred``) each time one of
its runs starts, in the scheduler's own database transaction, before any of the run's tasks is queued.
"""

from __future__ import annotations

import logging

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

#: Pool description: says who keeps the pool, so an operator knows a manual resize will be undone.
POOL_DESCRIPTION = "faxflow: jobs in flight (include_deferred; sized by cluster.max_concurrent_jobs)"


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
    return changes


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
