"""The fit estimators on synthetic events with known truth (the report test checks them on simulated data)."""

import numpy as np
import pandas as pd
import pytest

from faxflow.fits import (
    GAUSSIAN_WIDTH50_PER_SIGMA,
    diffusion_constant,
    drift_velocity,
    efficiency,
    efficiency_curve,
    fit_variant,
    lifetime_and_yield,
    prompt_sigma_from_rise_time,
    resolution,
    s2_sigma,
    s2_sigma_column,
    setting_value,
)

V_UM_PER_NS = 1.335
NO_DELAYED_LIGHT = {"physics": {"drift_velocity_um_per_ns": V_UM_PER_NS}, "pmt_afterpulse": False,
                    "s2_afterpulse": False}
DELAYED_LIGHT = {"physics": {"drift_velocity_um_per_ns": V_UM_PER_NS}}


def synthetic(n=4000, d_cm2_per_s=30.0, tau_us=600.0, gain=25.0, seed=1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(9.0, 92.9, n)
    drift = depth / (V_UM_PER_NS * 1e-4) + 1700 + rng.normal(0, 200, n)
    sigma = np.sqrt(300.0 ** 2 + 2 * d_cm2_per_s * 1e-9 * drift / (V_UM_PER_NS * 1e-4) ** 2)
    electrons = rng.integers(100, 200, n).astype(float)
    s2 = rng.poisson(electrons * gain * np.exp(-drift / (tau_us * 1e3)))
    return pd.DataFrame({
        "drift_time": drift, "depth": depth, "n_electrons": electrons, "n_photons": 80.0,
        "s2": s2.astype(float), "s2_range_50p_area": GAUSSIAN_WIDTH50_PER_SIGMA * sigma * rng.normal(1, 0.05, n),
        "s2_time_std": sigma * rng.normal(1, 0.05, n),
        "s1": rng.poisson(10, n).astype(float), "truth_s1": 9.0, "truth_s2": s2.astype(float),
        "s1_area_fraction_top": 0.2, "s2_area_fraction_top": 0.63,
        "x": rng.normal(0, 1.2, n), "y": rng.normal(0, 1.2, n), "truth_x": 0.0, "truth_y": 0.0,
        "z": -depth + rng.normal(0, 0.1, n),
    })


@pytest.mark.parametrize("settings", [NO_DELAYED_LIGHT, DELAYED_LIGHT])
@pytest.mark.parametrize("d", [15.0, 45.0])
def test_diffusion_constant_recovered_within_3_percent(d, settings):
    fit = diffusion_constant(synthetic(d_cm2_per_s=d), settings)
    assert fit.value == pytest.approx(d, rel=0.03)
    assert 0 < fit.error < 0.03 * d


def test_diffusion_uses_the_variance_without_delayed_light_and_the_simulated_velocity():
    events = synthetic(d_cm2_per_s=30.0).assign(s2_range_50p_area=1000.0)  # a width that says nothing
    assert diffusion_constant(events, NO_DELAYED_LIGHT).value == pytest.approx(30.0, rel=0.03)
    assert abs(diffusion_constant(events, DELAYED_LIGHT).value) < 1e-6
    assert s2_sigma(events, DELAYED_LIGHT)[0] == pytest.approx(1000.0 / GAUSSIAN_WIDTH50_PER_SIGMA)
    assert s2_sigma(events.drop(columns="s2_time_std"), NO_DELAYED_LIGHT)[1].startswith("50% area width")
    faster = {**NO_DELAYED_LIGHT, "physics": {"drift_velocity_um_per_ns": 2 * V_UM_PER_NS}}
    assert diffusion_constant(events, faster).value == pytest.approx(4 * 30.0, rel=0.03)


@pytest.mark.parametrize("tau", [300.0, 900.0])
def test_lifetime_and_gain_recovered(tau):
    lifetime, gain = lifetime_and_yield(synthetic(tau_us=tau))
    assert lifetime.value == pytest.approx(tau, rel=0.03) and lifetime.error < 0.03 * tau
    assert gain.value == pytest.approx(25.0, rel=0.02)


def test_drift_velocity_from_the_distribution_edges():
    fit = drift_velocity(synthetic(), 9.0, 92.9)
    assert fit.value == pytest.approx(V_UM_PER_NS, rel=0.01) and 0 < fit.error < 0.01
    assert drift_velocity(synthetic(), 9.0, 92.9).value == fit.value  # seeded bootstrap: reproducible


def test_resolution_and_efficiency():
    rng = np.random.default_rng(3)
    assert resolution("xy_resolution", rng.normal(0.5, 1.2, 20000)).value == pytest.approx(1.2, rel=0.03)
    found = pd.Series(rng.random(10000) < 0.9)
    result = efficiency("s1_efficiency", found)
    assert result.value == pytest.approx(0.9, abs=0.01) and result.error == pytest.approx(0.003, rel=0.1)
    size = pd.Series(rng.uniform(1, 100, 5000))
    x, y, error = efficiency_curve(size, size > 10)
    assert np.all(np.diff(x) > 0) and y[0] == 0 and y[-1] == 1 and np.all(error > 0)


def test_fit_variant_fills_configured_values_and_skips_what_it_cannot_fit():
    settings = {"physics": {"diffusion_constant_cm2_per_s": 30.0, "electron_lifetime_us": 600.0,
                            "drift_velocity_um_per_ns": V_UM_PER_NS, "s2_mean_area_fraction_top": 0.63},
                "processing": {"drift_velocity_um_per_ns": V_UM_PER_NS}, "instructions": {"source": "uniform"},
                "fiducial_volume": {"depth_min_cm": 9.0, "depth_max_cm": 92.9}}
    fits = fit_variant(synthetic(), settings)
    assert fits["diffusion_constant"].configured == 30.0 and fits["electron_lifetime"].configured == 600.0
    assert fits["s2_aft"].value == pytest.approx(0.63) and fits["s1_efficiency"].value == 1.0
    assert fits["z_resolution"].value == pytest.approx(0.1, rel=0.05)
    assert fit_variant(synthetic(n=5), settings).keys() <= {"s1_efficiency", "s2_efficiency"}
    assert "drift_velocity" not in fit_variant(synthetic(), {**settings, "instructions": {"source": "nest"}})
    assert setting_value(settings, "physics.electron_lifetime_us") == 600.0
    assert setting_value(settings, "physics.nothing") is None and setting_value(settings, None) is None


def test_the_spread_of_each_pulse_mean_over_its_electrons_is_put_back():
    events = synthetic(d_cm2_per_s=30.0)
    electrons = events["s2"] / 25.0  # synthetic S2 yield: 25 PE per electron at the gate, all extracted
    diffusion = 2 * 30.0e-9 * events["drift_time"] / (V_UM_PER_NS * 1e-4) ** 2
    events["s2_time_std"] = np.sqrt(300.0 ** 2 + diffusion * (1 - 1 / electrons))  # about the pulse's own mean
    assert diffusion_constant(events, NO_DELAYED_LIGHT).value < 0.99 * 30.0
    assert diffusion_constant(events, NO_DELAYED_LIGHT, s2_yield=25.0).value == pytest.approx(30.0, rel=0.005)


def test_pax_tables_fit_positions_from_x_pax_and_skip_what_they_lack():
    from faxflow.report import skipped_notes

    events = synthetic()
    pax_like = events.rename(columns={"x": "x_pax", "y": "y_pax"})
    full, pax = fit_variant(events, NO_DELAYED_LIGHT), fit_variant(pax_like, NO_DELAYED_LIGHT)
    assert pax["xy_resolution"].value == pytest.approx(full["xy_resolution"].value)
    assert skipped_notes(pax_like, NO_DELAYED_LIGHT) == []
    bare = pax_like.drop(columns=["x_pax", "n_electrons"])
    fits = fit_variant(bare, NO_DELAYED_LIGHT)
    assert "xy_resolution" not in fits and "electron_lifetime" not in fits
    notes = skipped_notes(bare, NO_DELAYED_LIGHT)
    assert any("x_pax" in note for note in notes) and any("n_electrons" in note for note in notes)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory):
    """Resolved settings of default physics, without delayed light, and with twice the afterpulses."""
    from faxflow.config import load_campaign
    from faxflow.plan import make_plan

    config = tmp_path_factory.mktemp("fits") / "c.yaml"
    config.write_text("name: c\nnumber_job: 1\nnumber_event_per_job: 1\noutput_root: out\nvariants:\n"
                      "  - {name: default}\n  - {name: none, pmt_afterpulse: false, s2_afterpulse: false}\n"
                      "  - {name: double, physics: {pmt_afterpulse_scale: 2.0}}\n")
    return {variant.name: variant.settings for variant in make_plan(load_campaign(config)).variants}


def test_rise_time_response_is_a_gaussians_without_delayed_light_and_grows_with_it(resolved):
    from faxflow.engines.builtin.width_response import rise_time_response

    sigmas = np.array([300.0, 1000.0, 3000.0])
    gaussian = 1.2816 * sigmas  # t50 − t10 of a Gaussian
    assert rise_time_response(resolved["none"], 2000, 25.0, sigmas) == pytest.approx(gaussian, rel=0.015)
    default = rise_time_response(resolved["default"], 2000, 25.0, sigmas)
    assert np.all(default > 1.02 * gaussian)
    assert np.all(rise_time_response(resolved["double"], 2000, 25.0, sigmas) > default)


@pytest.mark.parametrize("d", [15.0, 45.0])
def test_diffusion_with_delayed_light_from_rise_times_through_the_response(resolved, d):
    from faxflow.engines.builtin.width_response import rise_time_response

    settings = resolved["default"]
    events = synthetic(d_cm2_per_s=d)
    v_cm_per_ns = settings["physics"]["drift_velocity_um_per_ns"] * 1e-4
    sigma = np.sqrt(300.0 ** 2 + 2 * d * 1e-9 * events["drift_time"] / v_cm_per_ns ** 2)
    grid = np.geomspace(200.0, 5000.0, 12)
    photons = int(events["s2"].median() / (1 + settings["physics"]["double_pe_probability"]))
    response = rise_time_response(settings, photons, 25.0, grid, seed=5)  # another draw than the fit's
    events["s2_rise_time"] = np.interp(sigma, grid, response) * np.random.default_rng(2).normal(1, 0.05, len(sigma))
    assert s2_sigma_column(events, settings) == "s2_rise_time"
    fit = diffusion_constant(events, settings, s2_yield=25.0)
    assert fit.value == pytest.approx(d, rel=0.03) and 0 < fit.error < 0.03 * d
    assert np.isnan(prompt_sigma_from_rise_time(events, settings, None)).all()
    assert diffusion_constant(events, settings) is None
    assert s2_sigma_column(events, {**settings, "engine": "pax"}) == "s2_range_50p_area"
