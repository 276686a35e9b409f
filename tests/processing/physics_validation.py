"""Physics figures of the builtin chain on the 2017 SR1 test settings (docs/physics.md, "Validation").

``python tests/processing/physics_validation.py [n_events] [--physics JSON] [--no-delayed-light]``
prints them; ``test_physics_validation.py`` asserts them. Events: photons 50-100, electrons 10-100,
uniform in the 2017 fiducial volume, PMT afterpulses and photo-ionisation on (the instructions of
``test_processing_validation.py``). ``--physics`` sets SR1 physics keys (e.g. ``'{"s2_pattern_height_cm":
1e4}'``, S2 top light shared flatly), ``--no-delayed-light`` turns off afterpulses and photo-ionisation
(add ``"lone_hit_rates_per_channel_hz": []`` for the bare chain of docs/physics.md "S2 area per truth
photon").
"""

import argparse
import json

import numpy as np
from test_processing_validation import instructions, per_event

from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.engines.builtin.processing.process import process
from faxflow.engines.builtin.simulation.simulate import simulate

PHYSICS = PhysicsParameters.for_period("SR1")
PROCESSING = ProcessingParameters.for_period("SR1")
MIN_S1_DETECTED_PHOTONS = 3
MIN_S2_TRUE_PHOTONS = 1000
SE_LIKE_S1_MIN_AREA_PE = 10.0


def run(n_events: int, seed: int = 2017, physics=PHYSICS, processing=PROCESSING, delayed_light: bool = True):
    """(per-event table, processed peaks, truth) of one simulated and processed production.

    ``delayed_light``: PMT afterpulses and photo-ionisation simulated.
    """
    table = instructions(n_events, seed)
    truth, raw = simulate(table, physics, pmt_afterpulse=delayed_light, s2_afterpulse=delayed_light,
                          rng=np.random.default_rng(seed))
    processed = process(raw, processing)
    return per_event(processed, processing, truth, table["s2_electrons"].to_numpy()), processed.peaks, truth


def figures(events, peaks, truth) -> dict:
    n_events = len(events)
    big = ((events["truth_s1_n_photons"] >= MIN_S1_DETECTED_PHOTONS)
           & (events["truth_s2_n_photons"] >= MIN_S2_TRUE_PHOTONS))
    with_s1 = (events["truth_s1_n_photons"] >= MIN_S1_DETECTED_PHOTONS) & (events["truth_s2_n_electrons"] >= 5)
    with_s2 = events["truth_s2_n_electrons"] >= 5
    good = events["s1_ok"] & events["s2_ok"]
    first_s2_photon = truth[truth["peak_type"] == "s2"].set_index("event")["t_first_photon"]
    s1s = peaks[peaks["type"] == "s1"]
    s1_start_ns = s1s["left"].to_numpy() * PHYSICS.sample_duration_ns
    after_s2 = s1_start_ns > first_s2_photon.reindex(s1s["event_number"]).to_numpy()
    se_like = (s1s["area"].to_numpy() >= SE_LIKE_S1_MIN_AREA_PE) & after_s2
    return {
        "events": n_events,
        "main_interaction_pairing": float(good[big].mean()),
        "main_s1_found": float(events.loc[with_s1, "s1_ok"].mean()),
        "main_s2_found": float(events.loc[with_s2, "s2_ok"].mean()),
        "se_like_s1_per_event": float(se_like.sum() / n_events),
        "unknown_peaks_per_event": float((peaks["type"] == "unknown").sum() / n_events),
        "s1_peaks_per_event": float(len(s1s) / n_events),
        "s2_area_per_truth_photon": _area_per_photon(events[good], "s2"),
        "s1_area_per_truth_photon": _area_per_photon(events[good], "s1"),
    }


def _area_per_photon(events, peak: str) -> float:
    return float(events[peak].sum() / events[f"truth_{peak}_n_photons"].sum())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n_events", type=int, nargs="?", default=5000)
    parser.add_argument("--physics", type=json.loads, default={}, help="SR1 physics keys to set (JSON object)")
    parser.add_argument("--no-delayed-light", dest="delayed_light", action="store_false")
    args = parser.parse_args()
    physics = PhysicsParameters.for_period("SR1", **args.physics)
    print(json.dumps(figures(*run(args.n_events, physics=physics, processing=ProcessingParameters.for_physics(physics),
                                  delayed_light=args.delayed_light)), indent=1))
