"""The ``pax`` engine: the real ``paxer`` (fax + processing) and ``hax`` in a conda env on the cluster.

pax and hax are not Python-3.11 packages and are never installed by faxflow; this engine runs
them as subprocesses inside the campaign's conda env. Every argument is passed as a separate
argv element (the env activation line is the only shell text, built from validated names).
"""

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from faxflow.engines import StepCounts
from faxflow.errors import BadInputError, EngineError

PAX_CONFIG_DIR = Path(__file__).parent / "pax_configs"

#: Runs inside the pax env: hax minitrees (Basics + Fundamentals, like 2017) → CSV.
HAX_SCRIPT = """
import sys, os, hax
processed, out_csv = sys.argv[1], sys.argv[2]
name = os.path.basename(processed)[:-len('.root')]
hax.init(experiment='XENON1T', main_data_paths=[os.path.dirname(processed)],
         minitree_paths=[os.path.dirname(out_csv)], pax_version_policy='loose', use_runs_db=False, corrections=[])
hax.minitrees.load(name, ['Basics', 'Fundamentals']).to_csv(out_csv, index=False)
"""


@dataclass(frozen=True)
class PaxEngine:
    conda_env: str
    conda_activate: str
    config_names: tuple[str, ...]
    config_string: str
    personalize_config: bool
    pmt_afterpulse: bool
    s2_afterpulse: bool
    timeout_seconds: int
    name: str = "pax"

    @classmethod
    def from_settings(cls, settings: dict) -> "PaxEngine":
        pax = settings["pax"]
        return cls(conda_env=pax["conda_env"], conda_activate=pax["conda_activate"],
                   config_names=tuple(pax["config_names"]), config_string=pax["config_string"],
                   personalize_config=pax["personalize_config"], pmt_afterpulse=settings["pmt_afterpulse"],
                   s2_afterpulse=settings["s2_afterpulse"], timeout_seconds=pax["timeout_seconds"])

    def version(self) -> str:
        return f"pax-{self.conda_env}"

    def in_env(self, program: str, *args: str) -> list[str]:
        """argv running ``program args`` inside the conda env; args never pass through a shell."""
        activate = f"{self.conda_activate} {shlex.quote(self.conda_env)}"
        return ["bash", "-c", f'{activate} && exec "$@"', program, program, *args]

    def simulation_command(self, instructions: Path, truth_out: Path, raw_out: Path) -> list[str]:
        truth_stem = str(truth_out)[:-len(".csv")] if str(truth_out).endswith(".csv") else str(truth_out)
        config_string = f"[WaveformSimulator]truth_file_name={truth_stem!r}"
        if self.config_string:
            config_string += ";" + self.config_string
        extra = [name for flag, name in ((not self.pmt_afterpulse, "NoPMTAfterpulses.ini"),
                                         (not self.s2_afterpulse, "NoS2Afterpulses.ini"),
                                         (self.personalize_config, "Personalize.ini")) if flag]
        command = ["paxer", "--input", str(instructions), "--config", *self.config_names, "reduce_raw_data",
                   "Simulation", "--config_string", config_string, "--output", str(raw_out)]
        if extra:
            command += ["--config_path", *(str(PAX_CONFIG_DIR / name) for name in extra)]
        return self.in_env(*command)

    def processing_command(self, raw: Path, processed_out: Path) -> list[str]:
        stem = str(processed_out)[:-len(".root")] if str(processed_out).endswith(".root") else str(processed_out)
        return self.in_env("paxer", "--ignore_rundb", "--input", str(raw), "--config", *self.config_names,
                           "--output", stem)

    def minitree_command(self, processed: Path, csv_out: Path) -> list[str]:
        return self.in_env("python", "-c", HAX_SCRIPT, str(processed), str(csv_out))

    def _run(self, command: list[str], what: str) -> None:
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_seconds)
        except subprocess.TimeoutExpired:
            raise EngineError(f"{what} did not finish within {self.timeout_seconds} s and was stopped") from None
        except FileNotFoundError as error:
            raise EngineError(f"{what}: cannot start {command[0]}: {error}") from None
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise EngineError(f"{what} exited with {result.returncode}:\n{tail}")

    def simulate(self, instructions: Path, truth_out: Path, raw_out: Path, seed: int) -> StepCounts:
        import pandas as pd

        # fax draws from numpy's global RNG and cannot be seeded from outside: pax productions
        # are not reproducible, which the done record's seed field cannot change.
        self._run(self.simulation_command(instructions, truth_out, raw_out), "paxer (simulation)")
        column = pd.read_csv(instructions, usecols=["instruction"])["instruction"]
        events = int(column.ne(column.shift()).sum())
        written = len(list(Path(raw_out).glob("*.zip")))
        if events and not written:
            raise EngineError(f"paxer wrote no raw data into {raw_out}")
        return StepCounts(events_in=events, events_out=events)

    def process(self, raw: Path, processed_out: Path) -> StepCounts:
        self._run(self.processing_command(raw, processed_out), "paxer (processing)")
        if not Path(processed_out).exists():
            raise EngineError(f"paxer did not write {processed_out}")
        events = _raw_event_count(raw)
        return StepCounts(events_in=events, events_out=events)

    def minitrees(self, processed: Path, minitrees_out: Path) -> StepCounts:
        import pandas as pd

        csv = Path(minitrees_out).with_suffix(".csv")
        self._run(self.minitree_command(processed, csv), "hax (minitrees)")
        try:
            frame = pd.read_csv(csv)
        except (OSError, ValueError) as error:
            raise BadInputError(f"hax output {csv} unreadable: {error}") from None
        frame.to_parquet(minitrees_out, index=False)
        csv.unlink()
        return StepCounts(events_in=len(frame), events_out=len(frame))


def _raw_event_count(raw: Path) -> int:
    """Events in a pax raw directory, from the zip names XENON1T-<run>-<first>-<last>-<n>.zip."""
    return sum(int(path.stem.rsplit("-", 1)[-1]) for path in Path(raw).glob("*.zip"))
