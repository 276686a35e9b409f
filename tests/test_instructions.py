"""faxflow.instructions: uniform / table / NEST sources, correlated modes, the pax CSV."""

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from faxflow.config import campaign_from_dict
from faxflow.errors import BadInputError, ConfigError
from faxflow.instructions import INSTRUCTION_COLUMNS, W_VALUE_EV, make_instructions, write_instructions

HEADER = "instruction,recoil_type,x,y,depth,s1_photons,s2_electrons,t"
XENON100 = {"detector": "XENON100", "engine": "pax", "cluster": {"backend": "slurm"}}


def settings(**overrides):
    """A variant's resolved settings dict, built through the real config loader."""
    return campaign_from_dict({"name": "test", **overrides}).variants[0].settings


def make(overrides=None, n=100, index=0, seed=1, base_dir="."):
    return make_instructions(settings(**(overrides or {})), n, index, np.random.default_rng(seed), base_dir)


def ks_uniform(values, low, high):
    """Kolmogorov-Smirnov distance of values to U(low, high)."""
    u = np.sort((np.asarray(values) - low) / (high - low))
    n = len(u)
    return max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n))


# --------------------------------------------------------------------------------------------
# uniform source


@pytest.mark.parametrize("mode", [True, "S1", "S2"])
def test_one_row_per_instruction_modes(mode):
    frame = make({"correlated": mode, "interaction_time_ns": 1234.5}, n=200)
    assert list(frame.columns) == INSTRUCTION_COLUMNS
    assert len(frame) == 200
    assert frame["instruction"].tolist() == list(range(200))
    assert (frame["t"] == 1234.5).all()  # S2 mode too: no depth/0.144 added
    assert (frame["recoil_type"] == "ER").all()
    if mode == "S1":
        assert (frame["s2_electrons"] == 0).all() and (frame["s1_photons"] >= 50).all()
    elif mode == "S2":
        assert (frame["s1_photons"] == 0).all() and (frame["s2_electrons"] >= 10).all()
    else:
        assert (frame["s1_photons"] >= 50).all() and (frame["s2_electrons"] >= 10).all()


def test_uncorrelated_two_rows_per_instruction():
    frame = make({"correlated": False, "recoil_type": "NR"}, n=300)
    assert len(frame) == 600
    assert frame["instruction"].tolist() == [i // 2 for i in range(600)]
    s1_rows, s2_rows = frame.iloc[0::2], frame.iloc[1::2]
    assert (s1_rows["s2_electrons"] == 0).all() and (s1_rows["s1_photons"] >= 50).all()
    assert (s2_rows["s1_photons"] == 0).all() and (s2_rows["s2_electrons"] >= 10).all()
    assert (frame["t"] == 1000.0).all() and (frame["recoil_type"] == "NR").all()
    # the S2 row sits at an independent position
    assert not np.allclose(s1_rows["x"].to_numpy(), s2_rows["x"].to_numpy())
    corr = np.corrcoef(s1_rows["depth"].to_numpy(), s2_rows["depth"].to_numpy())[0, 1]
    assert abs(corr) < 4 / math.sqrt(300)


@pytest.mark.parametrize("overrides, r_max, depth_min, depth_max", [
    ({}, 36.94, 9.0, 92.9),
    (XENON100, math.sqrt(200), 0.0, 29.6),
    ({"fiducial_volume": {"r_max_cm": 20.0, "depth_min_cm": 30.0, "depth_max_cm": 40.0}}, 20.0, 30.0, 40.0),
])
def test_positions_uniform_in_fiducial_volume(overrides, r_max, depth_min, depth_max):
    n = 20000
    frame = make(overrides, n=n, seed=7)
    r2 = frame["x"] ** 2 + frame["y"] ** 2
    depth = frame["depth"]
    phi = np.arctan2(frame["y"], frame["x"])
    assert r2.max() <= r_max ** 2 + 1e-9
    assert depth.min() >= depth_min and depth.max() <= depth_max
    # r² ~ U(0, r_max²): mean r_max²/2, σ_mean = r_max²/sqrt(12 n)
    assert abs(r2.mean() - r_max ** 2 / 2) < 4 * r_max ** 2 / math.sqrt(12 * n)
    assert ks_uniform(r2, 0, r_max ** 2) < 1.63 / math.sqrt(n)
    width = depth_max - depth_min
    assert abs(depth.mean() - (depth_min + depth_max) / 2) < 4 * width / math.sqrt(12 * n)
    assert ks_uniform(depth, depth_min, depth_max) < 1.63 / math.sqrt(n)
    assert abs(phi.mean()) < 4 * (2 * math.pi) / math.sqrt(12 * n)
    assert ks_uniform(phi, -math.pi, math.pi) < 1.63 / math.sqrt(n)


def test_counts_integer_uniform_half_open():
    n = 20000
    frame = make({"photon_number": [50, 100], "electron_number": {"low": 10, "high": 20}}, n=n, seed=3)
    photons, electrons = frame["s1_photons"], frame["s2_electrons"]
    assert photons.min() == 50 and photons.max() == 99
    assert electrons.min() == 10 and electrons.max() == 19
    sd_p = math.sqrt((50 ** 2 - 1) / 12)
    assert abs(photons.mean() - 74.5) < 4 * sd_p / math.sqrt(n)
    assert abs(electrons.mean() - 14.5) < 4 * math.sqrt((10 ** 2 - 1) / 12) / math.sqrt(n)
    counts = np.bincount(electrons - 10, minlength=10)
    assert (abs(counts - n / 10) < 5 * math.sqrt(n / 10)).all()


def test_csv_header_and_determinism(tmp_path):
    for mode in (True, False, "S1", "S2"):
        paths = []
        for name, seed in (("a", 11), ("b", 11), ("c", 12)):
            frame = make({"correlated": mode}, n=50, seed=seed)
            paths.append(write_instructions(frame, tmp_path / f"{mode}{name}.csv"))
        first, second, other = (path.read_bytes() for path in paths)
        assert first == second
        assert first != other
        assert first.decode().splitlines()[0] == HEADER
    text = paths[0].read_text().splitlines()
    assert text[1].split(",")[7] == "1000.000000"  # fixed float format
    back = pd.read_csv(paths[0])
    assert list(back.columns) == INSTRUCTION_COLUMNS and len(back) == 50


def test_write_instructions_rejects_incomplete_frame(tmp_path):
    with pytest.raises(BadInputError, match="lacks columns"):
        write_instructions(pd.DataFrame({"instruction": [0]}), tmp_path / "x.csv")


# --------------------------------------------------------------------------------------------
# table source


def table_frame(rows=25):
    index = np.arange(rows)
    return pd.DataFrame({"event_number": index + 1000, "x": index * 0.5, "y": -index * 0.25,
                         "z": -(10.0 + index), "cs1": 0.12 * (100 + index) + 0.001,
                         "cs2": 23.0 * (200 + 2 * index) - 0.01, "extra": index})


def table_settings(path, **extra):
    return {"instructions": {"source": "table", "path": str(path), **extra}, "recoil_type": "NR"}


def check_table_rows(frame, rows):
    expected = table_frame().iloc[rows]
    assert frame["instruction"].tolist() == list(range(len(expected)))
    np.testing.assert_allclose(frame["x"], expected["x"])
    np.testing.assert_allclose(frame["y"], expected["y"])
    np.testing.assert_allclose(frame["depth"], -expected["z"])
    assert frame["s1_photons"].tolist() == (100 + expected.index).tolist()
    assert frame["s2_electrons"].tolist() == (200 + 2 * expected.index).tolist()
    assert (frame["recoil_type"] == "NR").all() and (frame["t"] == 1000.0).all()


def test_table_csv_slices_by_production_index(tmp_path):
    table_frame().to_csv(tmp_path / "events.csv", index=False)
    overrides = table_settings("events.csv")  # relative to base_dir
    check_table_rows(make(overrides, n=10, index=0, base_dir=tmp_path), slice(0, 10))
    check_table_rows(make(overrides, n=10, index=1, base_dir=tmp_path), slice(10, 20))
    check_table_rows(make(overrides, n=10, index=2, base_dir=tmp_path), slice(20, 25))  # only 5 left
    with pytest.raises(BadInputError, match="only 25 rows"):
        make(overrides, n=10, index=3, base_dir=tmp_path)


def test_table_parquet_and_correlated_modes(tmp_path):
    table_frame().to_parquet(tmp_path / "events.parquet", index=False)
    frame = make(table_settings(tmp_path / "events.parquet"), n=8, index=1)
    check_table_rows(frame, slice(8, 16))
    split = make({**table_settings(tmp_path / "events.parquet"), "correlated": False}, n=8, index=1)
    assert len(split) == 16
    np.testing.assert_allclose(split["depth"].iloc[0::2], -table_frame()["z"].iloc[8:16])
    assert (split["s2_electrons"].iloc[0::2] == 0).all() and (split["s1_photons"].iloc[1::2] == 0).all()
    s2_only = make({**table_settings(tmp_path / "events.parquet"), "correlated": "S2"}, n=8)
    assert (s2_only["s1_photons"] == 0).all() and (s2_only["t"] == 1000.0).all()


def test_table_root_with_pax_aliases(tmp_path):
    uproot = pytest.importorskip("uproot")
    frame = table_frame().rename(columns={"x": "x_pax", "y": "y_pax"})
    with uproot.recreate(tmp_path / "minitree.root") as file:
        file["Basics"] = {name: frame[name].to_numpy() for name in frame.columns}
        file["Other"] = {"event_number": frame["event_number"].to_numpy()}
    check_table_rows(make(table_settings(tmp_path / "minitree.root"), n=10, index=1), slice(10, 20))
    with pytest.raises(BadInputError, match="missing columns") as error:
        make(table_settings(tmp_path / "minitree.root", tree="Other"), n=10)
    assert "cs1" in str(error.value)
    with pytest.raises(BadInputError, match="no tree 'Nope'"):
        make(table_settings(tmp_path / "minitree.root", tree="Nope"), n=10)


def test_table_missing_columns_names_file_and_columns(tmp_path):
    path = tmp_path / "bad.csv"
    table_frame().drop(columns=["cs2", "z"]).to_csv(path, index=False)
    with pytest.raises(BadInputError) as error:
        make(table_settings(path), n=5)
    message = str(error.value)
    assert str(path) in message
    assert "['z', 'cs2']" in message
    assert "found columns" in message and "'extra'" in message


def test_table_unreadable_or_missing_file(tmp_path):
    with pytest.raises(BadInputError, match="not found") as error:
        make(table_settings(tmp_path / "nope.csv"), n=5)
    assert str(tmp_path / "nope.csv") in str(error.value)
    (tmp_path / "junk.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(BadInputError, match="cannot read as parquet"):
        make(table_settings(tmp_path / "junk.parquet"), n=5)
    (tmp_path / "table.xyz").write_text("a,b\n")
    with pytest.raises(BadInputError, match="format"):
        make(table_settings(tmp_path / "table.xyz"), n=5)


def test_table_pickle_needs_allow_pickle(tmp_path):
    path = tmp_path / "events.pkl"
    with open(path, "wb") as handle:
        pickle.dump(table_frame(), handle)
    with pytest.raises(BadInputError, match="allow_pickle: true"):
        make(table_settings(path), n=10)
    check_table_rows(make(table_settings(path, allow_pickle=True), n=10), slice(0, 10))


def test_table_nan_signals_become_zero_and_unplaceable_rows_drop(tmp_path):
    frame = table_frame(6)
    frame.loc[1, "cs1"] = np.nan
    frame.loc[2, "cs2"] = np.nan
    frame.loc[4, "x"] = np.nan
    frame.to_csv(tmp_path / "events.csv", index=False)
    out = make(table_settings(tmp_path / "events.csv", g1_pe_per_photon=0.24), n=6)
    assert out["instruction"].tolist() == [0, 1, 2, 3, 4]
    assert out["s1_photons"].tolist()[:3] == [50, 0, 51]
    assert out["s2_electrons"].tolist()[2] == 0
    np.testing.assert_allclose(out["depth"], [10, 11, 12, 13, 15])


# --------------------------------------------------------------------------------------------
# NEST source


def nest(spectrum="line", recoil="ER", n=200, seed=5, **source):
    if spectrum == "line":
        source.setdefault("energy_kev", 41.5)
    else:
        source.setdefault("energy_range_kev", [10.0, 50.0])
    return make({"instructions": {"source": "nest", "spectrum": spectrum, **source}, "recoil_type": recoil},
                n=n, seed=seed)


def test_nest_er_line():
    frame = nest()
    quanta = (frame["s1_photons"] + frame["s2_electrons"]).mean()
    assert 1000 <= frame["s1_photons"].mean() <= 3000
    assert abs(quanta / (41.5e3 / W_VALUE_EV) - 1) < 0.2
    assert frame["s1_photons"].std() > 0 and (frame["s2_electrons"] > 0).all()
    r2 = frame["x"] ** 2 + frame["y"] ** 2
    assert r2.max() <= 36.94 ** 2 and frame["depth"].between(9.0, 92.9).all()


def test_nest_flat_spectrum_spreads_quanta():
    flat = nest("flat", energy_range_kev=[10.0, 50.0], n=400)
    quanta = flat["s1_photons"] + flat["s2_electrons"]
    assert abs(quanta.mean() / (30e3 / W_VALUE_EV) - 1) < 0.2
    assert quanta.min() < 10e3 / W_VALUE_EV * 1.3 and quanta.max() > 50e3 / W_VALUE_EV * 0.8
    line = nest(n=400)
    assert quanta.std() > 3 * (line["s1_photons"] + line["s2_electrons"]).std()


def test_nest_nr_and_alpha_plausible():
    er, nr = nest(), nest(recoil="NR")
    er_quanta = (er["s1_photons"] + er["s2_electrons"]).mean()
    nr_quanta = (nr["s1_photons"] + nr["s2_electrons"]).mean()
    assert 0.1 < nr_quanta / er_quanta < 0.4  # Lindhard quenching
    assert nr["s1_photons"].mean() > 100 and nr["s2_electrons"].mean() > 30
    alpha = nest(recoil="alpha", energy_kev=5300.0, n=50)
    quanta = (alpha["s1_photons"] + alpha["s2_electrons"]).mean()
    assert abs(quanta / (5.3e6 / W_VALUE_EV) - 1) < 0.2
    assert alpha["s1_photons"].mean() > 10 * alpha["s2_electrons"].mean()  # alphas recombine strongly
    assert (alpha["recoil_type"] == "alpha").all()


def test_nest_deterministic_and_correlated(tmp_path):
    a, b, c = nest(seed=9), nest(seed=9), nest(seed=10)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    write_instructions(nest("flat", seed=4), tmp_path / "a.csv")
    write_instructions(nest("flat", seed=4), tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    s1_only = make({"instructions": {"source": "nest", "spectrum": "line", "energy_kev": 41.5}, "correlated": "S1"},
                   n=20, seed=9)
    assert (s1_only["s2_electrons"] == 0).all()
    assert (s1_only["s1_photons"] > 1000).all()


def test_nest_rejects_led():
    with pytest.raises(ConfigError, match="recoil_type: NEST has no yields for 'LED'"):
        nest(recoil="LED")
    resolved = settings(instructions={"source": "nest", "spectrum": "line", "energy_kev": 41.5})
    with pytest.raises(BadInputError, match="NEST has no LED yields"):
        make_instructions({**resolved, "recoil_type": "LED"}, 10, 0, np.random.default_rng(1), ".")
