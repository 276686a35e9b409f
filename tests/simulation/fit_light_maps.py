"""Fit the builtin engine's light maps to the tabulated public SR1 maps in ``data/``.

Run ``python -m tests.simulation.fit_light_maps`` to rewrite the package's ``light_map_fits.json``;
``test_light_maps.py`` checks that the shipped file is what this fit gives.
"""

import json
from pathlib import Path

import numpy as np

from faxflow.engines.builtin.detector import lightmaps

PUBLIC_MAPS = Path(__file__).parent / "data" / "public_sr1_light_maps.json"
SHIPPED_FITS = Path(lightmaps.__file__).parent / lightmaps.MAP_FITS_FILE
DEGREES = {"s1_light_yield": (4, 6), "s1_top_fraction": (4, 6), "s2_light_yield": (12, None)}


def public_maps() -> dict:
    return json.loads(PUBLIC_MAPS.read_text())


def fit_map(table: dict, xy_degree: int, depth_degree: int | None) -> dict:
    values = np.asarray(table["value"])
    if depth_degree is None:
        xy = np.asarray(table["xy"])
        terms = lightmaps.xy_basis(xy[:, 0], xy[:, 1], xy_degree)
        region = {}
    else:
        xy = np.asarray(table["xyz"])
        terms = lightmaps.xyz_basis(xy[:, 0], xy[:, 1], xy[:, 2], xy_degree, depth_degree)
        depth = -xy[:, 2]
        region = {"depth_degree": depth_degree, "depth_range_cm": [float(depth.min()), float(depth.max())]}
    coefficients, *_ = np.linalg.lstsq(terms, values, rcond=None)
    return {"source": table["source"], "xy_degree": xy_degree, **region,
            "max_radius_cm": float(np.hypot(xy[:, 0], xy[:, 1]).max()),
            "coefficients": [float(f"{c:.9g}") for c in coefficients]}


def fit_all() -> dict:
    maps = public_maps()
    return {name: fit_map(maps[name], *degrees) for name, degrees in DEGREES.items()}


if __name__ == "__main__":
    SHIPPED_FITS.write_text(json.dumps(fit_all(), indent=1) + "\n")
    print(f"wrote {SHIPPED_FITS}")
