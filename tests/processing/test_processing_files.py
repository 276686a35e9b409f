"""process_file / build_minitrees_file: file layout, event bookkeeping and bad input."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_processing_synthetic import make_raw

from faxflow.engines.builtin import detector
from faxflow.engines.builtin.minitrees import build_minitrees_file
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.engines.builtin.processing import process as process_module
from faxflow.engines.builtin.processing.process import process, process_file, read_processed
from faxflow.engines.builtin.rawio import read_raw, write_raw
from faxflow.errors import BadInputError

PHYSICS = PhysicsParameters()
PROCESSING = ProcessingParameters.for_period("SR1", run_number=4321)
LIVE = np.flatnonzero(detector.live_mask())
BASICS = ["s1", "s2", "s1_area_fraction_top", "s2_area_fraction_top", "s1_range_50p_area", "s2_range_50p_area",
          "x_pax", "y_pax", "z", "drift_time", "largest_other_s1", "largest_other_s2", "largest_unknown",
          "largest_veto", "largest_coincidence"]


@pytest.fixture(scope="module")
def raw_path(tmp_path_factory):
    rng = np.random.default_rng(7)
    s1 = [(c, 2000 + rng.exponential(45), 1) for c in rng.choice(LIVE, 15, replace=False)]
    s1_late = [(c, 15000 + rng.exponential(45), 1) for c in rng.choice(LIVE, 6, replace=False)]
    s2 = [(c, 12000 + rng.normal(0, 300), 1) for c in rng.choice(LIVE, 500)]
    path = tmp_path_factory.mktemp("raw") / "raw.npz"
    write_raw(path, make_raw([s1 + s2 + s1_late, [], s1], length_samples=1800))
    return path


def test_processed_file_holds_every_event_and_the_peaks(raw_path, tmp_path):
    counts = process_file(raw_path, tmp_path / "p.parquet", PROCESSING)
    assert (counts.events_in, counts.events_out) == (3, 3)
    processed = read_processed(tmp_path / "p.parquet")
    assert list(processed.events["event_number"]) == [0, 1, 2]
    assert processed.events["main_s2"].tolist() == [1, -1, -1]
    assert processed.peaks.groupby("event_number").size().to_dict() == {0: 3, 2: 1}
    assert processed.peaks["type"].tolist() == ["s1", "s2", "s1", "s1"]


def test_processed_rows_are_read_by_row_type_in_any_order(raw_path, tmp_path):
    process_file(raw_path, tmp_path / "p.parquet", PROCESSING)
    table = pq.read_table(tmp_path / "p.parquet")
    rolled_rows = np.roll(np.arange(table.num_rows), 2)  # peaks 2, 3, the 3 events, peaks 0, 1
    pq.write_table(table.take(rolled_rows), tmp_path / "rolled.parquet")
    written, rolled = read_processed(tmp_path / "p.parquet"), read_processed(tmp_path / "rolled.parquet")
    assert len(written.events) == 3 and len(written.peaks) == 4
    pd.testing.assert_frame_equal(rolled.events, written.events)
    pd.testing.assert_frame_equal(rolled.peaks.iloc[[2, 3, 0, 1]].reset_index(drop=True), written.peaks)


def test_minitrees_have_one_row_per_event_with_hax_columns(raw_path, tmp_path):
    process_file(raw_path, tmp_path / "p.parquet", PROCESSING)
    counts = build_minitrees_file(tmp_path / "p.parquet", tmp_path / "m.parquet", PROCESSING)
    assert (counts.events_in, counts.events_out) == (3, 3)
    table = pq.read_table(tmp_path / "m.parquet")
    groups = json.loads(table.schema.metadata[b"faxflow.minitrees"])["treemakers"]
    assert groups["Fundamentals"] == ["run_number", "event_number", "event_time", "event_duration"]
    assert groups["Basics"] == BASICS
    assert {"cs1", "cs2", "cs2_top", "cs2_bottom", "s2_lifetime_correction", "s1_xyz_correction",
            "s2_xy_correction_tot", "x_observed", "y_observed", "r_observed"} <= set(groups["Corrections"])
    extended = {"s1_rise_time", "s1_tight_coincidence", "alt_s2_interaction_z", "sum_s1s_before_main_s2"}
    assert extended <= set(groups["Extended"])
    frame = table.to_pandas()
    assert list(frame.columns) == [c for group in groups.values() for c in group]
    assert frame["run_number"].tolist() == [4321] * 3
    assert frame["event_duration"].tolist() == [18000] * 3
    assert frame["event_time"].is_monotonic_increasing
    main = frame.iloc[0]
    assert main.s1 == pytest.approx(15, rel=0.15) and main.s2 == pytest.approx(500, rel=0.05)
    assert main.largest_other_s1 == pytest.approx(6, rel=0.3)
    assert main.sum_s1s_before_main_s2 == pytest.approx(main.s1)
    assert main.cs2 == pytest.approx(main.s2 * main.s2_lifetime_correction * main.s2_xy_correction_tot)
    # events without an interaction: NaN, but the "largest" columns default to 0
    for row in (frame.iloc[1], frame.iloc[2]):
        assert np.isnan(row.s1) and np.isnan(row.cs2) and np.isnan(row.s1_rise_time)
        assert row.largest_other_s2 == 0 and row.largest_veto == 0
    assert frame.iloc[2].largest_other_s1 == pytest.approx(15, rel=0.15)


def test_truncated_raw_file_is_bad_input(raw_path, tmp_path):
    data = raw_path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="truncated"):
        process_file(truncated, tmp_path / "p.parquet", PROCESSING)
    assert not (tmp_path / "p.parquet").exists()


def test_missing_or_foreign_processed_file_is_bad_input(tmp_path):
    with pytest.raises(BadInputError):
        build_minitrees_file(tmp_path / "absent.parquet", tmp_path / "m.parquet", PROCESSING)
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "foreign.parquet")
    with pytest.raises(BadInputError, match="not a faxflow processed file"):
        build_minitrees_file(tmp_path / "foreign.parquet", tmp_path / "m.parquet", PROCESSING)


def test_raw_file_without_events(tmp_path):
    write_raw(tmp_path / "empty.npz", make_raw([]))
    assert process_file(tmp_path / "empty.npz", tmp_path / "p.parquet", PROCESSING).events_out == 0
    counts = build_minitrees_file(tmp_path / "p.parquet", tmp_path / "m.parquet", PROCESSING)
    assert counts.events_out == 0
    assert "cs2" in pq.read_table(tmp_path / "m.parquet").column_names


def test_processing_in_chunks_gives_the_same_result(raw_path, monkeypatch):
    raw = read_raw(raw_path)
    whole = process(raw, PROCESSING)
    monkeypatch.setattr(process_module, "CHUNK_EVENTS", 1)
    chunked = process(raw, PROCESSING)
    pd.testing.assert_frame_equal(whole.events, chunked.events)
    pd.testing.assert_frame_equal(whole.peaks, chunked.peaks)
