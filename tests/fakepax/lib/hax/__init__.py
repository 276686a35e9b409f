"""Stand-in hax: init() checks the offline keywords faxflow must pass; minitrees builds tables from
the stand-in paxer's processed ROOT files with hax's column names."""
from . import minitrees  # noqa: F401 - hax exposes hax.minitrees on import

__version__ = "2.5.0-fake"
config = {}
OFFLINE = {"experiment": "XENON1T", "pax_version_policy": "loose", "use_runs_db": False, "corrections": []}


def init(**kwargs):
    for key, value in OFFLINE.items():
        if kwargs.get(key) != value:
            raise ValueError(f"fake hax: init needs {key}={value!r} offline, got {kwargs.get(key)!r}")
    for key in ("main_data_paths", "minitree_paths"):
        if not isinstance(kwargs.get(key), list) or len(kwargs[key]) != 1:
            raise ValueError(f"fake hax: init needs {key} as a one-element list, got {kwargs.get(key)!r}")
    config.clear()
    config.update(kwargs)
