"""Interactions: pairing S1s with S2s (pax ``BuildInteractions``, docs/physics.md "Classification").

Per event: the S1s ranked by (tight_coincidence, area) descending, after a coarser rank from
``classification.s1_pairing_rank`` when given (S1s without bottom light, then slow ones, last); the S2s with area ≥
``s2_pairing_threshold_pe`` ranked by area, first ``pair_n_s2s``. Looping S2s (outer) then the first
``pair_n_s1s`` ranked S1s whose sum-waveform maximum is not after the S2's (inner), each pair is an
interaction. pax takes the first ``pair_n_s1s`` S1s of the whole event instead, so S1-like peaks
after the main S2 can crowd out its true S1 (docs/physics.md, "Classification").
The main interaction is the first one. Alternatives (hax Extended): ``alt_s1`` is the S1 of the
first later interaction with the main S2 and another S1; ``alt_s2`` the S2 of the first later
interaction with the main S1 and another S2.
"""

import numpy as np
from numba import njit

from faxflow.engines.builtin.parameters import ProcessingParameters
from faxflow.engines.builtin.processing.classification import S1, S2
from faxflow.engines.builtin.radix import stable_argsort_values


def find_interactions(event_bounds: np.ndarray, peak_type: np.ndarray, area_pe: np.ndarray,
                      tight_coincidence: np.ndarray, index_of_maximum: np.ndarray,
                      processing: ProcessingParameters, s1_rank: np.ndarray | None = None,
                      ) -> dict[str, np.ndarray]:
    """Peak indices (−1 if absent) of main_s1, main_s2, alt_s1, alt_s2 for each event.

    Peaks of event e are rows event_bounds[e]:event_bounds[e + 1] of the other arrays; S1s with a
    lower ``s1_rank`` (default: all 0) are paired first.
    """
    area_pe = np.asarray(area_pe, dtype=np.float64)
    s1_rank = np.zeros(len(area_pe), dtype=np.int64) if s1_rank is None else np.asarray(s1_rank, dtype=np.int64)
    out = _pair(event_bounds.astype(np.int64), peak_type.astype(np.int64), area_pe,
                tight_coincidence.astype(np.int64), s1_rank, index_of_maximum.astype(np.int64),
                processing.s2_pairing_threshold_pe, processing.pair_n_s1s, processing.pair_n_s2s)
    return dict(zip(("main_s1", "main_s2", "alt_s1", "alt_s2"), out))


def drift_time_ns(s1_index_of_maximum, s2_index_of_maximum, sample_duration_ns: float) -> np.ndarray:
    """Drift time in ns from the sum-waveform maxima (samples) of the S1 and the S2."""
    samples = np.asarray(s2_index_of_maximum, dtype=float) - np.asarray(s1_index_of_maximum, dtype=float)
    return samples * sample_duration_ns


def depth_z_cm(drift_time, calibration) -> np.ndarray:
    """z in cm (negative below the gate) = −v_d (drift_time − drift_time_gate), from the :class:`.Calibration`."""
    velocity_cm_per_ns = calibration.drift_velocity_um_per_ns * 1e-4
    return -velocity_cm_per_ns * (np.asarray(drift_time, dtype=float) - calibration.drift_time_gate_us * 1e3)


@njit(cache=True)
def _stably_sorted(ids, values, sign):
    """``ids`` stably sorted by sign · values[ids] (exact as float64: areas, counts and ranks)."""
    keys = np.empty(len(ids))
    for i in range(len(ids)):
        keys[i] = sign * values[ids[i]]
    order = stable_argsort_values(keys)
    result = np.empty_like(ids)
    for i in range(len(ids)):
        result[i] = ids[order[i]]
    return result


@njit(cache=True)
def _pair(event_bounds, peak_type, area, tight, s1_rank, imax, s2_threshold, n_s1s, n_s2s):
    n_events = len(event_bounds) - 1
    main_s1 = np.full(n_events, -1, np.int64)
    main_s2 = np.full(n_events, -1, np.int64)
    alt_s1 = np.full(n_events, -1, np.int64)
    alt_s2 = np.full(n_events, -1, np.int64)
    for e in range(n_events):
        a, b = event_bounds[e], event_bounds[e + 1]
        s1s = np.empty(b - a, np.int64)
        s2s = np.empty(b - a, np.int64)
        n1 = 0
        n2 = 0
        for p in range(a, b):
            if peak_type[p] == S1:
                s1s[n1] = p
                n1 += 1
            elif peak_type[p] == S2 and area[p] >= s2_threshold:
                s2s[n2] = p
                n2 += 1
        s1s = s1s[:n1]
        s2s = s2s[:n2]
        # by (rank, tight coincidence descending, area descending): stable sorts, least significant first
        s1s = _stably_sorted(s1s, area, -1.0)
        s1s = _stably_sorted(s1s, tight, -1.0)
        s1s = _stably_sorted(s1s, s1_rank, 1.0)
        s2s = _stably_sorted(s2s, area, -1.0)[:n_s2s]
        for s2 in s2s:
            candidates = 0
            for s1 in s1s:
                if imax[s2] < imax[s1]:
                    continue
                candidates += 1
                if candidates > n_s1s:
                    break
                if main_s2[e] < 0:
                    main_s1[e], main_s2[e] = s1, s2
                elif s2 == main_s2[e] and alt_s1[e] < 0:
                    alt_s1[e] = s1
                elif s1 == main_s1[e] and s2 != main_s2[e] and alt_s2[e] < 0:
                    alt_s2[e] = s2
    return main_s1, main_s2, alt_s1, alt_s2
