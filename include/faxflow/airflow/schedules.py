"""When a scheduled campaign runs: at its cron times from now on, or, if it asks (``catchup: true``), also
at the latest cron time already past.

Airflow's cron timetables with ``catchup=False`` still start the most recent past interval as soon as a
DAG is unpaused (or after a long pause): for a campaign that books fifty nodes, unpausing at 14:00 would
launch the 02:00 run at once. :class:`UpcomingCronTimetable` schedules the next cron time after now
instead. A run whose time passed less than :data:`LATE_START_GRACE` ago still starts, so a scheduler
that was briefly busy or restarted does not skip a night. A campaign with ``catchup: true`` gets
Airflow's behaviour: the latest missed time starts at once (one run, never a backfill of every interval).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import timezone
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable

#: How late a scheduled run may still start (scheduler lag, restarts); older times are skipped.
LATE_START_GRACE = timedelta(minutes=5)


class UpcomingCronTimetable(CronTriggerTimetable):
    """A cron schedule whose first run (and first run after a pause) is the next cron time after now,
    or with ``catch_up_latest`` the latest cron time already past."""

    def __init__(self, cron: str, *, timezone, catch_up_latest: bool = False, **kwargs: Any) -> None:
        super().__init__(cron, timezone=timezone, **kwargs)
        self._catch_up_latest = catch_up_latest

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> UpcomingCronTimetable:
        timetable = super().deserialize(data)
        timetable._catch_up_latest = bool(data.get("catch_up_latest", False))
        return timetable

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "catch_up_latest": self._catch_up_latest}

    @property
    def summary(self) -> str:
        return f"{self._expression} ({'latest missed time first' if self._catch_up_latest else 'next time from now'})"

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        if restriction.catchup or self._catch_up_latest:
            return super().next_dagrun_info(last_automated_data_interval=last_automated_data_interval,
                                            restriction=restriction)
        now = timezone.coerce_datetime(timezone.utcnow())
        start = self._align_to_next(now)
        latest_past = self._align_to_prev(now)
        already_run = last_automated_data_interval is not None and latest_past <= last_automated_data_interval.end
        if now - latest_past <= LATE_START_GRACE and not already_run:
            start = latest_past
        if restriction.latest is not None and restriction.latest < start:
            return None
        return DagRunInfo.interval(timezone.coerce_datetime(start - self._interval), start)


def campaign_schedule(expression: str | None, catchup: bool = False):
    """The Airflow ``schedule`` of a campaign's ``schedule:`` and ``catchup:`` keys (cron or preset like
    ``@daily``; None: manual)."""
    if expression is None or expression == "@once":
        return expression
    return UpcomingCronTimetable(expression, timezone="UTC", catch_up_latest=catchup)
