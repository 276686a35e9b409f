"""The ``pax`` engine: the real ``paxer`` (fax + processing) and ``hax`` in a conda env.

pax and hax need a Python-3.6-era stack and are never installed by faxflow: every call runs in
the campaign's conda env through :mod:`faxflow.engines.pax_runner` (shipped with faxflow, run by
the env's own python), which seeds fax's random state from the production seed. Every argument
is its own argv element; the env activation line is the only shell text, built from validated
settings. The ini files paxer loads are generated from the variant's settings
(:mod:`faxflow.engines.pax_physics`) next to the production's simulation outputs, under a
directory named by their content. Every step's outputs are checked before it counts as done.
"""

import json
import logging
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from faxflow.engines import StepCounts
from faxflow.engines.pax_physics import config_digest, config_files
from faxflow.errors import BadInputError, EngineError, ValidationFailure

RUNNER = Path(__file__).with_name("pax_runner.py")
#: Processing draws no random numbers; the runner still gets a seed, always this one.
PROCESSING_SEED = 0
#: The tree of a processed pax ROOT file (one entry per event).
PROCESSED_TREE = "tree"
#: Characters paxer's --config_string parser rewrites (']' and ';' become newlines) or that end the quoted name.
CONFIG_STRING_UNSAFE = set("];'\"\n\r\\")
#: Commands and their full output are logged here; the pipeline sends it to the production's log.
ENGINE_LOG = "faxflow.engine"
#: How much of a failed command's output goes into the error message (all of it goes to the production log).
ERROR_TAIL_LINES = 20


@dataclass(frozen=True)
class PaxEngine:
    conda_env: str
    conda_activate: str
    config_names: tuple[str, ...]
    config_string: str
    treemakers: tuple[str, ...]
    timeout_seconds: int
    event_tolerance: float
    simulation_files: tuple[tuple[str, str], ...]
    processing_files: tuple[tuple[str, str], ...]
    name: str = "pax"
    can_drop_raw: bool = False

    @classmethod
    def from_settings(cls, settings: dict) -> "PaxEngine":
        pax = settings["pax"]
        simulation, processing = config_files(settings)
        return cls(conda_env=pax["conda_env"], conda_activate=pax["conda_activate"],
                   config_names=tuple(pax["config_names"]), config_string=pax["config_string"],
                   treemakers=tuple(pax["treemakers"]), timeout_seconds=pax["timeout_seconds"],
                   event_tolerance=pax["event_tolerance"], simulation_files=tuple(simulation.items()),
                   processing_files=tuple(processing.items()))

    # -- versions -------------------------------------------------------------------------------
    @cached_property
    def versions(self) -> dict:
        """pax and hax versions of the env, asked once per engine (one engine per job)."""
        output = self._run(self.in_env("python", str(RUNNER), "versions"),
                           f"checking the pax env {self.conda_env} (pax and hax versions)",
                           logging.getLogger(ENGINE_LOG))
        try:
            found = json.loads(output.strip().splitlines()[-1])
            return {"pax": str(found["pax"]), "hax": str(found["hax"]), "conda_env": self.conda_env}
        except (ValueError, IndexError, KeyError, TypeError):
            raise EngineError(f"the pax env {self.conda_env} did not report pax/hax versions: "
                              f"{output[-500:]!r}") from None

    def prepare(self, output_root: Path, echo: Callable[[str], None]) -> dict:
        """Once per job: ask the env for its pax and hax versions, so an unusable env fails the job at once."""
        versions = self.versions
        echo(f"pax engine: pax {versions['pax']}, hax {versions['hax']} from the conda env {self.conda_env}")
        return versions

    def version(self) -> str:
        versions = self.versions
        return f"pax-{versions['pax']}+hax-{versions['hax']}@{self.conda_env}"

    # -- commands (pure) ------------------------------------------------------------------------
    @property
    def _activate(self) -> str:
        """The one line of shell text: the campaign's activation command and the validated env name."""
        return f"{self.conda_activate} {shlex.quote(self.conda_env)}"

    def in_env(self, program: str, *args: str) -> list[str]:
        """argv running ``program args`` inside the conda env; args never pass through a shell."""
        return ["bash", "-c", f'{self._activate} && exec "$@"', program, program, *args]

    def _paxer(self, seed: int, *args: str) -> list[str]:
        return self.in_env("python", str(RUNNER), "paxer", str(int(seed)), *args)

    def simulation_command(self, instructions: Path, truth_out: Path, raw_out: Path, *, seed: int,
                           config_dir: Path) -> list[str]:
        truth_stem = _stem(truth_out, ".csv")
        unsafe = CONFIG_STRING_UNSAFE & set(truth_stem)
        if unsafe:
            raise BadInputError(f"truth path {truth_stem!r} contains {''.join(sorted(unsafe))!r}, which paxer's "
                                "--config_string cannot carry; choose an output_root without them")
        config_string = f"[WaveformSimulator]truth_file_name='{truth_stem}'"
        if self.config_string:
            config_string += ";" + self.config_string
        return self._paxer(seed, "--input", str(instructions), "--config", *self.config_names, "reduce_raw_data",
                           "Simulation", "--config_string", config_string, "--output", str(raw_out),
                           "--config_path", *(str(Path(config_dir) / name) for name, _ in self.simulation_files))

    def processing_command(self, raw: Path, processed_out: Path, *, config_dir: Path) -> list[str]:
        return self._paxer(PROCESSING_SEED, "--ignore_rundb", "--input", str(raw), "--config", *self.config_names,
                           "--output", _stem(processed_out, ".root"),
                           "--config_path", *(str(Path(config_dir) / name) for name, _ in self.processing_files))

    def minitree_command(self, processed: Path, out_dir: Path) -> list[str]:
        return self.in_env("python", str(RUNNER), "minitrees", str(processed), str(out_dir), *self.treemakers)

    def probe_argv(self) -> list[str]:
        """argv that checks the env before any job is submitted; exit 0 and a JSON line if all is there.

        Checks, in order, each failure with its own message: the env activates, ``paxer --version``
        runs, hax imports, and every ``config_names`` entry is a config file of that pax.
        """
        env = shlex.quote(self.conda_env)
        how = _plain(self.conda_activate)
        script = "\n".join([
            f"{self._activate} || {{ echo \"pax probe: cannot activate the conda env {env} ('{how}')\" >&2; "
            "exit 11; }",
            f"command -v paxer >/dev/null || {{ echo \"pax probe: no paxer in the conda env {env}\" >&2; exit 12; }}",
            f"paxer --version >/dev/null || {{ echo \"pax probe: 'paxer --version' failed in {env}\" >&2; exit 13; }}",
            'exec python -c "$1" "${@:2}"',
        ])
        return ["bash", "-c", script, "pax-probe", PROBE_SCRIPT, *self.config_names]

    def probe_command(self) -> str:
        """:meth:`probe_argv` as one remote shell command (every element quoted)."""
        return shlex.join(self.probe_argv())

    # -- ini files ------------------------------------------------------------------------------
    def config_dir(self, production_dir: Path) -> Path:
        """Where this engine's ini files live for outputs under ``production_dir`` (named by their content)."""
        return Path(production_dir) / "pax_configs" / config_digest(dict(self.simulation_files))

    def write_configs(self, production_dir: Path) -> Path:
        """Write (or check) every ini file the engine passes to paxer; return their directory."""
        directory = self.config_dir(production_dir)
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in dict(self.simulation_files + self.processing_files).items():
            path = directory / name
            if path.exists() and path.read_text() == text:
                continue
            with tempfile.NamedTemporaryFile("w", dir=directory, prefix=f".{name}.", delete=False) as handle:
                handle.write(text)
            os.replace(handle.name, path)
        return directory

    # -- steps ----------------------------------------------------------------------------------
    def simulate(self, instructions: Path, truth_out: Path, raw_out: Path, seed: int) -> StepCounts:
        from faxflow.truth import read_truth_csv

        instructions = Path(instructions)
        log = logging.getLogger(ENGINE_LOG)
        config_dir = self.write_configs(instructions.absolute().parent.parent)
        events = instruction_events(instructions)
        self._run(self.simulation_command(instructions, truth_out, raw_out, seed=seed, config_dir=config_dir),
                  "paxer (simulation)", log)
        try:
            read_truth_csv(truth_out)
        except BadInputError as error:
            raise ValidationFailure(f"paxer (simulation) wrote no usable fax truth: {error}") from None
        written = raw_event_count(raw_out)
        if not (Path(raw_out) / "pax_info.json").is_file():
            raise ValidationFailure(f"paxer (simulation) wrote no pax_info.json into {raw_out}")
        return StepCounts(events_in=events, events_out=written)

    def process(self, raw: Path, processed_out: Path) -> StepCounts:
        raw = Path(raw)
        log = logging.getLogger(ENGINE_LOG)
        config_dir = self.write_configs(raw.absolute().parent.parent)
        events = raw_event_count(raw)
        self._run(self.processing_command(raw, processed_out, config_dir=config_dir), "paxer (processing)", log)
        return StepCounts(events_in=events, events_out=processed_event_count(processed_out))

    def minitrees(self, processed: Path, minitrees_out: Path) -> StepCounts:
        processed = Path(processed)
        events = processed_event_count(processed)
        work = Path(minitrees_out).parent / "hax"
        work.mkdir(parents=True, exist_ok=True)
        self._run(self.minitree_command(processed, work), "hax (minitrees)", logging.getLogger(ENGINE_LOG))
        frame, groups = read_hax_tables(work, self.treemakers)
        missing = events - len(frame)
        if missing < 0 or missing > self.event_tolerance * events:
            raise ValidationFailure(f"hax (minitrees): {len(frame)} events from {events} processed events "
                                    f"(allowed missing: {self.event_tolerance:.1%})")
        write_minitrees(frame, groups, minitrees_out)
        return StepCounts(events_in=len(frame), events_out=len(frame))

    # -- running --------------------------------------------------------------------------------
    def _run(self, command: list[str], what: str, log: logging.Logger) -> str:
        """Run ``command`` (its own process group, killed whole on timeout); return stdout."""
        log.info("%s: %s", what, shlex.join(command))
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                       start_new_session=True)
        except OSError as error:
            raise EngineError(f"{what}: cannot start {command[0]}: {error}") from None
        try:
            stdout, stderr = process.communicate(timeout=self.timeout_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            _log_output(log, what, stdout, stderr)
            raise EngineError(f"{what} did not finish within {self.timeout_seconds} s (pax.timeout_seconds) "
                              "and was stopped") from None
        _log_output(log, what, stdout, stderr)
        if process.returncode != 0:
            tail = "\n".join((stdout + stderr).splitlines()[-ERROR_TAIL_LINES:])
            raise EngineError(f"{what} exited with {process.returncode}:\n{tail}")
        return stdout


#: Run by the probe in the env's python; argv = the config names that must exist in that pax.
PROBE_SCRIPT = """
import json, os, sys
try:
    import pax
except Exception as error:
    sys.exit('pax probe: pax does not import: %r' % (error,))
try:
    import hax
except Exception as error:
    sys.exit('pax probe: hax does not import: %r' % (error,))
config_dir = os.path.join(os.path.dirname(pax.__file__), 'config')
missing = [name for name in sys.argv[1:] if not os.path.isfile(os.path.join(config_dir, name + '.ini'))]
if missing:
    sys.exit('pax probe: pax %s has no config %s in %s' % (pax.__version__, ', '.join(missing), config_dir))
print(json.dumps({'pax': pax.__version__, 'hax': hax.__version__}))
"""


def instruction_events(instructions: Path) -> int:
    """Events in a fax instruction CSV: a new event starts where ``instruction`` changes."""
    import pandas as pd

    column = pd.read_csv(instructions, usecols=["instruction"])["instruction"]
    return int(column.ne(column.shift()).sum())


def raw_event_count(raw: Path) -> int:
    """Events in a pax raw directory, from its zip names ``XENON1T-<run>-<first>-<last>-<n>.zip``."""
    zips = sorted(Path(raw).glob("*.zip"))
    if not zips:
        raise ValidationFailure(f"no raw data (*.zip) in {raw}")
    try:
        return sum(int(path.stem.rsplit("-", 1)[-1]) for path in zips)
    except ValueError:
        raise ValidationFailure(f"raw data in {raw} is not named XENON1T-<run>-<first>-<last>-<n>.zip: "
                                f"{[path.name for path in zips]}") from None


def processed_event_count(processed: Path) -> int:
    """Entries of the processed ROOT file's event tree (the file must exist and be readable)."""
    import uproot

    processed = Path(processed)
    if not processed.is_file() or processed.stat().st_size == 0:
        raise ValidationFailure(f"paxer (processing) wrote no processed file {processed} (or an empty one)")
    try:
        with uproot.open(processed) as handle:
            return int(handle[PROCESSED_TREE].num_entries)
    except Exception as error:  # noqa: BLE001 - uproot raises many types for unreadable files
        raise ValidationFailure(f"processed file {processed} has no readable '{PROCESSED_TREE}' tree: "
                                f"{type(error).__name__}: {error}") from None


#: Columns hax adds that are no data: the DataFrame index written back as a column.
HAX_INDEX_COLUMNS = ("index", "Unnamed: 0")
#: Every treemaker's rows are keyed by these (hax joins treemakers on them).
EVENT_KEYS = ["run_number", "event_number"]


def read_hax_tables(directory: Path, treemakers: tuple[str, ...]):
    """Join the per-treemaker CSVs on (run_number, event_number); return (frame, treemaker → columns)."""
    import pandas as pd

    frame, groups = None, {}
    for treemaker in treemakers:
        path = Path(directory) / f"{treemaker}.csv"
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError) as error:
            raise ValidationFailure(f"hax wrote no readable {treemaker} minitree ({path}): {error}") from None
        table = table.drop(columns=[c for c in HAX_INDEX_COLUMNS if c in table.columns])
        if not set(EVENT_KEYS) <= set(table.columns):
            raise ValidationFailure(f"hax {treemaker} minitree {path} lacks {EVENT_KEYS}")
        if table.duplicated(EVENT_KEYS).any():
            raise ValidationFailure(f"hax {treemaker} minitree {path} has repeated events")
        new = [c for c in table.columns if frame is None or c not in frame.columns]
        groups[treemaker] = [c for c in new if c not in EVENT_KEYS] if frame is not None else new
        frame = table if frame is None else frame.merge(table[EVENT_KEYS + [c for c in new if c not in EVENT_KEYS]],
                                                        on=EVENT_KEYS, how="inner")
    return frame.sort_values(EVENT_KEYS, kind="stable").reset_index(drop=True), groups


def write_minitrees(frame, groups: dict, out: Path) -> None:
    """Parquet with the treemaker → columns map in the same metadata key the builtin engine uses."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from faxflow.engines.builtin.minitrees import METADATA_KEY

    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {METADATA_KEY: json.dumps({"treemakers": groups}).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), out, compression="lz4", use_dictionary=False)


def _stem(path: Path, suffix: str) -> str:
    text = str(path)
    return text[:-len(suffix)] if text.endswith(suffix) else text


def _plain(text: str) -> str:
    """``text`` safe inside the double-quoted echo of the probe (for its message only)."""
    return "".join(c for c in text if c.isalnum() or c in " ._/-")


def _log_output(log: logging.Logger, what: str, stdout: str, stderr: str) -> None:
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        if text:
            log.info("%s %s:\n%s", what, stream, text.rstrip())
