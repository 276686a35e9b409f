"""The pax engine's output checks, step by step, against stand-ins that misbehave on purpose."""

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from faxflow.config import campaign_from_dict
from faxflow.engines import StepCounts
from faxflow.engines.pax import PaxEngine
from faxflow.errors import ValidationFailure

sys.path.insert(0, str(Path(__file__).parent))
from fakepax import ACTIVATE, make_fake_env  # noqa: E402 - after putting tests/ on sys.path
from test_pax_local_run import EXPECT  # noqa: E402 - after putting tests/ on sys.path

EVENTS = 5
INSTRUCTIONS = "instruction,recoil_type,x,y,depth,s1_photons,s2_electrons,t\n" + "".join(
    f"{i},ER,{i}.5,-1.25,{10 + i}.0,{60 + i},{20 + i},1000.0\n" for i in range(EVENTS))


def chain(tmp_path: Path, fault=None, **pax) -> tuple[PaxEngine, Path]:
    env = make_fake_env(tmp_path, {**EXPECT, "fault": fault})
    settings = campaign_from_dict({
        "name": "c", "engine": "pax", "pmt_afterpulse": False, "s2_afterpulse": False,
        "physics": {"drift_velocity_um_per_ns": 1.5, "diffusion_constant_cm2_per_s": 40.0},
        "pax": {"conda_env": str(env), "conda_activate": ACTIVATE, **pax}}).variants[0].settings
    sim = tmp_path / "sim"
    for folder in ("instructions", "truth_raw", "raw", "processed", "minitrees"):
        (sim / folder).mkdir(parents=True)
    (sim / "instructions" / "p0.csv").write_text(INSTRUCTIONS)
    return PaxEngine.from_settings(settings), sim


def simulate(engine: PaxEngine, sim: Path):
    return engine.simulate(sim / "instructions" / "p0.csv", sim / "truth_raw" / "p0.csv", sim / "raw" / "p0", seed=7)


def test_a_good_chain_counts_every_event_at_every_step(tmp_path):
    engine, sim = chain(tmp_path)
    assert simulate(engine, sim) == StepCounts(EVENTS, EVENTS)
    assert engine.process(sim / "raw" / "p0", sim / "processed" / "p0.root") == StepCounts(EVENTS, EVENTS)
    minitrees = engine.minitrees(sim / "processed" / "p0.root", sim / "minitrees" / "p0.parquet")
    assert minitrees == StepCounts(EVENTS, EVENTS)
    table = pq.read_table(sim / "minitrees" / "p0.parquet")
    assert table.num_rows == EVENTS and "index" not in table.column_names
    groups = json.loads(table.schema.metadata[b"faxflow.minitrees"])["treemakers"]
    assert set(table.column_names) == {column for columns in groups.values() for column in columns}
    assert (sim / "pax_configs").is_dir()


def test_truth_without_the_fax_columns_fails_the_simulation(tmp_path):
    engine, sim = chain(tmp_path, fault="bad_truth")
    with pytest.raises(ValidationFailure, match="no usable fax truth.*lacks columns"):
        simulate(engine, sim)


def test_no_raw_data_fails_the_simulation(tmp_path):
    engine, sim = chain(tmp_path, fault="no_raw")
    with pytest.raises(ValidationFailure, match="no raw data"):
        simulate(engine, sim)


def test_a_lost_event_shows_in_the_processing_counts(tmp_path):
    engine, sim = chain(tmp_path, fault="lose_event")
    simulate(engine, sim)
    counts = engine.process(sim / "raw" / "p0", sim / "processed" / "p0.root")
    assert (counts.events_in, counts.events_out) == (EVENTS, EVENTS - 1)  # the pipeline refuses in != out


def test_an_empty_processed_file_fails_processing(tmp_path):
    engine, sim = chain(tmp_path, fault="empty_root")
    simulate(engine, sim)
    with pytest.raises(ValidationFailure, match=r"wrote no processed file .* \(or an empty one\)"):
        engine.process(sim / "raw" / "p0", sim / "processed" / "p0.root")


@pytest.mark.parametrize("tolerance,passes", [(0.0, False), (0.2, True)])
def test_minitree_events_must_match_within_the_tolerance(tmp_path, tolerance, passes):
    engine, sim = chain(tmp_path, fault="lose_row", event_tolerance=tolerance)
    simulate(engine, sim)
    engine.process(sim / "raw" / "p0", sim / "processed" / "p0.root")
    out = sim / "minitrees" / "p0.parquet"
    if passes:
        assert engine.minitrees(sim / "processed" / "p0.root", out) == StepCounts(EVENTS - 1, EVENTS - 1)
    else:
        with pytest.raises(ValidationFailure, match=f"4 events from {EVENTS} processed events"):
            engine.minitrees(sim / "processed" / "p0.root", out)
        assert not out.exists()
