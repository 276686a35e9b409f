"""Stand-in pax package: a version and the config names the probe looks for."""
__version__ = "6.11.2-fake"
