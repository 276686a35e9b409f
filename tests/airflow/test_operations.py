"""Trigger-conf checks (also as api-server middleware), the campaign schedule, the pool keeper."""

import asyncio
import json
import shutil
from datetime import UTC, datetime

import pytest
from conftest import PROJECT


@pytest.fixture(scope="module")
def demo():
    from faxflow.config import load_campaign

    return load_campaign(PROJECT / "configs" / "demo.yaml")


def test_conf_problems_name_the_key_and_the_allowed_values(demo):
    from faxflow import limits
    from faxflow.airflow.trigger_params import conf_problems

    assert conf_problems({"variants": ["diffusion_sr1"], "events": 5, "dry_run": True}, demo) == []
    assert conf_problems({}, demo) == [] and conf_problems(None, demo) == []
    [unknown] = conf_problems({"bogus": 1}, demo)
    assert "unknown key 'bogus'" in unknown and "variants, number_job, events, dry_run, force" in unknown
    [variant] = conf_problems({"variants": ["nope"]}, demo)
    assert "'nope'" in variant and "diffusion_sr0" in variant and "diffusion_sr1" in variant
    ceiling = limits.trigger_maxima(demo.limits)["events"]
    [too_many] = conf_problems({"events": ceiling + 1}, demo)
    assert f"1..{ceiling}" in too_many
    assert len(conf_problems({"number_job": 0, "force": "yes", "events": 2.5}, demo)) == 3


def _call(guard, path, body):
    sent, seen = [], {}

    async def app(scope, receive, send):
        seen["body"] = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    guard.app = app
    asyncio.run(guard({"type": "http", "method": "POST", "path": path}, receive, send))
    return sent[0]["status"], (sent[1]["body"] if len(sent) > 1 else None), seen.get("body")


def test_guard_refuses_unknown_keys_before_airflow_sees_them(demo):
    from faxflow.airflow.trigger_params import TriggerConfGuard

    guard = TriggerConfGuard(None, find_campaign=lambda dag_id: demo if dag_id == "fax_demo" else None)
    status, body, _ = _call(guard, "/api/v2/dags/fax_demo/dagRuns", json.dumps({"conf": {"bogus": 1}}).encode())
    assert status == 400 and "unknown key 'bogus'" in json.loads(body)["detail"]
    good = json.dumps({"conf": {"events": 3}, "logical_date": None}).encode()
    status, _, forwarded = _call(guard, "/api/v2/dags/fax_demo/dagRuns", good)
    assert status == 200 and forwarded == good  # passed on unchanged
    status, _, _ = _call(guard, "/api/v2/dags/other/dagRuns", json.dumps({"conf": {"bogus": 1}}).encode())
    assert status == 200  # not a campaign DAG: left to Airflow


def test_params_are_optional_and_bounded_by_the_limits(demo):
    from faxflow import limits
    from faxflow.airflow.trigger_params import TRIGGER_KEYS, params_for

    params = params_for(demo)
    assert tuple(params) == TRIGGER_KEYS
    for param in params.values():
        assert "null" in param.schema["type"]  # nothing is required: empty means the campaign file's value
    assert params["variants"].schema["examples"] == ["diffusion_sr0", "diffusion_sr1"]
    assert params["events"].schema["maximum"] == limits.trigger_maxima(demo.limits)["events"]


def _next(now, last_end=None, catchup=False):
    """The next run time of ``0 2 * * *`` at ``now`` (the DAG's own catchup is always False)."""
    from airflow.timetables import trigger
    from airflow.timetables.base import DataInterval, TimeRestriction

    from faxflow.airflow import schedules

    timetable = schedules.campaign_schedule("0 2 * * *", catchup=catchup)
    last = DataInterval(last_end, last_end) if last_end else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schedules.timezone, "utcnow", lambda: now)
        patch.setattr(trigger, "utcnow", lambda: now)
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=TimeRestriction(
            datetime(2024, 1, 1, tzinfo=UTC), None, False))
    return info.run_after


def test_schedule_never_starts_a_past_night():
    utc = UTC
    # unpaused at 14:00: the next run is tomorrow 02:00, not this morning's
    assert _next(datetime(2026, 12, 1, 14, 0, tzinfo=utc)) == datetime(2026, 12, 2, 2, 0, tzinfo=utc)
    # after a week's pause as well
    assert _next(datetime(2026, 12, 8, 14, 0, tzinfo=utc), last_end=datetime(2026, 12, 1, 2, 0, tzinfo=utc)) \
        == datetime(2026, 12, 9, 2, 0, tzinfo=utc)
    # a scheduler three minutes late still starts tonight's run, once
    late = datetime(2026, 12, 1, 2, 3, tzinfo=utc)
    assert _next(late) == datetime(2026, 12, 1, 2, 0, tzinfo=utc)
    assert _next(late, last_end=datetime(2026, 12, 1, 2, 0, tzinfo=utc)) == datetime(2026, 12, 2, 2, 0, tzinfo=utc)


def test_catchup_starts_the_latest_missed_night_once():
    utc = UTC
    # unpaused at 14:00: this morning's 02:00 starts at once (one run, not one per day since the start date)
    assert _next(datetime(2026, 12, 1, 14, 0, tzinfo=utc), catchup=True) == datetime(2026, 12, 1, 2, 0, tzinfo=utc)
    # after a week's pause: only the latest missed night
    assert _next(datetime(2026, 12, 8, 14, 0, tzinfo=utc), last_end=datetime(2026, 12, 1, 2, 0, tzinfo=utc),
                 catchup=True) == datetime(2026, 12, 8, 2, 0, tzinfo=utc)
    # once it ran, the next is tomorrow's
    assert _next(datetime(2026, 12, 1, 14, 0, tzinfo=utc), last_end=datetime(2026, 12, 1, 2, 0, tzinfo=utc),
                 catchup=True) == datetime(2026, 12, 2, 2, 0, tzinfo=utc)


def test_catchup_survives_serialization_and_needs_a_schedule(tmp_path):
    import yaml
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    from faxflow.airflow import schedules
    from faxflow.config import load_campaign
    from faxflow.errors import ConfigError

    for catchup in (False, True):
        timetable = decode_timetable(encode_timetable(schedules.campaign_schedule("0 2 * * *", catchup=catchup)))
        assert isinstance(timetable, schedules.UpcomingCronTimetable) and timetable._catch_up_latest is catchup
    assert "latest missed time first" in schedules.campaign_schedule("0 2 * * *", catchup=True).summary

    config = yaml.safe_load((PROJECT / "configs" / "demo.yaml").read_text())
    config.update(catchup=True)
    config.pop("schedule", None)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as error:
        load_campaign(tmp_path / "c.yaml")
    assert "catchup: needs a repeating schedule" in str(error.value)
    config["schedule"] = "@daily"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert load_campaign(tmp_path / "c.yaml").catchup is True


def test_scheduled_dag_serializes_and_shows_its_next_run(configs_dir, airflow_db):
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    shutil.copy(PROJECT / "configs" / "midway_diffusion_scan.yaml", configs_dir / "nightly.yaml")
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(PROJECT / "dags"))
    assert not bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:
        model = session.get(DagModel, "fax_midway_diffusion_scan")
        assert model.next_dagrun_create_after is not None
        assert model.next_dagrun_create_after > datetime.now(UTC)
        assert model.next_dagrun_create_after.hour == 2


def test_pool_keeper_creates_and_resizes_campaign_pools(configs_dir, airflow_db, monkeypatch):
    import yaml
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    from faxflow.airflow import pool_keeper

    config = yaml.safe_load((PROJECT / "configs" / "demo.yaml").read_text())
    config.update(name="pooled")
    config["cluster"].update(pool="faxflow_added_later", max_concurrent_jobs=3)
    (configs_dir / "pooled.yaml").write_text(yaml.safe_dump(config))

    class Run:
        dag_id = "fax_pooled"

    with create_session() as session:
        monkeypatch.setattr("sqlalchemy.orm.object_session", lambda run: session)
        pool_keeper.on_dag_run_running(Run(), "started")
    with create_session() as session:
        pool = session.query(Pool).filter_by(pool="faxflow_added_later").one()
        assert (pool.slots, pool.include_deferred) == (3, True)
    config["cluster"]["max_concurrent_jobs"] = 5
    (configs_dir / "pooled.yaml").write_text(yaml.safe_dump(config))
    with create_session() as session:
        monkeypatch.setattr("sqlalchemy.orm.object_session", lambda run: session)
        pool_keeper.on_dag_run_running(Run(), "started")
    with create_session() as session:
        assert session.query(Pool).filter_by(pool="faxflow_added_later").one().slots == 5
    with create_session() as session:
        recorded = pool_keeper.parse_record(session.query(Variable).filter_by(key=pool_keeper.POOLS_VARIABLE).one().val)
    assert recorded["faxflow_added_later"] == {"slots": 5, "include_deferred": True}


def test_pool_record_follows_the_pools(airflow_db):
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    from faxflow.airflow import pool_keeper
    from faxflow.airflow.home import create_pools

    def record():
        with create_session() as session:
            text = session.query(Variable).filter_by(key=pool_keeper.POOLS_VARIABLE).one().val
        return pool_keeper.parse_record(text)

    create_pools({"faxflow_rec_a": 2, "faxflow_rec_b": 1})
    assert pool_keeper.pool_problems({"faxflow_rec_a": 2, "faxflow_rec_b": 1}, record()) == []
    Pool.delete_pool("faxflow_rec_b")
    create_pools({"faxflow_rec_a": 4})  # the next keeper pass drops the pool deleted meanwhile
    assert "faxflow_rec_b" not in record() and record()["faxflow_rec_a"]["slots"] == 4
    [resized, missing] = pool_keeper.pool_problems({"faxflow_rec_b": 1, "faxflow_rec_a": 2}, record())
    assert missing == "pool faxflow_rec_b (1 slots, include_deferred) does not exist (or was not made by faxflow)"
    assert resized == "pool faxflow_rec_a (2 slots, include_deferred) has 4 slots, include_deferred"
    assert "without include_deferred" in pool_keeper.pool_problems(
        {"p": 1}, {"p": {"slots": 1, "include_deferred": False}})[0]
    assert pool_keeper.parse_record("not json") == {} and pool_keeper.parse_record('["a"]') == {}
