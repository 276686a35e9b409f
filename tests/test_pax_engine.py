"""The pax engine's commands, ini files, validation, probe and seed wrapper (no real pax: stand-ins)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from faxflow.config import campaign_from_dict, load_campaign
from faxflow.engines import get_engine
from faxflow.engines.builtin.parameters import PhysicsParameters
from faxflow.engines.pax import RUNNER, PaxEngine
from faxflow.engines.pax_physics import PAX_PHYSICS_KEYS
from faxflow.errors import BadInputError, ConfigError

sys.path.insert(0, str(Path(__file__).parent))
from fakepax import ACTIVATE, make_fake_env  # noqa: E402 - after putting tests/ on sys.path

MIDWAY = Path(__file__).parents[1] / "configs" / "midway_pax_sr1.yaml"
ENV = "/cvmfs/xenon.opensciencegrid.org/releases/anaconda/2.4/envs/pax_v6.9.0"
IN_ENV = ["bash", "-c", f'source activate {ENV} && exec "$@"', "python", "python", str(RUNNER)]


def midway_engine(variant: str, **overrides) -> PaxEngine:
    settings = dict(load_campaign(MIDWAY).variant(variant).settings)
    for key, value in overrides.items():
        settings[key] = {**settings[key], **value} if isinstance(value, dict) else value
    return PaxEngine.from_settings(settings)


def pax_engine(**overrides) -> PaxEngine:
    raw = {"name": "c", "engine": "pax", **overrides}
    return get_engine("pax", campaign_from_dict(raw).variants[0].settings)


SWITCHES = [(pmt, s2, physics) for pmt in (True, False) for s2 in (True, False) for physics in (False, True)]


@pytest.mark.parametrize("pmt_afterpulse,s2_afterpulse,physics", SWITCHES)
def test_golden_argv_of_the_2017_test_config(pmt_afterpulse, s2_afterpulse, physics):
    overrides = {"physics": {"electron_lifetime_us": 600.0}} if physics else {}
    engine = pax_engine(pmt_afterpulse=pmt_afterpulse, s2_afterpulse=s2_afterpulse,
                        pax={"conda_env": ENV, "config_names": ["XENON1T", "SR1_parameters"]}, **overrides)
    ini = [name for flag, name in ((not pmt_afterpulse, "NoPMTAfterpulses.ini"),
                                   (not s2_afterpulse, "NoS2Afterpulses.ini"), (physics, "Personalize.ini")) if flag]
    simulation = engine.simulation_command(Path("/p/csv/Fax_Test_000001.csv"), Path("/p/truth/Fax_Test_000001.csv"),
                                           Path("/p/raw/Fax_Test_000001"), seed=123, config_dir=Path("/c"))
    assert simulation == IN_ENV + [
        "paxer", "123", "--input", "/p/csv/Fax_Test_000001.csv", "--config", "XENON1T", "SR1_parameters",
        "reduce_raw_data", "Simulation",
        "--config_string", "[WaveformSimulator]truth_file_name='/p/truth/Fax_Test_000001'",
        "--output", "/p/raw/Fax_Test_000001", "--config_path", *(f"/c/{name}" for name in ini), "/c/MC.ini"]
    processing = engine.processing_command(Path("/p/raw/Fax_Test_000001"), Path("/p/processed/Fax_Test_000001.root"),
                                           config_dir=Path("/c"))
    detector = ["/c/Personalize.ini"] if physics else []
    assert processing == IN_ENV + [
        "paxer", "0", "--ignore_rundb", "--input", "/p/raw/Fax_Test_000001", "--config", "XENON1T", "SR1_parameters",
        "--output", "/p/processed/Fax_Test_000001", "--config_path", *detector, "/c/MC.ini"]
    assert engine.minitree_command(Path("/p/processed/x.root"), Path("/w")) == IN_ENV + [
        "minitrees", "/p/processed/x.root", "/w", "Fundamentals", "Basics", "Extended"]


def test_midway_variants_differ_only_in_the_afterpulse_files():
    on, off = midway_engine("Fax_Test"), midway_engine("Fax_Test_NoAfterpulses")
    assert [name for name, _ in on.simulation_files] == ["MC.ini"]
    assert [name for name, _ in off.simulation_files] == ["NoPMTAfterpulses.ini", "NoS2Afterpulses.ini", "MC.ini"]
    assert on.processing_files == off.processing_files


def test_ini_files_say_what_the_campaign_asked():
    engine = pax_engine(physics={"drift_velocity_um_per_ns": 1.5, "diffusion_constant_cm2_per_s": 40.0,
                                 "electron_lifetime_us": 650.0}, processing={"run_number": 777})
    files = dict(engine.simulation_files)
    assert "[DEFAULT]\ndrift_velocity_liquid = 1.5 * um / ns\nelectron_lifetime_liquid = 650.0 * us\n" \
        in files["Personalize.ini"]
    assert "[WaveformSimulator]\ndiffusion_constant_liquid = 40.0 * cm**2 / s\n" in files["Personalize.ini"]
    assert "[MC]\nmc_generated_data = True\nmc_sr_parameters = 'sr1'\nmc_run_number = 777\n" in files["MC.ini"]
    assert dict(engine.processing_files) == {name: files[name] for name in ("Personalize.ini", "MC.ini")}
    sr0 = dict(pax_engine(pax={"config_names": ["XENON1T", "SR0_parameters"]}).simulation_files)
    assert "mc_sr_parameters = 'sr0'\nmc_run_number = 5000\n" in sr0["MC.ini"]


def test_every_pax_physics_key_is_a_faxflow_physics_key():
    assert set(PAX_PHYSICS_KEYS) <= set(PhysicsParameters.model_fields)


def test_ini_files_are_written_once_under_their_content_name(tmp_path):
    engine = pax_engine(s2_afterpulse=False)
    directory = engine.write_configs(tmp_path)
    assert directory.parent == tmp_path / "pax_configs"
    assert sorted(p.name for p in directory.iterdir()) == ["MC.ini", "NoS2Afterpulses.ini"]
    (directory / "MC.ini").write_text("[MC]\nmc_generated_data = False\n")  # tampered: rewritten
    assert engine.write_configs(tmp_path) == directory
    assert (directory / "MC.ini").read_text() == dict(engine.simulation_files)["MC.ini"]
    assert pax_engine().config_dir(tmp_path) != directory


@pytest.mark.parametrize("raw,fragment", [
    ({"physics": {"noise_rms_adc": 3.0}},
     "physics.noise_rms_adc: pax has no setting for it (allowed with engine pax: "),
    ({"physics": {"period": "SR0"}}, "physics.period: with engine pax the period comes from pax.config_names"),
    ({"processing": {"hit_threshold_sigma": 4.0}}, "processing.hit_threshold_sigma: pax reconstructs with the "
                                                   "simulation's configuration (allowed with engine pax: run_number)"),
    ({"pax": {"treemakers": ["Basics", "NoSuchTree"]}}, "pax.treemakers[1]: Input should be 'Fundamentals'"),
])
def test_what_pax_cannot_take_is_a_validation_error_naming_the_key(raw, fragment):
    with pytest.raises(ConfigError) as error:
        campaign_from_dict({"name": "c", "engine": "pax", **raw})
    assert fragment in str(error.value)
    if "pax" not in raw:  # the same keys are fine for the builtin engine
        assert campaign_from_dict({"name": "c", "engine": "builtin", **raw}).variants


HOSTILE = ["a b", "it's", 'say "hi"', "$(touch pwned)", "`touch pwned`", "semi;colon", "back\\slash", "*"]


def test_hostile_values_reach_the_program_unchanged(tmp_path):
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    echo = env / "bin" / "python"
    echo.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    echo.chmod(0o755)
    engine = pax_engine(pax={"conda_env": str(env), "conda_activate": f"source {Path(ACTIVATE.split()[1])}",
                             "config_string": "[WaveformSimulator]x=" + "".join(HOSTILE)})
    hostile_dir = tmp_path / "out $(touch pwned) `id` *"
    argv = engine.processing_command(hostile_dir / "raw" / "p", hostile_dir / "p.root", config_dir=hostile_dir)
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, check=True)
    assert json.loads(done.stdout) == argv[5:]
    argv = engine.in_env("python", *HOSTILE)
    assert json.loads(subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path).stdout) == HOSTILE
    simulation = engine.simulation_command(tmp_path / "i.csv", tmp_path / "t.csv", tmp_path / "r", seed=1,
                                           config_dir=tmp_path)
    assert simulation[simulation.index("--config_string") + 1].endswith(";[WaveformSimulator]x=" + "".join(HOSTILE))
    assert not list(tmp_path.rglob("pwned"))


def test_a_truth_path_paxer_would_rewrite_is_refused():
    with pytest.raises(BadInputError, match="--config_string cannot carry"):
        pax_engine().simulation_command(Path("/p/i.csv"), Path("/p/it's;x.csv"), Path("/p/r"), seed=1,
                                        config_dir=Path("/c"))


def test_probe_passes_on_a_good_env_and_names_what_is_missing(tmp_path):
    env = make_fake_env(tmp_path, {})
    good = pax_engine(pax={"conda_env": str(env), "conda_activate": ACTIVATE})
    done = subprocess.run(good.probe_argv(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"pax": "6.11.2-fake", "hax": "2.5.0-fake"}
    assert subprocess.run(["bash", "-c", good.probe_command()], capture_output=True).returncode == 0

    missing_env = pax_engine(pax={"conda_env": str(tmp_path / "nope"), "conda_activate": ACTIVATE})
    done = subprocess.run(["bash", "-c", missing_env.probe_command()], capture_output=True, text=True)
    assert done.returncode == 11
    assert f"pax probe: cannot activate the conda env {tmp_path / 'nope'}" in done.stderr

    bad_config = pax_engine(pax={"conda_env": str(env), "conda_activate": ACTIVATE,
                                 "config_names": ["XENON1T", "SR9_parameters"]})
    done = subprocess.run(bad_config.probe_argv(), capture_output=True, text=True)
    assert done.returncode == 1 and "has no config SR9_parameters" in done.stderr


def test_seed_wrapper_is_python36_and_seeds_numpy_and_random(tmp_path):
    ast.parse(RUNNER.read_text(), feature_version=(3, 6))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    paxer = bin_dir / "paxer"
    paxer.write_text("import random, sys\nimport numpy\n"
                     "print(sys.argv[1:], numpy.random.randint(1 << 30), random.randint(0, 1 << 30))\n")
    paxer.chmod(0o755)

    def draw(seed):
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
        return subprocess.run([sys.executable, str(RUNNER), "paxer", str(seed), "--x", "a b"], env=env,
                              capture_output=True, text=True, check=True).stdout

    assert draw(2 ** 40 + 5) == draw(2 ** 40 + 5)
    assert draw(1) != draw(2)
    assert draw(1).startswith("['--x', 'a b'] ")
    paxer.write_text("#!/bin/sh\necho not python\n")
    done = subprocess.run([sys.executable, str(RUNNER), "paxer", "1"], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert done.returncode == 1 and "is not a Python script, so its random state cannot be seeded" in done.stderr


def test_timeout_stops_the_whole_process_group(tmp_path):
    engine = pax_engine(pax={"conda_activate": "true", "timeout_seconds": 1})
    marker = tmp_path / "survived"
    command = ["bash", "-c", f"(sleep 3; touch {marker}) & sleep 30"]
    import logging

    from faxflow.errors import EngineError

    with pytest.raises(EngineError, match="did not finish within 1 s"):
        engine._run(command, "sleeper", logging.getLogger("test"))
    subprocess.run(["sleep", "3.5"])
    assert not marker.exists()
