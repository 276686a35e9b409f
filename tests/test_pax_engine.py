"""The pax engine's commands: the 2017 paxer calls, with every argument its own argv element."""

import subprocess

from faxflow.config import campaign_from_dict
from faxflow.engines import get_engine
from faxflow.engines.pax import PAX_CONFIG_DIR


def pax_engine(**overrides):
    raw = {"name": "c", "engine": "pax", "cluster": {"backend": "slurm"}, **overrides}
    return get_engine("pax", campaign_from_dict(raw).variants[0].settings)


def test_simulation_command_matches_the_2017_call():
    engine = pax_engine(pmt_afterpulse=False, s2_afterpulse=False)
    argv = engine.simulation_command("/p/csv/x_000001.csv", "/p/truth_raw/x_000001.csv", "/p/raw/x_000001")
    program = argv[argv.index("paxer", 4):]
    assert program[:6] == ["paxer", "--input", "/p/csv/x_000001.csv", "--config", "XENON1T", "SR1_parameters"]
    assert program[6:8] == ["reduce_raw_data", "Simulation"]
    assert "[WaveformSimulator]truth_file_name='/p/truth_raw/x_000001'" in program
    assert program[program.index("--output") + 1] == "/p/raw/x_000001"
    paths = program[program.index("--config_path") + 1:]
    assert [p.rsplit("/", 1)[1] for p in paths] == ["NoPMTAfterpulses.ini", "NoS2Afterpulses.ini"]
    assert all((PAX_CONFIG_DIR / p.rsplit("/", 1)[1]).exists() for p in paths)
    assert "--config_path" not in pax_engine().simulation_command("a.csv", "t.csv", "r")


def test_env_activation_never_interpolates_arguments(tmp_path):
    engine = pax_engine(pax={"conda_env": "/opt/envs/pax_v6.8.0", "conda_activate": "true"})
    hostile = "$(touch pwned); `id` 'q\""
    argv = engine.in_env("printf", "%s", hostile)
    assert argv[:2] == ["bash", "-c"] and "/opt/envs/pax_v6.8.0" in argv[2] and hostile not in argv[2]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout == hostile and not (tmp_path / "pwned").exists()


def test_processing_command():
    argv = pax_engine().processing_command("/p/raw/x", "/p/processed/x.root")
    assert argv[-8:] == ["--ignore_rundb", "--input", "/p/raw/x", "--config", "XENON1T", "SR1_parameters",
                         "--output", "/p/processed/x"]
