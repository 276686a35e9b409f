"""The ini files the ``pax`` engine hands to ``paxer``, generated from a variant's settings.

Physics overrides reach pax as a personalised ini file: each faxflow ``physics:`` key pax can take
maps to one pax key (section, name, unit expression; pax evaluates values with its unit names).
Sections are the ones pax's own XENON1T / SR*_parameters files use, so an override replaces the
value pax would otherwise read. The ``[MC]`` section makes hax treat the processed file as
simulated data (its run number comes from there, not from a runs database).
"""

import hashlib
from dataclasses import dataclass

from faxflow.engines.builtin.parameters import PERIOD_PROCESSING, PhysicsParameters, ProcessingParameters


@dataclass(frozen=True)
class PaxKey:
    section: str
    name: str
    unit: str  # pax unit expression the faxflow value is multiplied by ("" = unitless)


#: faxflow ``physics:`` key → the pax configuration key that sets the same quantity.
PAX_PHYSICS_KEYS = {
    "drift_velocity_um_per_ns": PaxKey("DEFAULT", "drift_velocity_liquid", "um / ns"),
    "electron_lifetime_us": PaxKey("DEFAULT", "electron_lifetime_liquid", "us"),
    "drift_time_gate_us": PaxKey("DEFAULT", "drift_time_gate", "us"),
    "tpc_length_cm": PaxKey("DEFAULT", "tpc_length", "cm"),
    "tpc_radius_cm": PaxKey("DEFAULT", "tpc_radius", "cm"),
    "diffusion_constant_cm2_per_s": PaxKey("WaveformSimulator", "diffusion_constant_liquid", "cm**2 / s"),
    "electron_trapping_time_ns": PaxKey("WaveformSimulator", "electron_trapping_time", "ns"),
    "electron_extraction_yield": PaxKey("WaveformSimulator", "electron_extraction_yield", ""),
    "gate_to_anode_cm": PaxKey("WaveformSimulator", "gate_to_anode_distance", "cm"),
    "gas_gap_cm": PaxKey("WaveformSimulator", "elr_gas_gap_length", "cm"),
    "anode_wire_radius_cm": PaxKey("WaveformSimulator", "anode_wire_radius", "cm"),
    "anode_field_domination_cm": PaxKey("WaveformSimulator", "anode_field_domination_distance", "cm"),
    "anode_voltage_kv": PaxKey("WaveformSimulator", "anode_voltage", "kV"),
    "lxe_dielectric_constant": PaxKey("WaveformSimulator", "lxe_dielectric_constant", ""),
    "gas_pressure_bar": PaxKey("WaveformSimulator", "pressure", "bar"),
    "gas_temperature_k": PaxKey("WaveformSimulator", "temperature", "K"),
    "gas_drift_velocity_slope_mm_per_us_per_td": PaxKey("WaveformSimulator", "gas_drift_velocity_slope",
                                                        "mm / us / Td"),
    "s1_detection_efficiency": PaxKey("WaveformSimulator", "s1_detection_efficiency", ""),
    "s1_decay_time_ns": PaxKey("WaveformSimulator", "s1_decay_time", "ns"),
    "singlet_lifetime_liquid_ns": PaxKey("WaveformSimulator", "singlet_lifetime_liquid", "ns"),
    "triplet_lifetime_liquid_ns": PaxKey("WaveformSimulator", "triplet_lifetime_liquid", "ns"),
    "led_pulse_length_ns": PaxKey("WaveformSimulator", "led_pulse_length", "ns"),
    "s2_secondary_sc_gain_photons_per_electron": PaxKey("WaveformSimulator", "s2_secondary_sc_gain", ""),
    "s2_mean_area_fraction_top": PaxKey("WaveformSimulator", "s2_mean_area_fraction_top", ""),
    "singlet_fraction_gas": PaxKey("WaveformSimulator", "singlet_fraction_gas", ""),
    "singlet_lifetime_gas_ns": PaxKey("WaveformSimulator", "singlet_lifetime_gas", "ns"),
    "triplet_lifetime_gas_ns": PaxKey("WaveformSimulator", "triplet_lifetime_gas", "ns"),
    "pmt_transit_time_mean_ns": PaxKey("WaveformSimulator", "pmt_transit_time_mean", "ns"),
    "pmt_transit_time_spread_ns": PaxKey("WaveformSimulator", "pmt_transit_time_spread", "ns"),
    "double_pe_probability": PaxKey("WaveformSimulator", "p_double_pe_emision", ""),
    "event_padding_ns": PaxKey("WaveformSimulator", "event_padding", "ns"),
}
#: ``processing:`` keys the pax engine takes (everything else reconstructs with the simulation's config).
PAX_PROCESSING_KEYS = ("run_number",)
#: The pax config files that carry a science run's parameters (and its own ``[MC]`` section).
PERIOD_CONFIGS = {"SR0_parameters": "SR0", "SR1_parameters": "SR1"}

#: Empty per-PMT afterpulse tables: fax then simulates no PMT afterpulses (pmt_afterpulse: false).
NO_PMT_AFTERPULSES = {"WaveformSimulator": {"pmt_afterpulse_types": "{}", "each_pmt_afterpulse_types": "{}"}}
#: One photo-ionisation type with probability 0: no S2 afterpulses (s2_afterpulse: false).
NO_S2_AFTERPULSES = {"WaveformSimulator": {"s2_afterpulse_types": (
    '{"Volume": {"p": 0, "time_parametrization": "uniform", "time_parameters": {"low": 0, "high": 0}}}')}}


def period_of(config_names) -> str:
    """The science run a pax config list simulates (SR1 unless SR0_parameters is loaded)."""
    periods = [PERIOD_CONFIGS[name] for name in config_names if name in PERIOD_CONFIGS]
    return periods[-1] if periods else "SR1"


def physics_overrides(settings: dict) -> dict[str, float]:
    """The resolved ``physics:`` values that differ from faxflow's defaults for the pax config's period."""
    defaults = PhysicsParameters.for_period(settings["physics"]["period"]).model_dump(mode="json")
    return {key: value for key, value in settings["physics"].items()
            if key != "period" and value != defaults[key]}


def unsupported_physics(overrides: dict) -> list[str]:
    """The override keys pax has no configuration key for."""
    return sorted(key for key in overrides if key != "period" and key not in PAX_PHYSICS_KEYS)


def mc_run_number(settings: dict) -> int:
    """``processing.run_number`` if set, else the run number pax's own SR*_parameters file gives MC."""
    default = ProcessingParameters.for_period(settings["physics"]["period"]).run_number
    run_number = settings["processing"]["run_number"]
    if run_number != default:
        return run_number
    period = period_of(settings["pax"]["config_names"])
    return PERIOD_PROCESSING[period].get("run_number", ProcessingParameters().run_number)


def _render(sections: dict[str, dict[str, str]], why: str) -> str:
    lines = [f"# Written by faxflow from the campaign settings: {why}."]
    for section, values in sections.items():
        lines += ["", f"[{section}]", *(f"{key} = {value}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


def _value(value: float, unit: str) -> str:
    return f"{value!r} * {unit}" if unit else repr(value)


def config_files(settings: dict) -> tuple[dict[str, str], dict[str, str]]:
    """(simulation files, processing files): ini file name → text, in the order paxer loads them.

    Simulation gets the afterpulse switches, both get the same physics and ``[MC]`` files, so
    processing reconstructs with the configuration the events were simulated with.
    """
    detector: dict[str, str] = {}
    sections: dict[str, dict[str, str]] = {}
    for key, value in physics_overrides(settings).items():
        pax_key = PAX_PHYSICS_KEYS[key]
        sections.setdefault(pax_key.section, {})[pax_key.name] = _value(value, pax_key.unit)
    if sections:
        detector["Personalize.ini"] = _render(sections, "the physics overrides of this variant")
    period = period_of(settings["pax"]["config_names"])
    detector["MC.ini"] = _render({"MC": {"mc_generated_data": "True", "mc_sr_parameters": repr(period.lower()),
                                         "mc_run_number": str(mc_run_number(settings))}},
                                 "simulated data, so hax takes the run number from here")
    simulation: dict[str, str] = {}
    if not settings["pmt_afterpulse"]:
        simulation["NoPMTAfterpulses.ini"] = _render(NO_PMT_AFTERPULSES, "pmt_afterpulse: false")
    if not settings["s2_afterpulse"]:
        simulation["NoS2Afterpulses.ini"] = _render(NO_S2_AFTERPULSES, "s2_afterpulse: false")
    return {**simulation, **detector}, detector


def config_digest(files: dict[str, str]) -> str:
    """12 hex digits naming a set of ini files (the directory they are written to)."""
    digest = hashlib.sha256()
    for name, text in sorted(files.items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:12]

#: hax treemakers (class names in hax/treemakers) that work on simulated data without a runs database.
HAX_TREEMAKERS = ("Fundamentals", "Basics", "Extended", "Corrections", "LargestPeakProperties", "TotalProperties",
                  "CorrectedDoubleS1Scatter", "PositionReconstruction", "LoneSignals", "LoneSignalsPreS1",
                  "PeaksBeforeTrigger", "TailCut", "Proximity", "LargestTriggeringSignal", "TimeDifferences")
#: The builtin engine's treemakers that hax can also build on MC (hax 2.5's Corrections fails on MC data).
DEFAULT_TREEMAKERS = ("Fundamentals", "Basics", "Extended")
