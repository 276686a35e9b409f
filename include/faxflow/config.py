"""Campaign files: YAML → validated pydantic models → one resolved settings dict per variant.

A campaign file holds default production settings, a list of named ``variants`` (each a set of
overrides) and/or a ``matrix`` (cartesian product over listed keys). Every problem found is
reported as one line naming the file, the key path and the allowed values; nothing is
accepted silently.
"""

import copy
import itertools
import math
import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from faxflow import limits
from faxflow.engines.builtin.parameters import PhysicsParameters, ProcessingParameters
from faxflow.engines.pax_physics import (
    DEFAULT_TREEMAKERS,
    HAX_TREEMAKERS,
    PAX_PHYSICS_KEYS,
    PAX_PROCESSING_KEYS,
    PERIOD_CONFIGS,
    unsupported_physics,
)
from faxflow.errors import ConfigError
from faxflow.geometry import DEFAULT_FIDUCIAL_VOLUME, TPC_SIZE_CM
from faxflow.names import DEFAULT_REMOTE_ROOT, SAFE_NAME, SAFE_NAME_HELP, check_remote_path, check_safe_name

#: Keys that belong to the campaign as a whole and cannot differ between variants.
CAMPAIGN_ONLY_KEYS = ("name", "description", "variants", "matrix", "seed_policy", "seed", "schedule", "catchup",
                      "output_root", "limits")

SafeName = Annotated[str, Field(description=SAFE_NAME_HELP)]


#: No coercion (``"3"``, ``5.0``, ``0``, ``"yes"`` are refused where an int or bool is wanted), no inf/NaN.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(item) for item in value) if isinstance(value, (list, tuple)) else value


def _is_tuple_annotation(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is tuple or any(
        _is_tuple_annotation(arg) for arg in getattr(annotation, "__args__", ()))


class _YamlLists(BaseModel):
    """Strict, except that a YAML list is accepted where the model wants a tuple (YAML has no tuples)."""

    model_config = STRICT

    @model_validator(mode="before")
    @classmethod
    def lists_as_tuples(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {key: _as_tuples(value) if key in cls.model_fields and isinstance(value, list)
                and _is_tuple_annotation(cls.model_fields[key].annotation) else value
                for key, value in data.items()}


class StrictModel(_YamlLists):
    model_config = ConfigDict(**STRICT, validate_default=True)


class CountRange(StrictModel):
    """An integer-uniform range [low, high), like the 2017 ``randint`` draws."""

    low: int = Field(ge=0, description="smallest value drawn")
    high: int = Field(ge=1, description="one past the largest value drawn")

    @model_validator(mode="before")
    @classmethod
    def from_pair(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ValueError("expected [low, high]")
            return {"low": value[0], "high": value[1]}
        return value

    @model_validator(mode="after")
    def ordered(self) -> "CountRange":
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        return self


class UniformSource(StrictModel):
    """Fake events at uniformly random positions in the fiducial volume (the 2017 CreateFake)."""

    source: Literal["uniform"] = Field("uniform", description="uniform positions in the fiducial volume")


class TableSource(StrictModel):
    """Instructions from a real-data table with columns event_number, x, y, z, cs1, cs2."""

    source: Literal["table"] = Field(description="instructions from a table of real events")
    path: str = Field(description="CSV, Parquet or hax minitree ROOT file; relative paths are relative to the "
                                  "campaign file")
    format: Literal["auto", "csv", "parquet", "root", "pickle"] = "auto"
    volume: Literal["tpc", "fiducial"] = Field("tpc", description="rows must lie inside the TPC or the fiducial volume")
    outside_rows: Literal["error", "drop"] = Field(
        "error", description="rows outside the volume: error names the first ones; drop removes and counts them")
    tree: str = Field("Basics", description="TTree name for ROOT input")
    allow_pickle: bool = Field(False, description="pickle input runs arbitrary code; it must be allowed explicitly")
    g1_pe_per_photon: float = Field(0.12, gt=0, description="s1_photons = round(cs1 / g1)")
    g2_pe_per_electron: float = Field(23.0, gt=0, description="s2_electrons = round(cs2 / g2)")


class NestSource(StrictModel):
    """Photons and electrons from NEST yields for a flat or line energy spectrum."""

    source: Literal["nest"] = Field(description="quanta from NEST for an energy spectrum")
    spectrum: Literal["flat", "line"] = Field("flat", description="flat: uniform in energy_range_kev; line: energy_kev")
    energy_range_kev: Optional[tuple[float, float]] = Field(None, description="[low, high] keV for a flat spectrum")
    energy_kev: Optional[float] = Field(None, gt=0, description="line energy in keV")
    drift_field_v_per_cm: float = Field(120.0, gt=0)
    density_g_per_cm3: float = Field(2.862, gt=0)

    @model_validator(mode="after")
    def spectrum_needs_energy(self) -> "NestSource":
        if self.spectrum == "flat":
            if self.energy_range_kev is None:
                raise ValueError("spectrum 'flat' needs energy_range_kev: [low, high]")
            low, high = self.energy_range_kev
            if not 0 < low < high:
                raise ValueError(f"energy_range_kev must satisfy 0 < low < high, got [{low}, {high}]")
        elif self.energy_kev is None:
            raise ValueError("spectrum 'line' needs energy_kev")
        return self


InstructionSource = Annotated[Union[UniformSource, TableSource, NestSource], Field(discriminator="source")]


class FiducialVolume(StrictModel):
    r_max_cm: float = Field(gt=0, description="largest radius")
    depth_min_cm: float = Field(ge=0, description="cm below the gate")
    depth_max_cm: float = Field(gt=0, description="cm below the gate; at most the TPC length")

    @model_validator(mode="after")
    def ordered(self) -> "FiducialVolume":
        if self.depth_min_cm >= self.depth_max_cm:
            raise ValueError(f"depth_min_cm ({self.depth_min_cm}) must be < depth_max_cm ({self.depth_max_cm})")
        return self


class PaxOptions(StrictModel):
    """How the ``pax`` engine runs the real paxer/hax from a conda env (never installed by faxflow)."""

    conda_env: str = Field("pax_v6.8.0", description="conda env name or absolute path")
    conda_activate: str = Field("source activate", description="command that activates conda_env")
    config_names: list[SafeName] = Field(default_factory=lambda: ["XENON1T", "SR1_parameters"],
                                         description="pax configs (pax/config/<name>.ini) for simulation and "
                                                     "processing, in load order; SR0_parameters or SR1_parameters "
                                                     "sets the period")
    config_string: str = Field("", description="extra paxer --config_string")
    timeout_seconds: int = Field(1800, gt=0, description="per paxer or hax call; a call still running is killed "
                                                         "and the step fails")
    treemakers: list[Literal[HAX_TREEMAKERS]] = Field(
        default_factory=lambda: list(DEFAULT_TREEMAKERS), min_length=1,
        description="hax treemakers joined into the minitree table (default: the builtin engine's set that hax "
                    "builds on MC)")
    event_tolerance: float = Field(0.0, ge=0, le=1,
                                   description="fraction of processed events allowed missing from the minitrees")

    @field_validator("config_names")
    @classmethod
    def safe_config_names(cls, names: list[str]) -> list[str]:
        return [check_safe_name(name) for name in names]

    @field_validator("conda_env")
    @classmethod
    def safe_env(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_./-]+$", value) or ".." in value.split("/"):
            raise ValueError(f"{value!r} must be an env name or absolute path from [A-Za-z0-9_./-] without '..'")
        return value

    @field_validator("config_string", "conda_activate")
    @classmethod
    def single_line(cls, value: str) -> str:
        if "\n" in value or "\0" in value:
            raise ValueError("must be a single line")
        return value


def pax_problems(settings: "ProductionSettings") -> list[str]:
    """What ``engine: pax`` cannot do: physics keys pax has no setting for, processing overrides
    (pax processes with the simulation's configuration), a period outside ``pax.config_names``."""
    physics = settings.physics.model_dump(exclude_none=True)
    problems = [f"physics.{key}: pax has no setting for it (allowed with engine pax: "
                f"{', '.join(sorted(PAX_PHYSICS_KEYS))})" for key in unsupported_physics(physics)]
    if "period" in physics:
        problems.append("physics.period: with engine pax the period comes from pax.config_names "
                        f"(allowed: add one of {', '.join(PERIOD_CONFIGS)} there)")
    problems += [f"processing.{key}: pax reconstructs with the simulation's configuration "
                 f"(allowed with engine pax: {', '.join(PAX_PROCESSING_KEYS)})"
                 for key in settings.processing.model_dump(exclude_none=True) if key not in PAX_PROCESSING_KEYS]
    return problems


class ClusterSettings(StrictModel):
    """Where and how groups of productions run."""

    backend: str = Field("local", description="local: subprocesses on this machine; slurm: sbatch over SSH; or "
                         "a backend an installed package adds (entry points 'faxflow.backends')")
    ssh_conn_id: SafeName = Field("faxflow_cluster", description="Airflow connection id of the cluster login node")
    partition: Optional[SafeName] = Field(None, description="sbatch --partition")
    qos: Optional[SafeName] = Field(None, description="sbatch --qos")
    account: Optional[SafeName] = Field(None, description="sbatch --account")
    mem_per_cpu_mb: int = Field(3000, gt=0, description="sbatch --mem-per-cpu (MB)")
    time_limit_minutes: int = Field(60, gt=0, description="sbatch --time of one group")
    productions_per_job: int = Field(1, gt=0, description="productions run one after another in one Slurm job")
    max_concurrent_jobs: int = Field(50, gt=0, description="size of the Airflow pool capping jobs in flight")
    pool: SafeName = Field("faxflow_slurm", description="Airflow pool holding jobs in flight (include_deferred)")
    remote_root: str = Field(DEFAULT_REMOTE_ROOT, description="directory on the cluster for manifests, outputs, logs: "
                             "absolute, or under $HOME or $SCRATCH (resolved on the cluster)")
    python_env: Optional[str] = Field(None, description="venv or conda env directory on the cluster holding faxflow")
    env_setup: list[str] = Field(default_factory=list,
                                 description="shell lines run before faxflow, e.g. 'module load python/3.11'")
    install_faxflow: bool = Field(False, description="let prepare install this exact faxflow version under remote_root")
    poll_interval_seconds: float = Field(30.0, gt=0, description="Slurm status poll interval (jittered)")
    retries: int = Field(2, ge=0, description="Airflow retries of a group")
    retry_delay_seconds: float = Field(60.0, ge=0, description="first retry delay; doubles each retry")
    max_time_limit_minutes: int = Field(720, gt=0, description="cap when TIMEOUT retries raise the time limit")
    max_mem_per_cpu_mb: int = Field(16000, gt=0, description="cap when OUT_OF_MEMORY retries raise memory")

    @field_validator("backend")
    @classmethod
    def known_backend(cls, value: str) -> str:
        from faxflow.backends import check_name

        return check_name(value)

    @field_validator("partition", "qos", "account", "ssh_conn_id", "pool")
    @classmethod
    def safe(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_safe_name(value)

    @field_validator("remote_root", "python_env")
    @classmethod
    def remote_path(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_remote_path(value)

    @field_validator("env_setup")
    @classmethod
    def single_lines(cls, lines: list[str]) -> list[str]:
        for line in lines:
            if "\n" in line or "\r" in line or "\0" in line:
                raise ValueError(f"setup line {line!r} must be a single line")
        return lines


#: Every cluster setting's default, for code that receives a partial cluster mapping.
CLUSTER_DEFAULTS = ClusterSettings().model_dump()


def _optional_copy(model: type[BaseModel], name: str) -> type[BaseModel]:
    """The same fields as ``model``, all optional: a set of overrides."""
    fields = {}
    for field_name, info in model.model_fields.items():
        override = copy.copy(info)
        override.default = None
        fields[field_name] = (Optional[info.annotation], override)
    return create_model(name, __base__=_YamlLists, __doc__=model.__doc__, **fields)


PhysicsOverrides = _optional_copy(PhysicsParameters, "PhysicsOverrides")
ProcessingOverrides = _optional_copy(ProcessingParameters, "ProcessingOverrides")


class ProductionSettings(StrictModel):
    """Everything a variant may set. The campaign file's top level holds the defaults."""

    detector: Literal["XENON1T", "XENON100"] = Field("XENON1T",
                                                     description="detector geometry and default fiducial volume")
    engine: Literal["builtin", "pax"] = Field(
        "builtin", description="builtin: faxflow's own engine; pax: paxer/hax in a conda env on the cluster")
    number_job: int = Field(20, gt=0, description="productions per variant")
    number_event_per_job: int = Field(100, gt=0, description="events per production")
    production_id_format: str = Field("{name}_{index:06}", description="fields: name (variant), index")
    pmt_afterpulse: bool = Field(True, description="simulate per-PMT afterpulses (false = 2017 NoPMTAfterpulses.ini)")
    s2_afterpulse: bool = Field(True, description="simulate photo-ionisation (false = 2017 NoS2Afterpulses.ini)")
    raw: Literal["drop", "keep"] = Field("drop", description="keep: write each production's raw data; drop: pass "
                                         "it from simulation to processing in memory (faxflow raw regenerates it; "
                                         "the pax engine always keeps it)")
    photon_number: CountRange = Field(default_factory=lambda: CountRange(low=50, high=100),
                                      description="S1 photons produced per interaction, integer-uniform [low, high)")
    electron_number: CountRange = Field(default_factory=lambda: CountRange(low=10, high=100),
                                        description="electrons produced per interaction, integer-uniform [low, high)")
    correlated: Union[bool, Literal["S1", "S2"]] = Field(True, description="true, false, S1 (S1 only) or S2 (S2 only)")
    recoil_type: Literal["ER", "NR", "alpha", "LED"] = Field("ER",
                                                            description="sets S1 timing (alpha, LED) and NEST yields")
    interaction_time_ns: float = Field(1000.0, ge=0, description="instruction t of every interaction")
    instructions: InstructionSource = Field(default_factory=UniformSource,
                                           description="where interactions come from: uniform, table or nest")
    fiducial_volume: Optional[FiducialVolume] = Field(None, description="default: the detector's 2017 fiducial volume")
    physics: PhysicsOverrides = Field(default_factory=PhysicsOverrides,
                                      description="builtin engine simulation overrides")
    processing: ProcessingOverrides = Field(default_factory=ProcessingOverrides,
                                            description="builtin engine reconstruction overrides")
    pax: PaxOptions = Field(default_factory=PaxOptions, description="options of the pax engine")
    cluster: ClusterSettings = Field(default_factory=ClusterSettings, description="backend and Slurm settings")

    @field_validator("correlated", mode="before")
    @classmethod
    def strict_correlated(cls, value: Any) -> Any:
        if not (isinstance(value, bool) or value in ("S1", "S2")):
            raise ValueError(f"{value!r} is not one of true, false, 'S1', 'S2'")
        return value

    @field_validator("photon_number", "electron_number")
    @classmethod
    def bounded_quanta(cls, value: CountRange, info) -> CountRange:
        ceiling = {"photon_number": limits.MAX_PHOTONS_PER_INTERACTION,
                   "electron_number": limits.MAX_ELECTRONS_PER_INTERACTION}[info.field_name]
        if value.high > ceiling + 1:
            raise ValueError(f"at most {ceiling} quanta per interaction (allowed: high ≤ {ceiling + 1}, "
                             f"got high {value.high})")
        return value

    @field_validator("production_id_format")
    @classmethod
    def safe_id_format(cls, value: str) -> str:
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(value) if field is not None]
        except ValueError as error:
            raise ValueError(f"bad format string {value!r}: {error}") from None
        unknown = [field for field in fields if field not in ("name", "index")]
        if unknown or "index" not in fields:
            raise ValueError(f"{value!r} must use {{index}} and only the fields name, index")
        check_safe_name(value.format(name="variant", index=0))
        return value

    @model_validator(mode="after")
    def detector_geometry(self) -> "ProductionSettings":
        if self.fiducial_volume is None:
            self.fiducial_volume = FiducialVolume(**DEFAULT_FIDUCIAL_VOLUME[self.detector])
        return self


def _size_limit_fields() -> dict:
    return {name: (Optional[int], Field(None, gt=0, le=limit.hard,
                                        description=f"{limit.description} (default {limit.default:,}, "
                                                    f"at most {limit.hard:,})"))
            for name, limit in limits.SIZE_LIMITS.items()}


CampaignLimits = create_model("CampaignLimits", __config__=STRICT,
                              __doc__="Ceilings on the campaign's size; unset ones take faxflow's defaults.",
                              **_size_limit_fields())


class CampaignFile(ProductionSettings):
    """The top level of a campaign YAML: defaults plus campaign-wide keys."""

    name: SafeName = Field(description="campaign name (DAG fax_<name>); " + SAFE_NAME_HELP)
    description: str = Field("", description="free text shown in the DAG documentation")
    seed_policy: Literal["fixed", "per_run"] = Field(
        "fixed", description="fixed: same config → same output; per_run: seeds salted with the Airflow run id")
    seed: int = Field(0, ge=0, description="campaign base seed")
    schedule: Optional[str] = Field(None, description="cron expression or preset (e.g. '0 2 * * *', '@daily')")
    catchup: bool = Field(False, description="with a schedule: true starts the latest past cron time at once on "
                                             "unpause (or after a pause); false waits for the next cron time")
    output_root: str = Field("runs", description="local output directory (relative to the working directory)")
    variants: list[dict[str, Any]] = Field(default_factory=list, description="named overrides: {name: ..., key: value}")
    matrix: dict[str, list[Any]] = Field(default_factory=dict,
                                         description="dotted key → list of values; every combination becomes a variant")
    limits: CampaignLimits = Field(default_factory=CampaignLimits, description="ceilings on the campaign's size")

    @field_validator("name")
    @classmethod
    def safe_campaign_name(cls, value: str) -> str:
        return check_safe_name(value)

    @field_validator("schedule")
    @classmethod
    def valid_cron(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        from croniter import croniter

        presets = {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}
        if value not in presets and not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '0 2 * * *') or one of {sorted(presets)}")
        return value

    @field_validator("catchup")
    @classmethod
    def catchup_needs_a_schedule(cls, value: bool, info) -> bool:
        if value and info.data.get("schedule") in (None, "@once"):
            raise ValueError("needs a repeating schedule (a cron expression or preset other than "
                             "'@once'); set schedule or remove catchup")
        return value


class ResolvedVariant(BaseModel):
    """One variant with every setting filled in; ``settings`` is what gets hashed and run."""

    name: str
    settings: dict[str, Any]


class Campaign(BaseModel):
    """A validated campaign: campaign-wide keys plus its resolved variants."""

    path: str
    name: str
    description: str
    seed_policy: str
    seed: int
    schedule: Optional[str]
    catchup: bool = False
    output_root: str
    cluster: ClusterSettings
    variants: list[ResolvedVariant]
    limits: dict[str, int] = Field(default_factory=dict, description="the size ceilings in force")

    def resolved_variants(self) -> list[ResolvedVariant]:
        return self.variants

    def check_size(self, number_job: Optional[int] = None, events: Optional[int] = None,
                   variants: Optional[list[str]] = None) -> None:
        """Refuse overrides (CLI, trigger params) that exceed the campaign's ceilings, before any expansion."""
        chosen = [v for v in self.variants if variants is None or v.name in variants]
        ceilings = {name: limits.size_limit(name, self.limits) for name in limits.SIZE_LIMITS}
        problems = _size_problems([_sized(v.settings, number_job, events) for v in chosen], ceilings)
        if problems:
            raise ConfigError([f"{self.path}: {line}" for line in problems])

    def variant(self, name: str) -> ResolvedVariant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)


def input_problems(campaign: Campaign) -> list[str]:
    """Problems with the files a campaign reads (data tables), found by reading them now, one line each."""
    from faxflow.instructions import table_problems

    base_dir = Path(campaign.path).parent
    problems = []
    for variant in campaign.variants:
        where = "" if variant.name == "default" else f"variant {variant.name}: "
        problems.extend(f"{campaign.path}: {where}{line}" for line in table_problems(variant.settings, base_dir))
    return list(dict.fromkeys(problems))


def campaign_json_schema() -> dict:
    """The JSON schema of a campaign file (documentation and Airflow trigger forms)."""
    return CampaignFile.model_json_schema()


class _CampaignLoader(yaml.SafeLoader):
    """Safe YAML without anchors or aliases (no alias bombs), duplicate keys or deep nesting."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in campaign files",
                                              self.peek_event().start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, f"anchors (&{event.anchor}) are not allowed in campaign "
                                              "files; repeat the values or use defaults and variants", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > limits.MAX_CONFIG_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {limits.MAX_CONFIG_DEPTH} levels",
                                                  event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise yaml.constructor.ConstructorError(None, None, "mapping keys must be plain scalars",
                                                        key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def parse_campaign_yaml(text: str, source: str) -> Any:
    """Parse a campaign file's text with the hardened loader; raises :class:`ConfigError` with the line."""
    try:
        return yaml.load(text, Loader=_CampaignLoader)  # noqa: S506 - _CampaignLoader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{source}: YAML error{where}: {getattr(error, 'problem', None) or error}"]) from None


def read_campaign_file(path: Union[str, Path]) -> Any:
    """The parsed content of a campaign file, refusing files above :data:`faxflow.limits.MAX_CONFIG_BYTES`."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    if len(data) > limits.MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than {limits.MAX_CONFIG_BYTES} bytes; campaign files are short "
                           "(put event lists in a table file and use instructions.source: table)"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError([f"{path}: not UTF-8 text (byte {error.start})"]) from None
    return parse_campaign_yaml(text, str(path))


def load_campaign(path: Union[str, Path]) -> Campaign:
    """Read, validate and resolve a campaign file; raises :class:`ConfigError` listing every problem."""
    return campaign_from_dict(read_campaign_file(path), source=str(path))


def campaign_from_dict(raw: Any, source: str = "<campaign>") -> Campaign:
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the file must hold a mapping of keys (name, variants, ...), "
                           f"got {type(raw).__name__}"])
    problems: list[str] = []
    top = None
    try:
        top = CampaignFile.model_validate(raw)
        problems.extend(_semantic_problems(top))
    except ValidationError as error:
        problems.extend(_describe(error, CampaignFile))
    reported_keys = {line.split(":", 1)[0] for line in problems}

    defaults = {key: value for key, value in raw.items() if key not in CAMPAIGN_ONLY_KEYS}
    variants = []
    for name, overrides, where in _expand_variants(raw, problems):
        try:
            settings = ProductionSettings.model_validate(_merge(defaults, overrides))
            variant_problems = _semantic_problems(settings)
        except ValidationError as error:
            variant_problems = _describe(error, ProductionSettings)
        problems.extend(where + line for line in variant_problems if line.split(":", 1)[0] not in reported_keys)
        if not variant_problems:
            variants.append(ResolvedVariant(name=name, settings=_resolve(settings)))
    ceilings = {name: limits.size_limit(name, top.limits.model_dump() if top else None) for name in limits.SIZE_LIMITS}
    if not problems:
        problems.extend(_size_problems([v.settings for v in variants], ceilings))
    if problems or top is None:
        raise ConfigError([f"{source}: {line}" for line in dict.fromkeys(problems)])
    return Campaign(path=source, name=top.name, description=top.description, seed_policy=top.seed_policy,
                    seed=top.seed, schedule=top.schedule, catchup=top.catchup, output_root=top.output_root,
                    cluster=top.cluster, variants=variants, limits=ceilings)


def _sized(settings: dict, number_job: Optional[int], events: Optional[int]) -> dict:
    return {"number_job": settings["number_job"] if number_job is None else number_job,
            "number_event_per_job": settings["number_event_per_job"] if events is None else events}


def _size_problems(sizes: list[dict], ceilings: dict[str, int]) -> list[str]:
    """Productions, events per production and total events against the ceilings (nothing is expanded)."""
    problems: list[str] = []
    if not sizes:
        return problems
    for key, ceiling in (("number_job", ceilings["max_productions_per_variant"]),
                         ("number_event_per_job", ceilings["max_events_per_production"])):
        worst = max((size[key] for size in sizes), default=0)
        if not isinstance(worst, int) or isinstance(worst, bool) or worst < 1:
            problems.append(f"{key}: must be a whole number ≥ 1 (got {worst!r})")
        elif worst > ceiling:
            limit = "max_productions_per_variant" if key == "number_job" else "max_events_per_production"
            problems.append(f"{key}: {worst} is above the ceiling {ceiling} (allowed: 1..{ceiling}; "
                            f"raise limits.{limit} up to {limits.SIZE_LIMITS[limit].hard} if you mean it)")
    if not problems:
        totals = {"max_productions_per_campaign": ("productions", sum(size["number_job"] for size in sizes)),
                  "max_events_per_campaign": ("events", sum(size["number_job"] * size["number_event_per_job"]
                                                            for size in sizes))}
        for limit, (what, total) in totals.items():
            if total > ceilings[limit]:
                problems.append(f"limits.{limit}: the campaign asks for {total} {what} in all, above the ceiling "
                                f"{ceilings[limit]} (fewer variants, productions or events, or raise "
                                f"limits.{limit} up to {limits.SIZE_LIMITS[limit].hard})")
    return problems


def _expand_variants(raw: dict, problems: list[str]):
    """Yield (name, overrides, key path) for every variant of the list × matrix product."""
    listed: list[tuple[str, dict, str]] = []
    entries = raw.get("variants") or []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        where = f"variants[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping with a name and overrides")
            continue
        entry = dict(entry)
        name = entry.pop("name", None)
        if name is None:
            problems.append(f"{where}.name: missing (every listed variant needs a name; {SAFE_NAME_HELP})")
            continue
        bad_keys = sorted(set(entry) & set(CAMPAIGN_ONLY_KEYS))
        if bad_keys:
            problems.append(f"{where}: {', '.join(bad_keys)} can only be set for the whole campaign")
            continue
        if not isinstance(name, str) or not SAFE_NAME.match(name):
            problems.append(f"{where}.name: {name!r} is not a safe name ({SAFE_NAME_HELP})")
            continue
        listed.append((name, entry, f"{where}."))
    if not entries:
        listed.append(("default", {}, ""))

    matrix = raw.get("matrix") or {}
    axes = []
    seen: set[str] = set()
    for key, values in (matrix.items() if isinstance(matrix, dict) else []):
        first = str(key).split(".")[0]
        if first not in ProductionSettings.model_fields:
            allowed = ", ".join(ProductionSettings.model_fields)
            problems.append(f"matrix.{key}: unknown key {first!r} (allowed: {allowed})")
            return
        if not isinstance(values, list) or not values:
            problems.append(f"matrix.{key}: needs a list of at least one value")
            return
        axes.append([(key, value) for value in values])
    count = len(listed) * math.prod(len(axis) for axis in axes)
    if count > limits.MAX_VARIANTS:
        problems.append(f"matrix: the variants × matrix product has {count} variants (allowed: at most "
                        f"{limits.MAX_VARIANTS}); split the sweep into several campaigns")
        return
    for base_name, base, where in listed:
        for point in itertools.product(*axes) if axes else [()]:
            overrides = copy.deepcopy(base)
            for key, value in point:
                _set_dotted(overrides, key, value)
            label = "_".join(f"{key.split('.')[-1]}-{_label(value)}" for key, value in point)
            name = (label if not entries else f"{base_name}_{label}") if point else base_name
            if not SAFE_NAME.match(name):
                problems.append(f"matrix: generated variant name {name!r} is not safe ({SAFE_NAME_HELP}); "
                                "use shorter keys or plainer values")
                continue
            if name in seen:
                problems.append(f"variants: duplicate variant name {name!r} (names must be unique)")
                continue
            seen.add(name)
            yield name, overrides, f"{where}matrix[{name}]." if point else where


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "-".join(_label(item) for item in value)
    if isinstance(value, dict):
        return "-".join(f"{key}{_label(item)}" for key, item in value.items())
    return re.sub(r"[^A-Za-z0-9_.-]", "", str(value))


def _set_dotted(target: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[leaf] = value


def _merge(defaults: dict, overrides: dict) -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        replaces_source = key == "instructions" and isinstance(value, dict) and "source" in value
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not replaces_source:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _semantic_problems(settings: ProductionSettings) -> list[str]:
    try:
        physics = _resolved_physics(settings)
    except ValidationError as error:
        return _describe(error, PhysicsParameters, prefix="physics.")
    problems = []
    tpc = dict(TPC_SIZE_CM[settings.detector])
    if settings.detector == "XENON1T":
        tpc = {"length": physics.tpc_length_cm, "radius": physics.tpc_radius_cm}
    fv = settings.fiducial_volume
    if fv.depth_max_cm > tpc["length"]:
        problems.append(f"fiducial_volume.depth_max_cm: {fv.depth_max_cm} cm is beyond the {settings.detector} TPC "
                        f"(allowed: ≤ {tpc['length']} cm below the gate)")
    if fv.r_max_cm > tpc["radius"]:
        problems.append(f"fiducial_volume.r_max_cm: {fv.r_max_cm} cm is outside the {settings.detector} TPC "
                        f"(allowed: ≤ {tpc['radius']} cm)")
    if settings.engine == "builtin" and settings.detector != "XENON1T":
        problems.append(f"detector: the builtin engine simulates XENON1T only (allowed with engine builtin: XENON1T; "
                        f"use engine: pax for {settings.detector})")
    if settings.engine == "pax":
        problems.extend(pax_problems(settings))
    if isinstance(settings.instructions, NestSource):
        problems.extend(_nest_problems(settings.instructions, settings.recoil_type))
    return problems


def _nest_problems(source: NestSource, recoil_type: str) -> list[str]:
    allowed = limits.NEST_ENERGY_RANGE_KEV
    if recoil_type not in allowed:
        return [f"recoil_type: NEST has no yields for {recoil_type!r} (allowed with instructions.source nest: "
                f"{', '.join(allowed)})"]
    low, high = allowed[recoil_type]
    energies = ([("instructions.energy_kev", source.energy_kev)] if source.spectrum == "line" else
                [("instructions.energy_range_kev", value) for value in source.energy_range_kev])
    return [f"{key}: {value} keV is outside NEST's {recoil_type} range (allowed: {low}..{high} keV)"
            for key, value in energies if not low <= value <= high][:1]


def _resolved_physics(settings: ProductionSettings) -> PhysicsParameters:
    overrides = settings.physics.model_dump(exclude_none=True)
    return PhysicsParameters.for_period(overrides.pop("period", "SR1"), **overrides)


def _resolve(settings: ProductionSettings) -> dict:
    """The full settings dict of a variant, with every physics/processing number filled in."""
    resolved = settings.model_dump(mode="json")
    physics = _resolved_physics(settings)
    processing_overrides = settings.processing.model_dump(exclude_none=True)
    resolved["physics"] = physics.model_dump(mode="json")
    # calibration keys not set under processing: follow the simulated detector (docs/physics.md, "Calibration")
    processing = ProcessingParameters.for_physics(physics, **processing_overrides)
    resolved["processing"] = processing.model_dump(mode="json")
    return resolved


def _describe(error: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """Turn pydantic errors into 'key.path: message (allowed: …)' lines."""
    lines = []
    for item in error.errors():
        loc = [part for part in item["loc"] if part not in ("uniform", "table", "nest")]
        key = prefix + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
        kind = item["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            message = f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "union_tag_invalid":
            message = f"unknown source {item['input'].get('source')!r} (allowed: uniform, table, nest)"
        elif kind == "union_tag_not_found":
            message = "needs 'source' (allowed: uniform, table, nest)"
        elif kind in _TYPE_MESSAGES:
            message = f"{_TYPE_MESSAGES[kind]} (got {item['input']!r}, {_yaml_type(item['input'])})"
        else:
            message = item["msg"].removeprefix("Value error, ")
            if "input" in item and not isinstance(item["input"], dict) and "got " not in message:
                message += f" (got {item['input']!r})"
        lines.append(f"{key.rstrip('.') or '<top level>'}: {message}")
    return lines


_TYPE_MESSAGES = {
    "int_type": "must be a whole number, e.g. 3",
    "bool_type": "must be true or false",
    "float_type": "must be a number, e.g. 2.5",
    "string_type": "must be text",
    "finite_number": "must be a finite number (no .inf or .nan)",
    "list_type": "must be a list, e.g. [a, b]",
    "tuple_type": "must be a list, e.g. [1, 2]",
    "dict_type": "must be a mapping of keys",
    "model_type": "must be a mapping of keys",
}


def _yaml_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _allowed_keys(model: type[BaseModel], loc: list) -> list[str]:
    """The field names of the (nested) model at ``loc``, for 'unknown key' messages."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        current = _model_of(field.annotation)
    return list(current.model_fields) if current is not None and hasattr(current, "model_fields") else []


def _model_of(annotation: Any) -> Optional[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
