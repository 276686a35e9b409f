"""Fits that answer a campaign's question, per variant, each with a statistical uncertainty.

Input: a variant's event table (merged minitrees + truth, joined with the produced quanta and
depth of its instructions, see :func:`faxflow.catalog.event_table`). Estimators:

* diffusion constant: longitudinal diffusion adds 2 D t / v² to the variance of the S2 pulse in
  time, with v the simulated drift velocity, so a straight-line fit of the mean S2 σ² per
  drift-time bin gives D = slope · v² / 2; the intercept absorbs every depth-independent spread
  (gas-gap luminescence, trapping, PMT response). Variances of convolved shapes add, so without
  delayed light the sum-waveform variance (``s2_time_std``²) is the exact measure. PMT afterpulses
  and photo-ionisation electrons arrive 0.3–5 µs after their parent light, and how much of that
  tail a peak keeps changes with its size and width, which makes the variance read D 5–50 % low
  and any quantile width read it 5–15 % high. With either simulated, σ is instead found from the
  rise time (t50 − t10, which the far tail cannot reach) through the rise time vs σ relation of
  S2s with the variant's own delayed light (:mod:`faxflow.engines.builtin.width_response`,
  docs/physics.md "Diffusion fit with delayed light").
* electron lifetime and S2 yield: the logarithm of the mean uncorrected S2 per produced electron in
  each drift-time bin is linear in drift time with slope −1/τ (the log of the mean, not the mean of
  the log, which fluctuations would bias); the intercept gives the S2 area per electron at the gate.
* drift velocity: for depths uniform in [d_min, d_max] the drift time is uniform between the
  two edges of its distribution; the edges are extrapolated from the 5 % and 95 % quantiles and
  v = (d_max − d_min) / (t_max − t_min).
* S1 light yield (PE per produced photon), area fractions top, reconstruction efficiencies and
  the position resolution (1.4826 × median absolute residual, pooled over x and y).

Uncertainties of binned fits come from the fit covariance; of quantile estimators from a
seeded bootstrap, so a report is reproducible.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd

#: 50 %-area width of a Gaussian in units of its σ (2 · 0.6745).
GAUSSIAN_WIDTH50_PER_SIGMA = 1.349
#: Scale turning a median absolute deviation into a Gaussian σ.
MAD_TO_SIGMA = 1.4826
#: Drift-time bins of the binned straight-line fits.
DRIFT_BINS = 12
#: Quantiles that locate the two edges of the drift-time distribution.
EDGE_QUANTILES = (0.05, 0.95)
BOOTSTRAP_SAMPLES = 200
#: Fewest events a fit needs before it is attempted.
MIN_EVENTS = 20


@dataclass(frozen=True)
class Quantity:
    """A fitted quantity: its label, unit and the setting holding its configured value (if any)."""

    name: str
    label: str
    unit: str
    setting: Optional[str] = None


QUANTITIES = {q.name: q for q in (
    Quantity("diffusion_constant", "diffusion constant D", "cm²/s", "physics.diffusion_constant_cm2_per_s"),
    Quantity("electron_lifetime", "electron lifetime τ", "µs", "physics.electron_lifetime_us"),
    Quantity("drift_velocity", "drift velocity v", "µm/ns", "physics.drift_velocity_um_per_ns"),
    Quantity("s2_yield", "S2 yield at the gate", "PE/electron"),
    Quantity("s1_light_yield", "S1 light yield", "PE/photon"),
    Quantity("s1_aft", "S1 area fraction top", ""),
    Quantity("s2_aft", "S2 area fraction top", "", "physics.s2_mean_area_fraction_top"),
    Quantity("s1_efficiency", "S1 reconstruction efficiency", ""),
    Quantity("s2_efficiency", "S2 reconstruction efficiency", ""),
    Quantity("xy_resolution", "xy position resolution", "cm"),
    Quantity("z_resolution", "z position resolution", "cm"),
)}


@dataclass(frozen=True)
class FitResult:
    quantity: str
    value: float
    error: float
    n_events: int
    configured: Optional[float] = None
    #: straight-line parameters (intercept, slope) of binned fits, for drawing the curve
    curve: Optional[tuple[float, float]] = None

    def row(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "curve"}


def setting_value(settings: dict, dotted: Optional[str]) -> Optional[float]:
    """The value of a dotted setting (``physics.x``) in a variant's resolved settings, else None."""
    if dotted is None:
        return None
    value = settings
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, (int, float)) else None


def binned_means(x: np.ndarray, y: np.ndarray, bins: int = DRIFT_BINS):
    """(bin centres, mean of y, standard error) in equal-population bins of x, or None if too few events."""
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if len(x) < MIN_EVENTS:
        return None
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    chosen = [index == b for b in range(bins) if np.count_nonzero(index == b) >= 3]
    if len(chosen) < 3:
        return None
    return (np.array([x[m].mean() for m in chosen]), np.array([y[m].mean() for m in chosen]),
            np.array([y[m].std(ddof=1) / np.sqrt(np.count_nonzero(m)) for m in chosen]))


def line_fit(x: np.ndarray, y: np.ndarray, error: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(intercept, slope, covariance of (slope, intercept)) of a weighted straight line."""
    (slope, intercept), covariance = np.polyfit(x, y, 1, w=1 / np.maximum(error, 1e-300), cov="unscaled")
    return intercept, slope, covariance


SUM_WAVEFORM_STD = "sum-waveform time std"
RISE_TIME = "rise time, with the delayed light's response"
#: Prompt-light σ [ns] at which the rise-time response is drawn (from the gas gap alone to the deepest S2s).
RESPONSE_SIGMAS_NS = np.geomspace(150.0, 6000.0, 12)


def delayed_light(settings: dict) -> bool:
    """Whether a variant simulates light that trails its parent pulse (PMT afterpulses, photo-ionisation)."""
    return settings.get("pmt_afterpulse", True) or settings.get("s2_afterpulse", True)


def s2_sigma_column(events: pd.DataFrame, settings: dict) -> str:
    """The column :func:`s2_sigma` measures the S2 pulse width from."""
    if not delayed_light(settings) and "s2_time_std" in events:
        return "s2_time_std"
    builtin = settings.get("engine", "builtin") == "builtin"
    return "s2_rise_time" if builtin and "s2_rise_time" in events else "s2_range_50p_area"


def s2_sigma(events: pd.DataFrame, settings: dict, s2_yield: Optional[float] = None) -> tuple[np.ndarray, str]:
    """(per-event σ of the S2's prompt light in time [ns], how it was measured), as the diffusion fit uses it.

    The rise-time route needs the S2 yield (the area of a photo-ionisation electron's S2); without it
    σ is NaN for every event."""
    column = s2_sigma_column(events, settings)
    if column == "s2_rise_time":
        return prompt_sigma_from_rise_time(events, settings, s2_yield), RISE_TIME
    if column == "s2_range_50p_area":
        return (events["s2_range_50p_area"].to_numpy(float) / GAUSSIAN_WIDTH50_PER_SIGMA,
                f"50% area width / {GAUSSIAN_WIDTH50_PER_SIGMA}")
    return events["s2_time_std"].to_numpy(float), SUM_WAVEFORM_STD


def prompt_sigma_from_rise_time(events: pd.DataFrame, settings: dict, s2_yield: Optional[float]) -> np.ndarray:
    """σ [ns] of each S2's prompt light: its rise time inverted through the variant's rise-time response.

    The response is drawn for the median S2 (in detected photons: area over 1 + double-PE probability)
    and smoothed by a quadratic in log σ of rise time / σ; rise times outside it give NaN."""
    rise = events["s2_rise_time"].to_numpy(float)
    area = events["s2"].to_numpy(float)
    if not s2_yield or not np.isfinite(area).any():
        return np.full(len(rise), np.nan)
    photons = int(np.nanmedian(area) / (1 + settings["physics"]["double_pe_probability"]))
    sigmas, rises = _smoothed_response(json.dumps(settings, sort_keys=True), max(photons, 1), float(s2_yield))
    return np.interp(rise, rises, sigmas, left=np.nan, right=np.nan)


@lru_cache(maxsize=16)
def _smoothed_response(settings_json: str, photons: int, s2_yield: float) -> tuple[np.ndarray, np.ndarray]:
    """(σ, rise time) on a fine grid; cached, as the fit and the width plot of a variant both need it."""
    from faxflow.engines.builtin.width_response import rise_time_response

    response = rise_time_response(json.loads(settings_json), photons, s2_yield, RESPONSE_SIGMAS_NS)
    shape = np.polyfit(np.log(RESPONSE_SIGMAS_NS), response / RESPONSE_SIGMAS_NS, 2)
    sigmas = np.geomspace(RESPONSE_SIGMAS_NS[0], RESPONSE_SIGMAS_NS[-1], 400)
    return sigmas, sigmas * np.polyval(shape, np.log(sigmas))


def position_columns(events: pd.DataFrame) -> tuple[str, str]:
    """The reconstructed (x, y) columns: the corrected ones if the table has them, else the pax-algorithm ones.

    Only the builtin engine's minitrees carry the Corrections position; both engines write ``x_pax``/``y_pax``.
    """
    return ("x", "y") if "x" in events and "y" in events else ("x_pax", "y_pax")


def required_columns(events: pd.DataFrame, settings: dict) -> dict[str, tuple[str, ...]]:
    """Quantity name → the event-table columns its estimator reads."""
    x, y = position_columns(events)
    lifetime = ("s2", "n_electrons", "drift_time")
    return {
        "diffusion_constant": ("s2", "drift_time", s2_sigma_column(events, settings)),
        "electron_lifetime": lifetime,
        "s2_yield": lifetime,
        "s1_light_yield": ("s1", "n_photons"),
        "s1_aft": ("s1_area_fraction_top",),
        "s2_aft": ("s2_area_fraction_top",),
        "s1_efficiency": ("s1", "truth_s1"),
        "s2_efficiency": ("s2", "truth_s2"),
        "xy_resolution": (x, y, "truth_x", "truth_y"),
        "z_resolution": ("z", "depth"),
        "drift_velocity": ("drift_time",),
    }


def missing_columns(events: pd.DataFrame, settings: dict) -> dict[str, list[str]]:
    """Quantity name → the columns it needs that the event table lacks (only quantities that lack some)."""
    needed = required_columns(events, settings).items()
    return {name: missing for name, columns in needed if (missing := [c for c in columns if c not in events])}


def diffusion_constant(events: pd.DataFrame, settings: dict,
                       s2_yield: Optional[float] = None) -> Optional[FitResult]:
    """D [cm²/s] from the S2 variance (:func:`s2_sigma` squared) vs drift time, with the simulated v.

    The variance of a pulse measured around its own mean misses the spread of that mean, σ_d² / N
    for N extracted electrons, so given the S2 yield (PE per produced electron at the gate) the
    sum-waveform variance is fitted against t · (1 − 1/N), N = S2 · extraction yield / S2 yield.
    """
    s2 = events[events["s2"] > 0]
    sigma, measured = s2_sigma(s2, settings, s2_yield)
    drift = s2["drift_time"].to_numpy(float)
    if s2_yield and measured == SUM_WAVEFORM_STD:
        extraction = settings["physics"].get("electron_extraction_yield", 1.0)
        drift = drift * (1 - np.minimum(s2_yield / (extraction * s2["s2"].to_numpy(float)), 1))
    binned = binned_means(drift, sigma ** 2)
    if binned is None:
        return None
    intercept, slope, covariance = line_fit(*binned)
    v_cm_per_ns = settings["physics"]["drift_velocity_um_per_ns"] * 1e-4
    scale = v_cm_per_ns ** 2 / 2 * 1e9
    return FitResult("diffusion_constant", slope * scale, np.sqrt(covariance[0, 0]) * scale, len(s2),
                     curve=(intercept, slope))


def lifetime_and_yield(events: pd.DataFrame) -> tuple[Optional[FitResult], Optional[FitResult]]:
    """(τ [µs], S2 yield [PE/electron]) from ln(S2 / produced electrons) vs drift time."""
    s2 = events[(events["s2"] > 0) & (events["n_electrons"] > 0)]
    binned = binned_means(s2["drift_time"].to_numpy(float), (s2["s2"] / s2["n_electrons"]).to_numpy(float))
    if binned is None or np.any(binned[1] <= 0):
        return None, None
    centres, means, errors = binned
    intercept, slope, covariance = line_fit(centres, np.log(means), errors / means)
    if slope >= 0:
        return None, None
    tau_ns = -1 / slope
    tau = FitResult("electron_lifetime", tau_ns / 1e3, np.sqrt(covariance[0, 0]) / slope ** 2 / 1e3, len(s2),
                    curve=(intercept, slope))
    gain = np.exp(intercept)
    return tau, FitResult("s2_yield", gain, gain * np.sqrt(covariance[1, 1]), len(s2))


def bootstrap(values: np.ndarray, statistic: Callable[[np.ndarray], float], seed: int = 0) -> tuple[float, float]:
    """(statistic, bootstrap standard deviation) of ``values``; the seed keeps reports reproducible."""
    rng = np.random.default_rng(seed)
    draws = [statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(BOOTSTRAP_SAMPLES)]
    return statistic(values), float(np.std(draws, ddof=1))


def drift_time_edges(drift_time: np.ndarray) -> tuple[float, float]:
    """(t_min, t_max) of a uniform distribution, extrapolated from its EDGE_QUANTILES."""
    low, high = EDGE_QUANTILES
    q_low, q_high = np.quantile(drift_time, EDGE_QUANTILES)
    span = (q_high - q_low) / (high - low)
    return q_low - low * span, q_high + (1 - high) * span


def drift_velocity(events: pd.DataFrame, depth_min_cm: float, depth_max_cm: float) -> Optional[FitResult]:
    """v [µm/ns] from the edges of the drift-time distribution of uniformly deep interactions."""
    drift = events["drift_time"].dropna().to_numpy(float)
    if len(drift) < MIN_EVENTS:
        return None

    def velocity(sample: np.ndarray) -> float:
        t_min, t_max = drift_time_edges(sample)
        return (depth_max_cm - depth_min_cm) * 1e4 / (t_max - t_min)

    value, error = bootstrap(drift, velocity)
    return FitResult("drift_velocity", value, error, len(drift))


def _mean(name: str, values: pd.Series) -> Optional[FitResult]:
    values = values.dropna().to_numpy(float)
    if len(values) < MIN_EVENTS:
        return None
    return FitResult(name, float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))), len(values))


def efficiency(name: str, found: pd.Series) -> FitResult:
    """Fraction found with its binomial uncertainty."""
    n = len(found)
    p = float(found.mean()) if n else float("nan")
    return FitResult(name, p, float(np.sqrt(p * (1 - p) / n)) if n else float("nan"), n)


def light_yield(events: pd.DataFrame) -> Optional[FitResult]:
    """S1 PE per produced photon: mean S1 area over mean produced photons (events with an S1)."""
    s1 = events[events["s1"].notna() & (events["n_photons"] > 0)]
    if len(s1) < MIN_EVENTS:
        return None
    ratio = s1["s1"].to_numpy(float), s1["n_photons"].to_numpy(float)
    value, error = bootstrap(np.column_stack(ratio), lambda pair: pair[:, 0].mean() / pair[:, 1].mean())
    return FitResult("s1_light_yield", value, error, len(s1))


def resolution(name: str, residuals: np.ndarray) -> Optional[FitResult]:
    residuals = residuals[np.isfinite(residuals)]
    if len(residuals) < MIN_EVENTS:
        return None
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(residuals - np.median(residuals))))
    return FitResult(name, sigma, sigma / np.sqrt(2 * len(residuals)), len(residuals))


def fit_variant(events: pd.DataFrame, settings: dict) -> dict[str, FitResult]:
    """Every quantity that the events allow, keyed by quantity name, with configured values filled in.

    A quantity whose columns the table lacks (see :func:`missing_columns`) is left out."""
    fiducial = settings.get("fiducial_volume") or {}
    missing = missing_columns(events, settings)
    lifetime, s2_yield = (None, None) if "electron_lifetime" in missing else lifetime_and_yield(events)
    x, y = position_columns(events)
    uniform = settings.get("instructions", {}).get("source") == "uniform" and fiducial
    estimators: dict[str, Callable[[], Optional[FitResult]]] = {
        "diffusion_constant": lambda: diffusion_constant(events, settings, s2_yield.value if s2_yield else None),
        "electron_lifetime": lambda: lifetime,
        "s2_yield": lambda: s2_yield,
        "s1_light_yield": lambda: light_yield(events),
        "s1_aft": lambda: _mean("s1_aft", events["s1_area_fraction_top"]),
        "s2_aft": lambda: _mean("s2_aft", events["s2_area_fraction_top"]),
        "s1_efficiency": lambda: efficiency("s1_efficiency", events.loc[events["truth_s1"] > 0, "s1"].notna()),
        "s2_efficiency": lambda: efficiency("s2_efficiency", events.loc[events["truth_s2"] > 0, "s2"].notna()),
        "xy_resolution": lambda: resolution("xy_resolution", np.concatenate(
            [(events[x] - events["truth_x"]).to_numpy(float), (events[y] - events["truth_y"]).to_numpy(float)])),
        "z_resolution": lambda: resolution("z_resolution", (events["z"] + events["depth"]).to_numpy(float)),
        "drift_velocity": lambda: drift_velocity(events, fiducial["depth_min_cm"], fiducial["depth_max_cm"])
        if uniform else None,
    }
    fitted = {}
    for name, estimate in estimators.items():
        result = None if name in missing else estimate()
        if result is not None:
            configured = setting_value(settings, QUANTITIES[name].setting)
            fitted[name] = FitResult(**{**asdict(result), "configured": configured})
    return fitted


def efficiency_curve(size: pd.Series, found: pd.Series, bins: int = 12):
    """(bin centres, efficiency, binomial error) of ``found`` vs a positive size, log-spaced bins."""
    size, found = size.to_numpy(float), found.to_numpy(bool)
    keep = size > 0
    size, found = size[keep], found[keep]
    if len(size) < MIN_EVENTS:
        return np.array([]), np.array([]), np.array([])
    edges = np.geomspace(size.min(), size.max() * 1.0001, bins + 1)
    index = np.searchsorted(edges, size, side="right") - 1
    centres, values, errors = [], [], []
    for b in range(bins):
        chosen = found[index == b]
        if len(chosen):
            p = chosen.mean()
            centres.append(np.sqrt(edges[b] * edges[b + 1]))
            values.append(p)
            errors.append(np.sqrt(max(p * (1 - p), 1 / len(chosen)) / len(chosen)))
    return np.asarray(centres), np.asarray(values), np.asarray(errors)
