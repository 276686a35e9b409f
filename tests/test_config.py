"""Campaign validation: every class of problem gives one clear line naming file, key and allowed values."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faxflow.config import campaign_from_dict, campaign_json_schema, load_campaign
from faxflow.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def problems_of(raw, source="c.yaml"):
    with pytest.raises(ConfigError) as caught:
        campaign_from_dict(raw, source)
    return caught.value.problems


def one_problem(raw):
    problems = problems_of(raw)
    assert len(problems) == 1, problems
    assert problems[0].startswith("c.yaml: ")
    return problems[0]


def test_every_shipped_config_is_valid():
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert any(path.name == "demo.yaml" for path in configs)
    for path in configs:
        assert load_campaign(path).variants


def test_demo_has_two_variants_of_four_productions_of_fifty_events():
    campaign = load_campaign(ROOT / "configs" / "demo.yaml")
    assert len(campaign.variants) == 2
    assert {v.settings["number_job"] for v in campaign.variants} == {4}
    assert {v.settings["number_event_per_job"] for v in campaign.variants} == {50}
    diffusion = {v.settings["physics"]["diffusion_constant_cm2_per_s"] for v in campaign.variants}
    assert len(diffusion) == 2


def test_unknown_top_level_key_lists_allowed_keys():
    line = one_problem({"name": "c", "nuber_job": 3})
    assert "nuber_job: unknown key" in line and "number_job" in line


def test_unknown_nested_key_names_the_path_and_allowed_keys():
    line = one_problem({"name": "c", "physics": {"difusion": 3}})
    assert "physics.difusion: unknown key" in line and "diffusion_constant_cm2_per_s" in line
    line = one_problem({"name": "c", "cluster": {"partitoin": "x"}})
    assert "cluster.partitoin" in line and "partition" in line


def test_wrong_type_and_enum_show_allowed_values():
    assert "number_job" in one_problem({"name": "c", "number_job": "many"})
    line = one_problem({"name": "c", "detector": "XENONnT"})
    assert "detector" in line and "XENON1T" in line and "XENON100" in line
    line = one_problem({"name": "c", "correlated": "yes"})
    assert "correlated" in line and "'S1'" in line and "false" in line
    line = one_problem({"name": "c", "recoil_type": "gamma"})
    assert "recoil_type" in line and "alpha" in line and "LED" in line
    line = one_problem({"name": "c", "instructions": {"source": "geant4"}})
    assert "unknown source 'geant4'" in line and "nest" in line


def test_bad_ranges():
    assert "low (100) must be < high (50)" in one_problem({"name": "c", "photon_number": [100, 50]})
    assert "electron_number" in one_problem({"name": "c", "electron_number": [5, 5]})
    line = one_problem({"name": "c", "fiducial_volume": {"r_max_cm": 30, "depth_min_cm": 50, "depth_max_cm": 10}})
    assert "depth_min_cm (50.0) must be < depth_max_cm (10.0)" in line
    assert "greater than 0" in one_problem({"name": "c", "physics": {"electron_lifetime_us": -5}})


def test_depth_beyond_the_tpc_is_rejected():
    line = one_problem({"name": "c", "fiducial_volume": {"r_max_cm": 30, "depth_min_cm": 5, "depth_max_cm": 100}})
    assert "fiducial_volume.depth_max_cm" in line and "96.9" in line
    line = one_problem({"name": "c", "fiducial_volume": {"r_max_cm": 50, "depth_min_cm": 5, "depth_max_cm": 90}})
    assert "r_max_cm" in line and "47.9" in line


def test_detector_defaults_are_the_2017_fiducial_volumes():
    xenon1t = campaign_from_dict({"name": "c"}).variants[0].settings["fiducial_volume"]
    assert xenon1t == {"r_max_cm": 36.94, "depth_min_cm": 9.0, "depth_max_cm": 92.9}
    xenon100 = campaign_from_dict({"name": "c", "detector": "XENON100", "engine": "pax",
                                   "cluster": {"backend": "slurm"}}).variants[0].settings["fiducial_volume"]
    assert xenon100["r_max_cm"] == pytest.approx(200 ** 0.5) and xenon100["depth_max_cm"] == 29.6


def test_engine_and_detector_combinations():
    assert "builtin engine simulates XENON1T only" in one_problem({"name": "c", "detector": "XENON100"})
    assert campaign_from_dict({"name": "c", "engine": "pax"}).variants[0].settings["engine"] == "pax"


def test_duplicate_variant_names():
    line = one_problem({"name": "c", "variants": [{"name": "a"}, {"name": "a"}]})
    assert "duplicate variant name 'a'" in line


@pytest.mark.parametrize("name", ["a b", "$(reboot)", "x;rm -rf ~", "../up", "-rf", "a/b", "é", "`id`", ""])
def test_names_unsafe_for_paths_or_shells_are_rejected(name):
    line = one_problem({"name": "c", "variants": [{"name": name}]})
    assert "variants[0].name" in line and "[A-Za-z0-9_.-]" in line
    assert "[A-Za-z0-9_.-]" in one_problem({"name": name})
    assert "cluster.partition" in one_problem({"name": "c", "cluster": {"partition": name or " "}})


def test_unsafe_paths_and_setup_lines():
    assert "cluster.remote_root" in one_problem({"name": "c", "cluster": {"remote_root": "/scratch/$(whoami)"}})
    assert "cluster.remote_root" in one_problem({"name": "c", "cluster": {"remote_root": "/a/../etc"}})
    assert "single line" in one_problem({"name": "c", "cluster": {"env_setup": ["module load x\nrm -rf /"]}})
    assert "production_id_format" in one_problem({"name": "c", "production_id_format": "{name.__class__}"})
    assert "production_id_format" in one_problem({"name": "c", "production_id_format": "{name}"})


def test_several_problems_are_all_reported_once_each():
    problems = problems_of({"name": "bad name", "detector": "X", "bogus": 1,
                            "variants": [{"name": "a"}, {"name": "a"}, {"name": "b;c"}]})
    assert len(problems) == 5, problems
    assert len(set(problems)) == len(problems)


def test_variant_overrides_merge_into_defaults():
    campaign = campaign_from_dict({"name": "c", "physics": {"electron_lifetime_us": 600},
                                   "variants": [{"name": "a", "physics": {"diffusion_constant_cm2_per_s": 10}}]})
    physics = campaign.variants[0].settings["physics"]
    assert physics["electron_lifetime_us"] == 600 and physics["diffusion_constant_cm2_per_s"] == 10
    assert physics["drift_velocity_um_per_ns"] == 1.335  # SR1 default filled in


def test_period_sets_sr0_numbers_and_overrides_still_win():
    settings = campaign_from_dict({"name": "c", "physics": {"period": "SR0", "electron_lifetime_us": 500}}
                                  ).variants[0].settings
    assert settings["physics"]["drift_velocity_um_per_ns"] == 1.44
    assert settings["physics"]["electron_lifetime_us"] == 500
    assert settings["processing"]["drift_velocity_um_per_ns"] == 1.44


def test_matrix_makes_the_cartesian_product_with_readable_unique_names():
    campaign = campaign_from_dict({"name": "c", "matrix": {"physics.electron_lifetime_us": [450, 550],
                                                           "s2_afterpulse": [True, False]}})
    names = [v.name for v in campaign.variants]
    assert names == ["electron_lifetime_us-450_s2_afterpulse-true", "electron_lifetime_us-450_s2_afterpulse-false",
                     "electron_lifetime_us-550_s2_afterpulse-true", "electron_lifetime_us-550_s2_afterpulse-false"]
    assert campaign.variants[3].settings["physics"]["electron_lifetime_us"] == 550
    assert campaign.variants[3].settings["s2_afterpulse"] is False


def test_list_and_matrix_combine():
    campaign = campaign_from_dict({"name": "c", "variants": [{"name": "er"}, {"name": "nr", "recoil_type": "NR"}],
                                   "matrix": {"number_event_per_job": [10, 20]}})
    assert [v.name for v in campaign.variants] == ["er_number_event_per_job-10", "er_number_event_per_job-20",
                                                   "nr_number_event_per_job-10", "nr_number_event_per_job-20"]
    assert campaign.variants[2].settings["recoil_type"] == "NR"


def test_matrix_problems():
    assert "matrix.colour: unknown key" in one_problem({"name": "c", "matrix": {"colour": [1]}})
    assert "at least one value" in one_problem({"name": "c", "matrix": {"number_job": []}})
    line = one_problem({"name": "c", "matrix": {"number_job": [0, 2]}})
    assert "matrix[number_job-0].number_job" in line


def test_campaign_only_keys_cannot_vary():
    assert "only be set for the whole campaign" in one_problem({"name": "c", "variants": [{"name": "a", "seed": 3}]})


def test_bad_schedule():
    assert "cron expression" in one_problem({"name": "c", "schedule": "every night"})
    assert campaign_from_dict({"name": "c", "schedule": "0 2 * * *"}).schedule == "0 2 * * *"


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: c\nvariants:\n  - name: [a\n")
    with pytest.raises(ConfigError) as caught:
        load_campaign(path)
    assert str(path) in caught.value.problems[0] and "line" in caught.value.problems[0]


def test_non_mapping_and_missing_files(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_campaign(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_campaign(tmp_path / "absent.yaml")
    assert "name: required key is missing" in one_problem({})


def test_json_schema_covers_the_sections():
    schema = campaign_json_schema()
    assert {"name", "variants", "matrix", "physics", "cluster", "instructions"} <= set(schema["properties"])
    assert "ClusterSettings" in schema["$defs"]


def test_cli_exit_code_2_and_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        name: c
        photon_number: [9, 1]
        variants:
          - {name: "a;b"}
    """))
    result = subprocess.run([sys.executable, "-m", "faxflow.cli", "validate", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}: photon_number: low (9) must be < high (1)" in result.stderr
    assert f"{path}: variants[0].name" in result.stderr
    run = subprocess.run([sys.executable, "-m", "faxflow.cli", "plan", str(path), "--dry-run"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
