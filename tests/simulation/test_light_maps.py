"""The builtin light maps against tabulated public XENON1T SR1 maps (docs/physics.md, "Light maps").

Tolerance: the mean ratio fit/map within 0.5 % over the fiducial volume and in each depth and
radius band of it (S1), over the TPC and in each radius band and quadrant (S2).
"""

import json

import numpy as np
import pytest
from fit_light_maps import SHIPPED_FITS, fit_all, public_maps

from faxflow.config import DEFAULT_FIDUCIAL_VOLUME
from faxflow.engines.builtin.detector import lightmaps

FV = DEFAULT_FIDUCIAL_VOLUME["XENON1T"]
DEPTH_BANDS_CM = [(FV["depth_min_cm"], 30.0), (30.0, 50.0), (50.0, 70.0), (70.0, 80.0), (80.0, FV["depth_max_cm"])]
RADIUS_BANDS_CM = [(0.0, 15.0), (15.0, 25.0), (25.0, 32.0), (32.0, FV["r_max_cm"])]
S2_RADIUS_BANDS_CM = [(0.0, 15.0), (15.0, 25.0), (25.0, 35.0), (35.0, 42.0), (42.0, 47.9)]
TOLERANCE = 0.005


@pytest.fixture(scope="module")
def maps():
    return public_maps()


def _s1_bands(table, model):
    xyz = np.asarray(table["xyz"])
    radius, depth = np.hypot(xyz[:, 0], xyz[:, 1]), -xyz[:, 2]
    ratio = model(xyz[:, 0], xyz[:, 1], xyz[:, 2]), np.asarray(table["value"])
    inside = (radius < FV["r_max_cm"]) & (depth > FV["depth_min_cm"]) & (depth < FV["depth_max_cm"])
    bands = {"fiducial volume": inside}
    bands |= {f"depth {lo:g}-{hi:g} cm": inside & (depth >= lo) & (depth < hi) for lo, hi in DEPTH_BANDS_CM}
    bands |= {f"r {lo:g}-{hi:g} cm": inside & (radius >= lo) & (radius < hi) for lo, hi in RADIUS_BANDS_CM}
    return {name: ratio[0][s].mean() / ratio[1][s].mean() for name, s in bands.items()}


@pytest.mark.parametrize("name, model", [("s1_light_yield", lightmaps.s1_light_yield),
                                         ("s1_top_fraction", lightmaps.s1_top_fraction)])
def test_s1_maps_match_the_public_sr1_maps_in_every_band(maps, name, model):
    ratios = _s1_bands(maps[name], model)
    off = {band: round(r, 4) for band, r in ratios.items() if abs(r - 1) > TOLERANCE}
    assert not off, f"{name}: fit/map outside 1 ± {TOLERANCE}: {off}"


def test_s2_light_yield_matches_the_public_sr1_map(maps):
    table = maps["s2_light_yield"]
    xy, value = np.asarray(table["xy"]), np.asarray(table["value"])
    model = lightmaps.s2_light_yield(xy[:, 0], xy[:, 1])
    radius, quadrant = np.hypot(xy[:, 0], xy[:, 1]), (xy[:, 0] > 0) * 2 + (xy[:, 1] > 0)
    bands = {"TPC": radius < 47.9}
    bands |= {f"r {lo:g}-{hi:g} cm": (radius >= lo) & (radius < hi) for lo, hi in S2_RADIUS_BANDS_CM}
    bands |= {f"quadrant {q}": quadrant == q for q in range(4)}
    off = {band: round(model[s].mean() / value[s].mean(), 4) for band, s in bands.items()
           if abs(model[s].mean() / value[s].mean() - 1) > TOLERANCE}
    assert not off, f"S2 fit/map outside 1 ± {TOLERANCE}: {off}"
    assert np.std(model / value - 1) < 0.01  # point by point, not just on average


def test_maps_clamp_to_the_sampled_region_and_broadcast():
    inside = lightmaps.s1_light_yield(44.0, 0.0, -95.0)
    assert lightmaps.s1_light_yield(80.0, 0.0, -200.0) == pytest.approx(lightmaps.s1_light_yield(44.09, 0.0, -95.17))
    assert inside == pytest.approx(lightmaps.s1_light_yield(44.0, 0.0, -95.0 + 1e-9))
    grid = lightmaps.s1_top_fraction(np.zeros((3, 4)), np.zeros((3, 4)), np.full((3, 4), -50.0))
    assert grid.shape == (3, 4) and np.all((grid > 0.1) & (grid < 0.3))
    assert np.shape(lightmaps.s2_light_yield(0.0, 0.0)) == ()
    assert 0.5 < lightmaps.s2_light_yield(100.0, 0.0) < 1.0


def test_shipped_coefficients_are_the_fit_of_the_tabulated_maps():
    shipped = json.loads(SHIPPED_FITS.read_text())
    for name, fit in fit_all().items():
        np.testing.assert_allclose(shipped[name]["coefficients"], fit["coefficients"], rtol=1e-6, atol=1e-9)
        assert shipped[name]["source"] == fit["source"]


@pytest.mark.parametrize("n_positions", [0, 1, 300])
def test_xy_basis_is_the_legendre_products_i_outer_j_inner_in_c_order(n_positions):
    x, y = np.random.default_rng(n_positions).uniform(-50.0, 50.0, (2, n_positions))
    degree = 5
    px = np.polynomial.legendre.legvander(x / lightmaps.TPC_RADIUS_CM, degree)
    py = np.polynomial.legendre.legvander(y / lightmaps.TPC_RADIUS_CM, degree)
    expected = np.stack([px[:, i] * py[:, j] for i in range(degree + 1) for j in range(degree + 1 - i)], axis=-1)
    basis = lightmaps.xy_basis(x, y, degree)
    assert basis.flags.c_contiguous  # the matrix product with the coefficients sums in this layout
    np.testing.assert_array_equal(basis, expected)
