"""faxflow.truth: SortTruth (2017 columns, aggregated, no lost events) and MergeTruth."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faxflow.engines import StepCounts
from faxflow.errors import BadInputError
from faxflow.truth import SORTED_COLUMNS, merge_truth, merge_truth_files, sort_truth, sort_truth_file

EXPECTED_COLUMNS = ["event_number", "s1", "s1_hit_time_mean", "s1_width", "s1_area_fraction_top",
                    "s2", "s2_hit_time_mean", "s2_width", "s2_area_fraction_top", "x", "y",
                    "other_s2", "other_s2_hit_time_mean", "other_s2_width", "other_s2_area_fraction_top"]
# modern-pandas insertion order (docs/physics.md "Instruction and truth files")
MODERN_ORDER = ["instruction", "repetition", "event", "peak_type", "g4_id", "x", "y", "z", "t_interaction",
                "top_fraction", "n_photons", "t_mean_photons", "t_first_photon", "t_last_photon", "t_sigma_photons",
                "n_electrons", "t_mean_electrons", "t_first_electron", "t_last_electron", "t_sigma_electrons"]


def peak(event, peak_type, n, mean, sigma, top, x, y):
    return {"instruction": event, "repetition": 0, "event": event, "peak_type": peak_type, "g4_id": -1,
            "x": x, "y": y, "z": -50.0, "t_interaction": 6000.0, "top_fraction": top, "n_photons": n,
            "t_mean_photons": mean, "t_first_photon": mean - 10, "t_last_photon": mean + 10,
            "t_sigma_photons": sigma, "n_electrons": np.nan if peak_type == "s1" else 10,
            "t_mean_electrons": np.nan, "t_first_electron": np.nan, "t_last_electron": np.nan,
            "t_sigma_electrons": np.nan}


def write_truth(path, rows, order=None):
    frame = pd.DataFrame(rows, columns=MODERN_ORDER)
    if order == "alphabetical":
        frame = frame[sorted(MODERN_ORDER)]
    frame.to_csv(path, index_label="fax_truth_peak_id")
    return path


def single_peak_rows():
    return [peak(0, "s1", 57, 6046.123456789, 13.3, 0.31, 1.0, 2.0),
            peak(0, "s2", 1520, 6700.987654321, 300.1, 0.63, 3.3, -4.4),
            peak(2, "s2", 800, 7100.5, 250.7, 0.59, -10.1, 7.7)]  # event 2: no s1; event 1: nothing


@pytest.mark.parametrize("order", [None, "alphabetical"])
def test_sort_truth_columns_and_single_peaks(tmp_path, order):
    sorted_truth = sort_truth(write_truth(tmp_path / "truth.csv", single_peak_rows(), order), 4)
    assert list(sorted_truth.columns) == EXPECTED_COLUMNS == SORTED_COLUMNS
    assert sorted_truth["event_number"].tolist() == [0, 1, 2, 3]
    first = sorted_truth.iloc[0]
    # single rows: the raw values, bit for bit
    assert first["s1"] == 57 and first["s1_hit_time_mean"] == 6046.123456789
    assert first["s1_width"] == 13.3 and first["s1_area_fraction_top"] == 0.31
    assert first["s2"] == 1520 and first["s2_hit_time_mean"] == 6700.987654321
    assert first["s2_width"] == 300.1 and first["s2_area_fraction_top"] == 0.63
    assert first["x"] == 3.3 and first["y"] == -4.4  # x, y from the s2 row
    assert sorted_truth.loc[1, EXPECTED_COLUMNS[1:]].isna().all()  # absent event kept as NaN
    assert sorted_truth.loc[3, EXPECTED_COLUMNS[1:]].isna().all()
    assert np.isnan(sorted_truth.loc[2, "s1"]) and sorted_truth.loc[2, "s2"] == 800
    assert sorted_truth.loc[2, "x"] == -10.1
    assert sorted_truth[["other_s2", "other_s2_hit_time_mean"]].isna().all().all()


def test_multi_peak_event_is_aggregated_exactly(tmp_path):
    rng = np.random.default_rng(2)
    rows, photons = [], {"s1": [], "s2": []}
    for peak_type, sizes, centres in (("s1", (40, 90), (6050, 6080)), ("s2", (700, 1300), (6600, 7400))):
        for n, centre, x, top in zip(sizes, centres, (2.0, 5.0), (0.3, 0.6)):
            times = rng.normal(centre, 20.0 if peak_type == "s1" else 150.0, n)
            photons[peak_type].append((times, x, top))
            rows.append(peak(1, peak_type, n, times.mean(), times.std(), top, x, -x))
    rows.insert(0, peak(0, "s1", 10, 6000.0, 5.0, 0.2, 0.0, 0.0))
    sorted_truth = sort_truth(write_truth(tmp_path / "truth.csv", rows), 2)
    assert len(sorted_truth) == 2  # no cartesian product
    event = sorted_truth.iloc[1]
    for peak_type in ("s1", "s2"):
        times = np.concatenate([t for t, _, _ in photons[peak_type]])
        weights = np.array([len(t) for t, _, _ in photons[peak_type]])
        assert event[peak_type] == len(times)
        assert event[f"{peak_type}_hit_time_mean"] == pytest.approx(times.mean(), rel=1e-12)
        assert event[f"{peak_type}_width"] == pytest.approx(times.std(), rel=1e-9)
        tops = np.array([top for _, _, top in photons[peak_type]])
        assert event[f"{peak_type}_area_fraction_top"] == pytest.approx((weights * tops).sum() / weights.sum())
    s2_weights = np.array([700, 1300])
    assert event["x"] == pytest.approx((s2_weights * [2.0, 5.0]).sum() / 2000)
    assert event["y"] == pytest.approx(-event["x"])


def test_other_s2_is_largest_photoionization_row(tmp_path):
    rows = single_peak_rows() + [peak(0, "photoionization_afterpulse", 3, 9000.0, 1.0, 0.5, 0, 0),
                                 peak(0, "photoionization_afterpulse", 7, 9100.0, 2.0, 0.4, 0, 0),
                                 peak(2, "photoionization_afterpulse", 5, 9200.0, 3.0, 0.7, 0, 0),
                                 peak(0, "photoionization_afterpulse", 7, 9300.0, 4.0, 0.1, 0, 0)]
    sorted_truth = sort_truth(write_truth(tmp_path / "truth.csv", rows), 3)
    assert sorted_truth["other_s2"].tolist()[0::2] == [7, 5]
    assert sorted_truth.loc[0, "other_s2_hit_time_mean"] == 9100.0  # first of the tie
    assert sorted_truth.loc[0, "other_s2_width"] == 2.0 and sorted_truth.loc[0, "other_s2_area_fraction_top"] == 0.4
    assert sorted_truth.loc[2, "other_s2_area_fraction_top"] == 0.7
    assert np.isnan(sorted_truth.loc[1, "other_s2"])
    assert sorted_truth.loc[0, "s2"] == 1520  # PI rows do not leak into s2


def test_empty_truth_and_bad_truth(tmp_path):
    empty = write_truth(tmp_path / "empty.csv", [])
    sorted_truth = sort_truth(empty, 5)
    assert list(sorted_truth.columns) == EXPECTED_COLUMNS and len(sorted_truth) == 5
    assert sorted_truth["event_number"].tolist() == list(range(5))
    assert sorted_truth[EXPECTED_COLUMNS[1:]].isna().all().all()

    bad = tmp_path / "bad.csv"
    pd.DataFrame(single_peak_rows()).drop(columns=["t_sigma_photons", "top_fraction"]).to_csv(bad)
    with pytest.raises(BadInputError) as error:
        sort_truth(bad, 3)
    assert str(bad) in str(error.value) and "'top_fraction'" in str(error.value)
    assert "'t_sigma_photons'" in str(error.value) and "found columns" in str(error.value)
    with pytest.raises(BadInputError, match="not found"):
        sort_truth(tmp_path / "missing.csv", 3)
    with pytest.raises(BadInputError, match="outside 0..1"):
        sort_truth(write_truth(tmp_path / "t.csv", single_peak_rows()), 2)


def minitrees(events):
    return pd.DataFrame({"run_number": 0, "event_number": events, "s1": np.arange(len(events)) * 10.0 + 1,
                         "cs2": np.arange(len(events)) * 100.0})


def test_merge_truth_outer_join(tmp_path):
    truth = sort_truth(write_truth(tmp_path / "truth.csv", single_peak_rows()), 4)
    mini = minitrees([4, 0, 2])  # lacks 1 and 3; has 4, which truth lacks
    merged = merge_truth(mini, truth)
    assert merged["event_number"].tolist() == [0, 1, 2, 3, 4]
    assert merged["event_number"].dtype == np.int64
    assert "truth_event_number" not in merged.columns
    assert list(merged.columns) == list(mini.columns) + ["truth_" + c for c in EXPECTED_COLUMNS[1:]]
    assert merged.loc[0, "truth_s2"] == 1520 and merged.loc[0, "s1"] == 11.0
    assert merged.loc[0, "truth_x"] == 3.3
    assert np.isnan(merged.loc[1, "s1"]) and np.isnan(merged.loc[3, "cs2"])  # minitree-side NaN
    assert merged.loc[4, "s1"] == 1.0 and np.isnan(merged.loc[4, "truth_s1"])  # truth-side NaN
    assert merged["event_number"].is_unique


def test_merge_truth_rejects_duplicates(tmp_path):
    truth = sort_truth(write_truth(tmp_path / "truth.csv", single_peak_rows()), 4)
    with pytest.raises(BadInputError, match="minitrees table has duplicate event_number"):
        merge_truth(minitrees([0, 1, 1]), truth)
    with pytest.raises(BadInputError, match="sorted truth table has duplicate"):
        merge_truth(minitrees([0, 1]), pd.concat([truth, truth]))
    with pytest.raises(BadInputError, match="no event_number"):
        merge_truth(minitrees([0]).drop(columns="event_number"), truth)


def test_file_steps_deterministic(tmp_path):
    truth_csv = write_truth(tmp_path / "truth.csv", single_peak_rows())
    counts = sort_truth_file(truth_csv, 4, tmp_path / "a.parquet")
    assert counts == StepCounts(events_in=4, events_out=4)
    sort_truth_file(truth_csv, 4, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.column_names == EXPECTED_COLUMNS
    assert not table.schema.metadata  # no pandas index / metadata stored
    minitrees([0, 1, 2, 3]).to_parquet(tmp_path / "mini.parquet", index=False)
    counts = merge_truth_files(tmp_path / "mini.parquet", tmp_path / "a.parquet", tmp_path / "m1.parquet")
    assert counts == StepCounts(events_in=4, events_out=4)
    merge_truth_files(tmp_path / "mini.parquet", tmp_path / "a.parquet", tmp_path / "m2.parquet")
    assert (tmp_path / "m1.parquet").read_bytes() == (tmp_path / "m2.parquet").read_bytes()
    merged = pd.read_parquet(tmp_path / "m1.parquet")
    assert len(merged) == 4 and merged.loc[0, "truth_s1"] == 57
    with pytest.raises(BadInputError, match="not found"):
        merge_truth_files(tmp_path / "nope.parquet", tmp_path / "a.parquet", tmp_path / "m3.parquet")


@pytest.mark.parametrize("events", [[3, 0, 2, 1], [4, 0, 2]])  # the same events (no pandas), or an outer join
def test_merge_file_is_the_pandas_join(tmp_path, events):
    truth_csv = write_truth(tmp_path / "truth.csv", single_peak_rows())
    sort_truth_file(truth_csv, 4, tmp_path / "truth.parquet")
    mini = minitrees(events)
    mini.loc[1, "cs2"] = np.nan
    mini.to_parquet(tmp_path / "mini.parquet", index=False)
    merge_truth_files(tmp_path / "mini.parquet", tmp_path / "truth.parquet", tmp_path / "merged.parquet")
    expected = merge_truth(pd.read_parquet(tmp_path / "mini.parquet"), pd.read_parquet(tmp_path / "truth.parquet"))
    pq.write_table(pa.Table.from_pandas(expected, preserve_index=False).replace_schema_metadata(None),
                   tmp_path / "expected.parquet", compression="snappy")
    assert (tmp_path / "merged.parquet").read_bytes() == (tmp_path / "expected.parquet").read_bytes()
    assert pq.read_table(tmp_path / "merged.parquet").column("cs2").null_count == 1 + len(set(range(4)) - set(events))


def test_peak_types_are_read_whatever_their_case_and_padding(tmp_path):
    rows = single_peak_rows()
    spelled = [dict(row, peak_type=spelling) for row, spelling in zip(rows, [" S1", "s2 ", "S2"])]
    expected = sort_truth(write_truth(tmp_path / "plain.csv", rows), 4)
    pd.testing.assert_frame_equal(sort_truth(write_truth(tmp_path / "spelled.csv", spelled), 4), expected)
    assert expected["s1"].notna().tolist() == [True, False, False, False]
