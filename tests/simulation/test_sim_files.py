"""Files of the builtin simulator: instruction CSV validation, raw .npz format, truth CSV, determinism."""

import logging
import zipfile

import numpy as np
import pandas as pd
import pytest

from faxflow.engines.builtin import rawio
from faxflow.engines.builtin.parameters import PhysicsParameters
from faxflow.engines.builtin.simulation import simulate
from faxflow.engines.builtin.simulation.instructions_io import read_instructions
from faxflow.errors import BadInputError

PHYSICS = PhysicsParameters()
HEADER = "instruction,recoil_type,x,y,depth,s1_photons,s2_electrons,t"
GOOD_ROWS = ["0,ER,1.0,2.0,30,80,40,1000", "0,nr,-5,3,random,60,0,1000", "1,alpha,random,x,50,70,30,1000",
             "2,LED,0,0,97.5,80,50,1000", "5,ER,10,-10,60,0,20,1000"]


def write_csv(tmp_path, rows, header=HEADER, name="instructions.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def run(tmp_path, csv, seed=7, tag="a", **switches):
    truth, raw = tmp_path / f"truth_{tag}.csv", tmp_path / f"raw_{tag}.npz"
    counts = simulate.simulate_file(csv, truth, raw, PHYSICS, pmt_afterpulse=switches.get("pmt", True),
                                    s2_afterpulse=switches.get("pi", True), seed=seed)
    return counts, truth, raw


def test_instruction_groups_and_random_values(tmp_path):
    table = read_instructions(write_csv(tmp_path, GOOD_ROWS))
    assert table["event"].tolist() == [0, 0, 1, 2, 3]
    assert table["recoil_type"].tolist() == ["er", "nr", "alpha", "led", "er"]
    assert np.isnan(table.loc[1, "depth"]) and np.isnan(table.loc[2, "x"]) and np.isnan(table.loc[2, "y"])


def test_columns_in_any_order(tmp_path):
    header = "t,depth,instruction,y,x,recoil_type,s2_electrons,s1_photons"
    table = read_instructions(write_csv(tmp_path, ["1000,30,0,2,1,ER,40,80"], header=header))
    assert table.loc[0, "x"] == 1 and table.loc[0, "s1_photons"] == 80


@pytest.mark.parametrize("rows, header, expected", [
    (["0,ER,1,2,30,80,40,1000", "1,ER,abc,2,30,80,40,1000"], HEADER, ["row 3", "'x'", "abc"]),
    (["0,ER,1,2,30,80,40,1000", "1,gamma,1,2,30,80,40,1000"], HEADER, ["row 3", "'recoil_type'", "gamma"]),
    (["0,ER,1,2,30,8.5,40,1000"], HEADER, ["row 2", "'s1_photons'", "8.5"]),
    (["0,ER,1,2,30,80,-4,1000"], HEADER, ["row 2", "'s2_electrons'"]),
    (["0,ER,1,2,30,80,40,"], HEADER, ["row 2", "'t'"]),
    (["0,ER,1,2,30,80,40,1000"], HEADER.replace(",depth", ""), ["missing column", "depth"]),
    (["0,ER,1,2,30,80,40,1000,3"], HEADER + ",energy", ["unexpected column", "energy"]),
])
def test_bad_instructions_name_file_row_and_column(tmp_path, rows, header, expected):
    path = write_csv(tmp_path, rows, header=header, name="bad_input.csv")
    with pytest.raises(BadInputError) as error:
        run(tmp_path, path)
    message = str(error.value)
    assert "bad_input.csv" in message
    for fragment in expected:
        assert fragment in message


def test_missing_instruction_file(tmp_path):
    with pytest.raises(BadInputError, match="nope.csv"):
        read_instructions(tmp_path / "nope.csv")


def test_outputs_counts_and_truth_format(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        counts, truth_path, raw_path = run(tmp_path, write_csv(tmp_path, GOOD_ROWS))
    assert counts.events_in == counts.events_out == 4
    truth = pd.read_csv(truth_path)
    assert list(truth.columns) == ["fax_truth_peak_id", *simulate.TRUTH_COLUMNS]
    assert truth["fax_truth_peak_id"].tolist() == list(range(len(truth)))
    assert (truth["g4_id"] == -1).all() and (truth["repetition"] == 0).all()
    assert (truth["t_interaction"] == 6000).all()
    # event 2 (depth 97.5 > 96.9 cm) has an S1 but no S2; event 3 has no S1 photons
    assert truth.query("event == 2")["peak_type"].tolist() == ["s1"]
    assert "s1" not in truth.query("event == 3")["peak_type"].tolist()
    assert "deeper than the TPC" in caplog.text
    s1 = truth.query("peak_type == 's1'")
    assert s1["n_electrons"].isna().all()
    assert (s1["t_first_photon"] > 6000 + 20).all()  # padding + transit time
    raw = rawio.read_raw(raw_path)
    assert raw.event_number.tolist() == [0, 1, 2, 3]
    assert (raw.event_length_samples % 2 == 0).all()


def test_event_without_any_light_still_has_an_event_row(tmp_path):
    counts, truth_path, raw_path = run(tmp_path, write_csv(tmp_path, ["0,ER,0,0,30,0,0,1000", "1,ER,0,0,30,50,0,1000"]))
    raw = rawio.read_raw(raw_path)
    assert counts.events_out == 2 and raw.event_number.tolist() == [0, 1]
    assert raw.event_length_samples[0] == 1000


def test_empty_instruction_file(tmp_path):
    counts, truth_path, raw_path = run(tmp_path, write_csv(tmp_path, []))
    assert counts.events_in == counts.events_out == 0
    assert pd.read_csv(truth_path).empty
    assert rawio.read_raw(raw_path).n_events == 0


def test_same_seed_gives_identical_files(tmp_path):
    csv = write_csv(tmp_path, GOOD_ROWS)
    _, truth_a, raw_a = run(tmp_path, csv, seed=11, tag="a")
    _, truth_b, raw_b = run(tmp_path, csv, seed=11, tag="b")
    _, truth_c, raw_c = run(tmp_path, csv, seed=12, tag="c")
    assert truth_a.read_bytes() == truth_b.read_bytes() and raw_a.read_bytes() == raw_b.read_bytes()
    assert truth_a.read_bytes() != truth_c.read_bytes() and raw_a.read_bytes() != raw_c.read_bytes()


def test_raw_round_trip_and_consistency(tmp_path):
    csv = write_csv(tmp_path, GOOD_ROWS)
    _, _, raw_path = run(tmp_path, csv)
    raw = rawio.read_raw(raw_path)
    with np.load(raw_path, allow_pickle=False) as archive:
        assert int(archive["format_version"]) == 2 and archive["samples_zstd"].dtype == np.uint8
        assert archive["pulse_channel"].dtype == np.int16 and archive["pulse_length"].dtype == np.int32
    ends = raw.event_first_pulse + raw.event_n_pulses
    for event in range(raw.n_events):
        sl = slice(raw.event_first_pulse[event], ends[event])
        keys = list(zip(raw.pulse_channel[sl], raw.pulse_left[sl]))
        assert keys == sorted(keys)
    assert (raw.pulse_left % 2 == 0).all() and (raw.pulse_length % 2 == 0).all()
    assert raw.samples.max() <= 16383 and raw.samples.min() >= 0
    copy = tmp_path / "copy.npz"
    rawio.write_raw(copy, raw)
    assert copy.read_bytes() == raw_path.read_bytes()


def test_corrupt_raw_files_are_bad_input(tmp_path):
    _, _, raw_path = run(tmp_path, write_csv(tmp_path, GOOD_ROWS))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw_path.read_bytes()[: raw_path.stat().st_size // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    partial = tmp_path / "partial.npz"
    np.savez(partial, samples=np.zeros(3, np.int16))
    for path in (truncated, garbage, partial, tmp_path / "missing.npz"):
        with pytest.raises(BadInputError, match=path.name):
            rawio.read_raw(path)
    raw = rawio.read_raw(raw_path)
    raw.event_n_pulses = raw.event_n_pulses + 1
    with pytest.raises(ValueError, match="event_n_pulses"):
        rawio.write_raw(tmp_path / "inconsistent.npz", raw)


def test_streaming_writer_writes_samples_as_they_come_with_identical_bytes(tmp_path):
    _, _, raw_path = run(tmp_path, write_csv(tmp_path, GOOD_ROWS))
    raw = rawio.read_raw(raw_path)
    streamed = tmp_path / "streamed.npz"
    writer = rawio.RawWriter(streamed, raw.sample_duration_ns, raw.baseline_adc)
    half = int(raw.event_first_pulse[2])
    for events, pulses in ((slice(0, 2), slice(0, half)), (slice(2, None), slice(half, None))):
        samples = (raw.samples[raw.pulse_offset[pulses][0]:] if pulses.stop is None
                   else raw.samples[:raw.pulse_offset[half]]).copy()
        writer.append(raw.event_number[events], raw.event_length_samples[events], raw.event_n_pulses[events],
                      raw.pulse_channel[pulses], raw.pulse_left[pulses], raw.pulse_length[pulses], samples)
        samples[:] = -1  # the writer must not keep a reference to the batch's (reused) buffer
    assert not streamed.exists()
    writer.close()
    assert streamed.read_bytes() == raw_path.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith((".samples", ".partial"))] == []
    with zipfile.ZipFile(streamed) as archive:
        assert archive.testzip() is None  # every member's CRC is right


def test_aborted_writer_leaves_no_file(tmp_path):
    writer = rawio.RawWriter(tmp_path / "aborted.npz", 10.0, 16000)
    writer.append([0], [100], [1], [3], [10], [4], np.zeros(4, np.int16))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_fast_truth_writer_matches_pandas(tmp_path):
    truth = pd.DataFrame({"instruction": [0, 0, 7], "peak_type": ["s1", "s2", "s2"], "x": [1.5, np.nan, -0.0],
                          "n_photons": [3, 0, 12], "t": [6000.0, 1e-12 / 3, 123456789.123456]})
    truth.index.name = "fax_truth_peak_id"
    for frame in (truth, truth.assign(peak_type=["a,b", "s2", "s2"]), truth.iloc[:0]):
        fast, slow = tmp_path / "fast.csv", tmp_path / "slow.csv"
        simulate.write_truth(fast, frame)
        frame.to_csv(slow, index_label="fax_truth_peak_id", float_format=simulate.TRUTH_FLOAT_FORMAT)
        assert fast.read_bytes() == slow.read_bytes()


def test_batch_written_truth_is_pandas_csv_of_the_simulated_truth(tmp_path):
    rows = [f"{i},{'ER' if i % 3 else 'NR'},{i % 7 - 3}.5,1.25,{5 + i % 80},{(i * 7) % 40},{(i * 5) % 30},1000"
            for i in range(2 * simulate.BATCH_EVENTS + 5)]  # three batches; some rows without an S1 or S2
    csv = write_csv(tmp_path, rows)
    _, truth_path, _ = run(tmp_path, csv, seed=3)
    truth, _ = simulate.simulate(pd.read_csv(csv), PHYSICS, pmt_afterpulse=True, s2_afterpulse=True,
                                 rng=np.random.default_rng(3))
    assert {"s1", "s2"} == set(truth["peak_type"]) and truth["n_electrons"].isna().any()
    expected = truth.to_csv(index_label="fax_truth_peak_id", float_format=simulate.TRUTH_FLOAT_FORMAT)
    assert truth_path.read_text() == expected
