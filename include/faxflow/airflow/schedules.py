"""When a scheduled campaign runs: at its cron times from now on, never for a time already past.

Airflow's cron timetables with ``catchup=False`` still start the most recent past interval as soon as a
DAG is unpaused (or after a long pause): for a campaign that books fifty nodes, unpausing at 14:00 would
launch the 02:00 run at once. :class:`UpcomingCronTimetable` schedules the next cron time after now
instead. A run whose time passed less than :data:`LATE_START_GRACE` ago still starts, so a scheduler
that was briefly busy or restarted does not skip a night.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import timezone
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable

#: How late a scheduled run may still start (scheduler lag, restarts); older times are skipped.
LATE_START_GRACE = timedelta(minutes=5)


class UpcomingCronTimetable(CronTriggerTimetable):
    """A cron schedule whose first run (and first run after a pause) is the next cron time after now."""

    @property
    def summary(self) -> str:
        return f"{self._expression} (next time from now)"

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        if restriction.catchup:
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


def campaign_schedule(expression: str | None):
    """The Airflow ``schedule`` of a campaign's ``schedule:`` key (cron or preset like ``@daily``; None: manual)."""
    if expression is None or expression == "@once":
        return expression
    return UpcomingCronTimetable(expression, timezone="UTC")
