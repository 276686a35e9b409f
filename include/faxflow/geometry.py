"""TPC dimensions and default fiducial volumes: the one home of the detectors' geometry.

Depth is measured in cm below the gate; r in cm from the TPC axis (docs/physics.md).
"""

#: TPC length (gate to cathode) and radius in cm, per detector.
TPC_SIZE_CM = {"XENON1T": {"length": 96.9, "radius": 47.9}, "XENON100": {"length": 30.5, "radius": 15.3}}
#: The fiducial volumes the 2017 scripts used.
DEFAULT_FIDUCIAL_VOLUME = {
    "XENON1T": {"r_max_cm": 36.94, "depth_min_cm": 9.0, "depth_max_cm": 92.9},
    "XENON100": {"r_max_cm": 200 ** 0.5, "depth_min_cm": 0.0, "depth_max_cm": 29.6},
}
