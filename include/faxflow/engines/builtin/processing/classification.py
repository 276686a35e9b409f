"""Peak classification: pax HEAD ``AdHocClassification1T`` plus two tests that keep single-electron
S2s out of the S1s and recover S1s broadened by a lone hit or an afterpulse (docs/physics.md,
"Classification").

- one contributing channel → ``lone_hit``;
- S1 candidates: tight_coincidence ≥ ``s1_min_tight_coincidence`` or ≥ ``s1_min_channels``
  contributing channels, and an S1 shape: fast (rise time t50 − t10 < ``s1_max_rise_time_ns`` and
  90 % width < ``s1_max_width_90p_ns``), or — for peaks below ``s1_relaxed_max_area_pe`` — a narrow
  core (50 % width < ``s1_relaxed_max_width_50p_ns``, rise < ``s1_relaxed_max_rise_time_ns``) with
  a top fraction clearly S1-like (less than ``s1_relaxed_top_sigma`` above ``s1_max_top_fraction``);
- vetoes: a top fraction more than ``s1_top_veto_sigma`` above ``s1_max_top_fraction`` (light made
  in the gas), or area ≥ ``s1_large_area_pe`` with rise ≥ ``s1_large_max_rise_time_ns``
  (S1s that large are fast; single electrons are not);
- everything else → ``s2`` if n_contributing_channels ≥ ``s2_min_channels``, else ``unknown``;
- given the event of each peak, a peak that starts before the event's first large S2 (``s2`` by the
  rules above, area ≥ ``s2_pairing_threshold_pe``) is an S1, whatever the vetoes say, if it is
  coincident (as above, or 2 channels within a 90 % width below ``s1_before_s2_max_width_90p_ns``),
  below ``s1_large_area_pe`` (or below ``s1_relaxed_max_area_pe`` with a top fraction at most
  ``s1_max_top_fraction``, a rise below ``s1_large_max_rise_time_ns``, or a 50 % width below
  ``s1_relaxed_max_width_50p_ns`` with a top area less than ``s1_before_s2_top_sigma`` above
  ``s1_max_top_fraction``), with a 50 % width below
  ``s1_before_s2_max_width_50p_ns`` and a rise below ``s1_before_s2_max_rise_time_ns``:
  photo-ionisation electrons and afterpulse clusters follow an S2, so before the first one a small
  coincident peak is an S1 far more often than a single electron (docs/physics.md, "Classification").

The top-fraction test treats a peak's area in PE as the number of trials: z = (top − A·f) /
sqrt(A·f·(1 − f)), with f = ``s1_max_top_fraction`` (the highest S1 top fraction of the light map).
"""

import numpy as np

from faxflow.engines.builtin.parameters import ProcessingParameters

PEAK_TYPES = ("lone_hit", "s1", "s2", "unknown")
LONE_HIT, S1, S2, UNKNOWN = range(4)


def classify(properties: dict[str, np.ndarray], processing: ProcessingParameters,
             event: np.ndarray | None = None) -> np.ndarray:
    """Type code per peak (index into PEAK_TYPES), int8, from the peak property columns and, if
    given, each peak's event number (non-negative integers)."""
    p = processing
    area = properties["area"]
    rise = -properties["area_decile_from_midpoint_1"]
    width_50p, width_90p = properties["range_area_decile_5"], properties["range_area_decile_9"]
    n_channels = properties["n_contributing_channels"]
    coincident = (properties["tight_coincidence"] >= p.s1_min_tight_coincidence) | (n_channels >= p.s1_min_channels)
    top_excess = _top_excess_sigma(area, properties["area_fraction_top"], p.s1_max_top_fraction)

    fast = (rise < p.s1_max_rise_time_ns) & (width_90p < p.s1_max_width_90p_ns)
    narrow_core = ((area < p.s1_relaxed_max_area_pe) & (width_50p < p.s1_relaxed_max_width_50p_ns)
                   & (rise < p.s1_relaxed_max_rise_time_ns) & (top_excess < p.s1_relaxed_top_sigma))
    vetoed = (top_excess > p.s1_top_veto_sigma) | ((area >= p.s1_large_area_pe) & (rise >= p.s1_large_max_rise_time_ns))
    is_s1 = coincident & (fast | narrow_core) & ~vetoed

    kind = np.where(is_s1, S1, np.where(n_channels >= p.s2_min_channels, S2, UNKNOWN))
    if event is not None and len(area):
        early = _before_first_large_s2(event, properties["left"], (kind == S2) & (area >= p.s2_pairing_threshold_pe))
        s1_sized = (area < p.s1_large_area_pe) | ((area < p.s1_relaxed_max_area_pe) & (
            (top_excess <= 0) | (rise < p.s1_large_max_rise_time_ns)
            | ((width_50p < p.s1_relaxed_max_width_50p_ns) & (top_excess < p.s1_before_s2_top_sigma))))
        early_shape = (width_50p < p.s1_before_s2_max_width_50p_ns) & (rise < p.s1_before_s2_max_rise_time_ns)
        early_coincident = coincident | ((n_channels >= 2) & (width_90p < p.s1_before_s2_max_width_90p_ns))
        kind = np.where(early & s1_sized & early_shape & early_coincident, S1, kind)
    return np.where(n_channels == 1, LONE_HIT, kind).astype(np.int8)


def s1_pairing_rank(properties: dict[str, np.ndarray], processing: ProcessingParameters) -> np.ndarray:
    """int64 per peak: how unlike a true S1 it is, for ranking the S1s of an event (lower first).

    +2 with no light on the bottom array (area fraction top ≥ ``s1_rank_max_top_fraction``; the
    bottom array sees most of an S1, while two lone hits on the top array fake a tight
    coincidence), +1 with a slow rise (≥ ``s1_rank_slow_rise_time_ns``, like the single electrons
    accepted before the first S2). See docs/physics.md, "Classification".
    """
    if not processing.s1_rank_by_shape:
        return np.zeros(len(properties["area"]), dtype=np.int64)
    no_bottom_light = np.nan_to_num(properties["area_fraction_top"]) >= processing.s1_rank_max_top_fraction
    slow = -properties["area_decile_from_midpoint_1"] >= processing.s1_rank_slow_rise_time_ns
    return 2 * no_bottom_light.astype(np.int64) + slow.astype(np.int64)


def _before_first_large_s2(event, left, large_s2) -> np.ndarray:
    """Whether each peak starts before the first large S2 of its event (False if there is none)."""
    event = np.asarray(event, dtype=np.int64)
    first = np.full(event.max() + 1, np.inf)
    np.minimum.at(first, event[large_s2], np.asarray(left, dtype=float)[large_s2])
    return left < first[event]


def _top_excess_sigma(area, top_fraction, expected_fraction: float) -> np.ndarray:
    """How many binomial sigmas the top area lies above ``expected_fraction`` of the area."""
    trials = np.maximum(np.asarray(area, dtype=float), 1.0)
    spread = np.sqrt(trials * expected_fraction * (1.0 - expected_fraction))
    return (np.nan_to_num(top_fraction) * trials - trials * expected_fraction) / spread
