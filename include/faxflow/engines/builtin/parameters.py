"""Numbers of the XENON1T detector used by the builtin engine, with their units in the names.

Values follow pax's XENON1T configuration (docs/physics.md, "Parameters"). ``SR1`` is the
default period; ``SR0`` differs in gains, drift velocity, diffusion, lifetime and S2 top fraction.
Every field can be overridden from a campaign's ``physics:`` (simulation) or ``processing:``
(reconstruction) section. Processing's calibration follows ``physics:`` unless set under
``processing:``, so a lifetime sweep is one ``physics:`` key and a mis-calibration is explicit.
"""

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from faxflow.geometry import TPC_SIZE_CM

Period = Literal["SR0", "SR1"]
N_TPC_CHANNELS = 248


class PhysicsParameters(BaseModel):
    """What the simulator needs. Units are in the field names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: Period = "SR1"

    # geometry
    tpc_length_cm: float = Field(TPC_SIZE_CM["XENON1T"]["length"], gt=0, le=1000)
    tpc_radius_cm: float = Field(TPC_SIZE_CM["XENON1T"]["radius"], gt=0, le=1000)
    gate_to_anode_cm: float = Field(0.5, gt=0)
    gas_gap_cm: float = Field(0.266, gt=0, description="liquid surface to anode")
    anode_wire_radius_cm: float = Field(0.01175, gt=0)
    anode_field_domination_cm: float = Field(0.036, gt=0)
    anode_voltage_kv: float = Field(4.0, gt=0)
    lxe_dielectric_constant: float = Field(1.874, gt=0)
    gas_pressure_bar: float = Field(1.94, gt=0)
    gas_temperature_k: float = Field(177.45, gt=0)
    gas_drift_velocity_slope_mm_per_us_per_td: float = Field(0.54, gt=0)

    # drift
    drift_velocity_um_per_ns: float = Field(1.335, ge=0.1, le=10)
    drift_time_gate_us: float = Field(1.7, ge=0, le=1000)
    electron_lifetime_us: float = Field(550.0, gt=0)
    diffusion_constant_cm2_per_s: float = Field(29.35, ge=0, le=10000)
    electron_trapping_time_ns: float = Field(140.0, ge=0, le=1e6)
    electron_extraction_yield: float = Field(1.0, ge=0, le=1)
    field_distortion: bool = Field(True, description="apply the inward r shift of the S2 position")

    # S1
    s1_detection_efficiency: float = Field(0.12, gt=0, le=1)
    s1_decay_time_ns: float = Field(44.77, gt=0, le=1e6)
    alpha_singlet_fraction: float = Field(0.737, ge=0, le=1)
    singlet_lifetime_liquid_ns: float = Field(3.1, gt=0, le=1e6)
    triplet_lifetime_liquid_ns: float = Field(24.0, gt=0, le=1e6)
    led_pulse_length_ns: float = Field(100.0, gt=0, le=1e6)

    # S2
    s2_secondary_sc_gain_photons_per_electron: float = Field(21.3, ge=0, le=1000)
    s2_mean_area_fraction_top: float = Field(0.627, ge=0, le=1)
    s2_pattern_height_cm: float = Field(7.0, gt=0, description="effective height h of the (1+d²/h²)^-3/2 top pattern")
    s2_emission_weighting: Literal["fax", "path"] = Field(
        "fax", description="S2 emission times: fax's speed-weighted light per step, or light per unit path")
    singlet_fraction_gas: float = Field(0.035, ge=0, le=1)
    singlet_lifetime_gas_ns: float = Field(5.88, gt=0, le=1e6)
    triplet_lifetime_gas_ns: float = Field(119.5, gt=0, le=1e6)

    # photo-ionisation (S2 afterpulses)
    pi_volume_probability: float = Field(1.3e-2, ge=0, le=1)
    pi_volume_max_delay_us: float = Field(700.0, gt=0, le=1e5)
    pi_gate_probability: float = Field(1.4e-3, ge=0, le=1)
    pi_gate_delay_mean_us: float = Field(1.37, ge=0, le=1e5)
    pi_gate_delay_sigma_us: float = Field(0.15, ge=0, le=1e5)

    # PMTs
    pmt_transit_time_mean_ns: float = Field(46.0, ge=0, le=1e4)
    pmt_transit_time_spread_ns: float = Field(13.6, ge=0, le=1e4)
    double_pe_probability: float = Field(0.15, ge=0, le=1)
    pmt_afterpulse_table: Literal["per_pmt", "type_means"] = Field(
        "per_pmt", description="pax's per-PMT afterpulse table, or its live-channel mean on every PMT")
    pmt_afterpulse_scale: float = Field(1.0, ge=0, description="multiplies every per-PMT afterpulse probability")
    pmt_afterpulse_areas: Literal["fax", "own"] = Field(
        "fax", description="fax: a channel's areas in draw order go to its pulses in time order, so afterpulse "
        "areas land on its latest pulses (as fax); own: each afterpulse carries its own area")
    spe_relative_width: float = Field(0.41, ge=0, description="sigma/mean of the single-PE area spectrum")

    # digitiser, noise, ZLE
    sample_duration_ns: float = Field(10.0, ge=1, le=100)
    event_padding_ns: float = Field(5000.0, ge=0, le=1e6)
    digitizer_baseline_adc: int = Field(16000, ge=0, le=16383)
    adc_per_electron_per_ns: float = Field(5.833e-4, gt=0, description="50 Ohm x10 amplifier, 2.25 V / 2^14")
    noise_rms_adc: float = Field(2.25, ge=0)
    zle_thresholds: Literal["pax_per_channel", "uniform"] = Field(
        "pax_per_channel", description="pax's per-channel [ZLE] special_thresholds, or zle_threshold_adc everywhere")
    zle_threshold_adc: int = Field(15, ge=0, description="ZLE threshold of channels without a per-channel one")
    zle_padding_samples: int = Field(50, ge=0, le=10000)
    lone_hit_rates_per_channel_hz: tuple[tuple[int, float], ...] = Field(
        ((0, 1.0e4), (100, 1.0e5), (200, 500.0)),
        description="(channel, rate) pairs of single photoelectrons at random times (pax Simulation.ini)")
    noise_pulse_rate_per_channel_hz: float = Field(
        0.0, ge=0, description="rate of noise-only ZLE pulses per live channel (real-noise tails; pax has none)")

    @field_validator("lone_hit_rates_per_channel_hz")
    @classmethod
    def _lone_hit_channels_exist(cls, pairs):
        for channel, rate in pairs:
            if not 0 <= channel < N_TPC_CHANNELS or rate < 0:
                raise ValueError(f"({channel}, {rate}): channel must be 0-{N_TPC_CHANNELS - 1} and rate >= 0 Hz")
        return pairs

    @classmethod
    def for_period(cls, period: Period = "SR1", **overrides) -> "PhysicsParameters":
        return cls(**{**PERIOD_PHYSICS[period], "period": period, **overrides})


class ProcessingParameters(BaseModel):
    """What reconstruction needs: algorithm settings and the calibration (docs/physics.md, "Calibration")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline_samples: int = Field(47, gt=0)
    hit_threshold_sigma: float = Field(6.0, ge=0)
    hit_threshold_min_adc: float = Field(15.0, ge=0)
    hit_extension_left_samples: int = Field(3, ge=0)
    hit_extension_right_samples: int = Field(20, ge=0)
    s1_cluster_gap_ns: float = Field(350.0, gt=0)
    s2_cluster_gap_ns: float = Field(3500.0, gt=0)
    # pax HEAD used 70 ns / 300 ns, which loses ~12 % of 5-15 PE S1s (44.77 ns decay, transit-time
    # spread, SPE tail). 110 / 500 keep them but let ~5 % of single-electron S2s through; the
    # top-fraction and large-area vetoes below reject those (docs/physics.md, "Classification").
    s1_max_rise_time_ns: float = Field(110.0, gt=0, description="S1 if t50 - t10 below this (pax HEAD: 70)")
    s1_max_width_90p_ns: float = Field(500.0, gt=0, description="and 90 % area width below this (pax HEAD: 300)")
    s1_min_tight_coincidence: int = Field(2, ge=1)
    s1_min_channels: int = Field(3, ge=1, description="or at least this many contributing channels")
    s1_max_top_fraction: float = Field(0.36, gt=0, lt=1, description="highest S1 area fraction top (light map)")
    s1_top_veto_sigma: float = Field(
        2.5, description="not an S1 if the top area exceeds that fraction by this many sigma")
    s1_relaxed_max_area_pe: float = Field(
        30.0, ge=0, description="below this, a narrow core with S1-like top fraction is an S1")
    s1_relaxed_max_width_50p_ns: float = Field(140.0, gt=0)
    s1_relaxed_max_rise_time_ns: float = Field(250.0, gt=0)
    s1_relaxed_top_sigma: float = Field(1.0, description="top area at most this many sigma above s1_max_top_fraction")
    s1_rank_by_shape: bool = Field(
        True, description="pair S1s without bottom light, then slow ones, after the others (False: pax's "
        "ranking by tight coincidence and area alone)")
    s1_rank_max_top_fraction: float = Field(
        0.95, gt=0, le=1, description="an S1 with at least this area fraction top has no bottom light")
    s1_rank_slow_rise_time_ns: float = Field(
        150.0, gt=0, description="an S1 rising (t50 - t10) at least this slowly is slow")
    s1_large_area_pe: float = Field(
        12.0, ge=0, description="S1s this large must rise faster than s1_large_max_rise_time_ns")
    s1_large_max_rise_time_ns: float = Field(80.0, gt=0)
    # Before the first large S2 of an event single electrons are rare (they follow an S2), so small
    # S1s broadened, made top-heavy or spread by a few photons are kept (docs/physics.md, "Classification").
    s1_before_s2_max_width_50p_ns: float = Field(
        400.0, ge=0, description="before the first S2, a small coincident peak with a 50 % width below this "
        "and a rise below s1_before_s2_max_rise_time_ns is an S1 (0: off)")
    s1_before_s2_max_rise_time_ns: float = Field(600.0, ge=0)
    s1_before_s2_top_sigma: float = Field(
        1.5, description="before the first S2, a 12-30 PE peak with a narrow core (50 % width below "
        "s1_relaxed_max_width_50p_ns) is S1-sized if its top area is less than this many sigma above "
        "s1_max_top_fraction")
    s1_before_s2_max_width_90p_ns: float = Field(
        250.0, ge=0, description="before the first S2, 2 channels within this 90 % width are coincident")
    tight_coincidence_window_ns: float = Field(50.0, ge=0)
    s2_min_channels: int = Field(4, ge=1)
    s2_pairing_threshold_pe: float = Field(70.0, ge=0)
    pair_n_s1s: int = Field(3, ge=1)
    pair_n_s2s: int = Field(5, ge=1)
    run_number: int = Field(
        10000, ge=0, description="MC run number written to the minitrees (hax used 10000 for SR1 MC)")

    # Calibration: what reconstruction assumes about the detector. Unset means the simulated
    # detector's value (``physics.<same key>``; ``gain_period``: ``physics.period``), so
    # reconstruction follows the simulation; set one to mis-calibrate on purpose.
    gain_period: Optional[Period] = Field(None, description="gain table for ADC→PE (default: physics.period)")
    electron_lifetime_us: Optional[float] = Field(None, gt=0, description="default: physics.electron_lifetime_us")
    drift_velocity_um_per_ns: Optional[float] = Field(
        None, gt=0, description="default: physics.drift_velocity_um_per_ns")
    drift_time_gate_us: Optional[float] = Field(None, ge=0, description="default: physics.drift_time_gate_us")
    adc_per_electron_per_ns: Optional[float] = Field(
        None, gt=0, description="ADC conversion of the gains (default: physics.adc_per_electron_per_ns)")
    s2_pattern_height_cm: Optional[float] = Field(
        None, gt=0, description="S2 top-pattern model of the position fit (default: physics.s2_pattern_height_cm)")
    field_distortion: Optional[bool] = Field(
        None, description="invert the field distortion (default: physics.field_distortion)")

    @classmethod
    def for_physics(cls, physics: PhysicsParameters, **overrides) -> "ProcessingParameters":
        """The processing of a simulated detector: every unset calibration key takes its value."""
        following = {key: getattr(physics, key) for key in CALIBRATION_KEYS if overrides.get(key) is None}
        if overrides.get("gain_period") is None:
            following["gain_period"] = physics.period
        return cls(**{**PERIOD_PROCESSING[physics.period], **overrides, **following})

    @classmethod
    def for_period(cls, period: Period = "SR1", **overrides) -> "ProcessingParameters":
        return cls.for_physics(PhysicsParameters.for_period(period), **overrides)


#: Calibration keys that ProcessingParameters and PhysicsParameters share, besides gain_period.
CALIBRATION_KEYS = ("electron_lifetime_us", "drift_velocity_um_per_ns", "drift_time_gate_us",
                    "adc_per_electron_per_ns", "s2_pattern_height_cm", "field_distortion")

PERIOD_PHYSICS: dict[str, dict] = {
    "SR1": {},
    "SR0": {"drift_velocity_um_per_ns": 1.44, "diffusion_constant_cm2_per_s": 22.8,
            "electron_lifetime_us": 450.0, "s2_mean_area_fraction_top": 0.680},
}
PERIOD_PROCESSING: dict[str, dict] = {
    "SR1": {},
    "SR0": {"run_number": 5000},
}
