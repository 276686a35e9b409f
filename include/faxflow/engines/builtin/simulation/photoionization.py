"""Photo-ionisation ("S2 afterpulses", docs/physics.md "Photo-ionisation"): single electrons freed by the
event's own photons, which then make single-electron S2s at random positions.

Volume type: p per detected photon, delay U(0, pi_volume_max_delay); gate type: p per photon,
delay N(mean, sigma). Each electron survives with exp(-delay / electron lifetime). Times in ns.
"""

from dataclasses import dataclass

import numpy as np

NS_PER_US = 1e3


@dataclass(frozen=True)
class PhotoionizationElectrons:
    """Surviving photo-ionisation electrons: event index, surface arrival time (ns), position (cm)."""

    event: np.ndarray
    time_ns: np.ndarray
    x_cm: np.ndarray
    y_cm: np.ndarray


def photoionization_electrons(photon_counts_per_event, photon_times_ns, physics,
                              rng: np.random.Generator) -> PhotoionizationElectrons:
    """Draw the photo-ionisation electrons of a batch of events.

    ``photon_times_ns`` are all detected photon arrival times of the batch grouped by event (event
    0's first), ``photon_counts_per_event`` how many belong to each event.
    """
    counts = np.asarray(photon_counts_per_event, dtype=np.int64)
    first_photon = np.cumsum(counts) - counts
    lifetime_ns = physics.electron_lifetime_us * NS_PER_US
    events, delays = [], []
    n_volume = rng.binomial(counts, physics.pi_volume_probability)
    events.append(np.repeat(np.arange(len(counts)), n_volume))
    delays.append(rng.uniform(0.0, physics.pi_volume_max_delay_us * NS_PER_US, size=n_volume.sum()))
    n_gate = rng.binomial(counts, physics.pi_gate_probability)
    events.append(np.repeat(np.arange(len(counts)), n_gate))
    delays.append(rng.normal(physics.pi_gate_delay_mean_us * NS_PER_US,
                             physics.pi_gate_delay_sigma_us * NS_PER_US, size=n_gate.sum()))
    event, delay = np.concatenate(events), np.concatenate(delays)

    survives = rng.random(len(delay)) < np.exp(-np.maximum(delay, 0.0) / lifetime_ns)
    event, delay = event[survives], delay[survives]
    parent = first_photon[event] + (rng.random(len(event)) * counts[event]).astype(np.int64)
    time_ns = np.asarray(photon_times_ns)[parent] + delay

    radius = physics.tpc_radius_cm * np.sqrt(rng.random(len(event)))
    angle = rng.uniform(-np.pi, np.pi, size=len(event))
    return PhotoionizationElectrons(event, time_ns, radius * np.cos(angle), radius * np.sin(angle))
