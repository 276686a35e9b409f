"""Airflow plugin for faxflow's operations: the campaign schedule timetable, the trigger-conf check of
the api-server (unknown keys → HTTP 400) and the pool keeper of the scheduler.

Loaded by every component (each needs the timetable class to read a scheduled campaign's DAG).
"""

from airflow.plugins_manager import AirflowPlugin

from faxflow.airflow import pool_keeper
from faxflow.airflow.schedules import UpcomingCronTimetable
from faxflow.airflow.trigger_params import TriggerConfGuard


class FaxflowOperationsPlugin(AirflowPlugin):
    name = "faxflow_operations"
    timetables = [UpcomingCronTimetable]
    listeners = [pool_keeper]
    fastapi_root_middlewares = [{"middleware": TriggerConfGuard, "args": [], "kwargs": {},
                                 "name": "faxflow trigger parameters"}]
