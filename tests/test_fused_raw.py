"""The fused chain's engine side and the compressed kept raw: same seed, same content, however written."""

import zipfile

import numpy as np
import pytest

from faxflow.engines.builtin import BuiltinEngine, rawio
from faxflow.engines.builtin.rawio import FRAME_SAMPLES
from faxflow.instructions import INSTRUCTION_COLUMNS

ROWS = [f"{i},ER,{(i % 7) * 4 - 12:.1f},{(i % 5) * 5 - 10:.1f},{10 + 3 * i:.1f},{60 + i},{20 + 3 * i},1000"
        for i in range(24)]


@pytest.fixture(scope="module")
def engine():
    return BuiltinEngine.from_settings({})


@pytest.fixture(scope="module")
def instructions(tmp_path_factory):
    path = tmp_path_factory.mktemp("instructions") / "instructions.csv"
    path.write_text("\n".join([",".join(INSTRUCTION_COLUMNS), *ROWS]) + "\n")
    return path


def _raw_arrays(raw):
    return {name: getattr(raw, name) for name in ("event_number", "event_length_samples", "event_first_pulse",
                                                  "event_n_pulses", "pulse_channel", "pulse_left",
                                                  "pulse_length", "pulse_offset", "samples")}


def test_in_memory_simulation_matches_the_file_and_processes_identically(engine, instructions, tmp_path):
    on_disk = engine.simulate(instructions, tmp_path / "truth_a.csv", tmp_path / "raw_a.npz", seed=7)
    in_memory, raw = engine.simulate_to_memory(instructions, tmp_path / "truth_b.csv", seed=7)
    assert on_disk == in_memory and in_memory.events_out == len(ROWS)
    assert (tmp_path / "truth_a.csv").read_bytes() == (tmp_path / "truth_b.csv").read_bytes()
    engine.write_raw(raw, tmp_path / "raw_b.npz")
    assert (tmp_path / "raw_a.npz").read_bytes() == (tmp_path / "raw_b.npz").read_bytes()

    assert engine.process(tmp_path / "raw_a.npz", tmp_path / "kept.parquet") == \
        engine.process(raw, tmp_path / "fused.parquet")
    assert (tmp_path / "kept.parquet").read_bytes() == (tmp_path / "fused.parquet").read_bytes()
    assert engine.can_drop_raw


def test_compressed_raw_round_trips_and_is_a_third_of_the_int16_bytes(engine, instructions, tmp_path):
    _, raw = engine.simulate_to_memory(instructions, tmp_path / "truth.csv", seed=3)
    engine.write_raw(raw, tmp_path / "raw.npz")
    back = rawio.read_raw(tmp_path / "raw.npz")
    for name, values in _raw_arrays(raw).items():
        np.testing.assert_array_equal(getattr(back, name), values, err_msg=name)
    uncompressed = sum(values.nbytes for values in _raw_arrays(raw).values())
    assert (tmp_path / "raw.npz").stat().st_size <= uncompressed / 3
    with zipfile.ZipFile(tmp_path / "raw.npz") as archive:
        assert archive.testzip() is None


def test_same_seed_same_raw_bytes_other_seed_other_bytes(engine, instructions, tmp_path):
    for tag, seed in (("a", 5), ("b", 5), ("c", 6)):
        engine.simulate(instructions, tmp_path / f"truth_{tag}.csv", tmp_path / f"{tag}.npz", seed=seed)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert (tmp_path / "a.npz").read_bytes() != (tmp_path / "c.npz").read_bytes()


def _synthetic(n_events: int, samples_per_pulse: int, rng) -> rawio.RawData:
    n_pulses = np.full(n_events, 4)
    lengths = np.full(n_events * 4, samples_per_pulse, np.int32)
    return rawio.RawData(
        sample_duration_ns=10.0, baseline_adc=16000, event_number=np.arange(n_events),
        event_length_samples=np.full(n_events, 4 * samples_per_pulse), event_first_pulse=np.arange(n_events) * 4,
        event_n_pulses=n_pulses, pulse_channel=np.tile(np.arange(4, dtype=np.int16), n_events),
        pulse_left=np.tile(np.arange(4) * samples_per_pulse, n_events), pulse_length=lengths,
        pulse_offset=np.cumsum(lengths, dtype=np.int64) - lengths,
        samples=rng.integers(-32768, 32768, int(lengths.sum()), dtype=np.int16))


def test_any_int16_samples_survive_and_big_batches_stream_to_the_file(tmp_path):
    raw = _synthetic(6, FRAME_SAMPLES // 3 + 17, np.random.default_rng(1))  # 24 pulses: ~8 frames, odd cuts
    rawio.write_raw(tmp_path / "whole.npz", raw)
    np.testing.assert_array_equal(rawio.read_raw(tmp_path / "whole.npz").samples, raw.samples)

    writer = rawio.RawWriter(tmp_path / "streamed.npz", raw.sample_duration_ns, raw.baseline_adc)
    partial = tmp_path / ".streamed.npz.partial"
    for first, stop in ((0, 1), (1, 4), (4, 6)):
        pulses = slice(4 * first, 4 * stop)
        samples = raw.samples[raw.pulse_offset[pulses][0]:raw.pulse_offset[pulses][-1] + raw.pulse_length[pulses][-1]]
        size_before = partial.stat().st_size
        writer.append(raw.event_number[first:stop], raw.event_length_samples[first:stop],
                      raw.event_n_pulses[first:stop], raw.pulse_channel[pulses], raw.pulse_left[pulses],
                      raw.pulse_length[pulses], samples.copy())
        if len(samples) >= FRAME_SAMPLES:
            assert partial.stat().st_size > size_before  # whole frames go out at once, not at close
    writer.close()
    assert (tmp_path / "streamed.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()


def test_format_1_files_stay_readable(tmp_path):
    raw = _synthetic(3, 50, np.random.default_rng(2))
    arrays = {**_raw_arrays(raw), "format_version": np.int64(1), "sample_duration_ns": np.float64(10.0),
              "baseline_adc": np.int64(16000)}
    np.savez(tmp_path / "old.npz", **arrays)
    back = rawio.read_raw(tmp_path / "old.npz")
    np.testing.assert_array_equal(back.samples, raw.samples)
    assert back.format_version == 1


def test_corrupt_compressed_samples_are_bad_input_naming_the_file(engine, instructions, tmp_path):
    _, raw = engine.simulate_to_memory(instructions, tmp_path / "truth.csv", seed=3)
    engine.write_raw(raw, tmp_path / "raw.npz")
    with np.load(tmp_path / "raw.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["samples_zstd"] = arrays["samples_zstd"].copy()
    arrays["samples_zstd"][len(arrays["samples_zstd"]) // 2:] ^= 0x5A  # valid zip, garbage frames
    np.savez(tmp_path / "bad.npz", **arrays)
    arrays["frame_bytes"] = arrays["frame_bytes"] + 1
    np.savez(tmp_path / "bad_table.npz", **arrays)
    for name in ("bad.npz", "bad_table.npz"):
        with pytest.raises(rawio.BadInputError, match=name):
            rawio.read_raw(tmp_path / name)


def test_lazily_decoded_samples_slice_like_the_array(tmp_path):
    raw = _synthetic(3, FRAME_SAMPLES // 2 + 5, np.random.default_rng(4))  # frames cut through pulses
    rawio.write_raw(tmp_path / "raw.npz", raw)
    lazy = rawio.read_raw(tmp_path / "raw.npz", lazy_samples=True).samples
    assert isinstance(lazy, rawio.FrameSamples) and len(lazy) == len(raw.samples)
    n = len(raw.samples)
    for start, stop in ((0, n), (0, 0), (FRAME_SAMPLES - 3, FRAME_SAMPLES + 3), (n - 7, n + 100), (5, 4),
                        (2 * FRAME_SAMPLES, 3 * FRAME_SAMPLES + 1)):
        np.testing.assert_array_equal(lazy[start:stop], raw.samples[start:stop])


def test_streamed_chain_holds_one_batch_and_matches_the_file_chain(engine, tmp_path):
    from faxflow.engines.builtin import BATCH_EVENTS

    n_events = 2 * BATCH_EVENTS + 7
    rows = [f"{i},ER,{(i % 7) * 4 - 12:.1f},{(i % 5) * 5 - 10:.1f},{10 + (i % 24) * 3:.1f},{60 + i % 24},"
            f"{20 + 3 * (i % 24)},1000" for i in range(n_events)]
    instructions = tmp_path / "instructions.csv"
    instructions.write_text("\n".join([",".join(INSTRUCTION_COLUMNS), *rows]) + "\n")
    on_disk = engine.simulate(instructions, tmp_path / "truth_a.csv", tmp_path / "raw_a.npz", seed=11)
    engine.process(tmp_path / "raw_a.npz", tmp_path / "from_file.parquet")

    batches = engine.simulation_batches(instructions, tmp_path / "truth_b.csv", seed=11, raw_out=tmp_path / "raw_b.npz")
    sizes = []

    def watched():
        for batch in batches:
            sizes.append(batch.n_events)
            assert not (tmp_path / "truth_b.csv").exists()  # written only after the last batch
            yield batch

    assert engine.process_batches(watched(), tmp_path / "streamed.parquet") == on_disk == batches.counts()
    assert sizes == [BATCH_EVENTS, BATCH_EVENTS, 7]
    # Every batch's samples are overwritten by the next, so processing them later would give other peaks.
    assert (tmp_path / "streamed.parquet").read_bytes() == (tmp_path / "from_file.parquet").read_bytes()
    assert (tmp_path / "raw_b.npz").read_bytes() == (tmp_path / "raw_a.npz").read_bytes()
    assert (tmp_path / "truth_b.csv").read_bytes() == (tmp_path / "truth_a.csv").read_bytes()
    engine.simulate_to_memory(instructions, tmp_path / "truth_c.csv", seed=11)  # the whole table written at once
    assert (tmp_path / "truth_c.csv").read_bytes() == (tmp_path / "truth_a.csv").read_bytes()


def test_a_stream_left_unfinished_writes_neither_truth_nor_raw(engine, instructions, tmp_path):
    batches = iter(engine.simulation_batches(instructions, tmp_path / "truth.csv", seed=2,
                                             raw_out=tmp_path / "raw.npz"))
    next(batches)
    batches.close()
    assert not list(tmp_path.iterdir())


def test_an_empty_production_streams_one_empty_batch(engine, tmp_path):
    instructions = tmp_path / "instructions.csv"
    instructions.write_text(",".join(INSTRUCTION_COLUMNS) + "\n")
    batches = engine.simulation_batches(instructions, tmp_path / "truth.csv", seed=2)
    assert engine.process_batches(batches, tmp_path / "processed.parquet").events_out == 0
    assert batches.counts().events_in == 0 and (tmp_path / "truth.csv").exists()
