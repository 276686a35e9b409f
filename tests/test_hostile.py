"""Hostile and careless input: every refusal has the right class and exit code and names file, key or row.

Runs the CLI in-process (``faxflow.cli.main``) so each case is cheap; docs/reliability.md lists these
tests against the faults they cover.
"""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from faxflow import errors, limits, names
from faxflow.cli import main
from faxflow.config import campaign_from_dict, load_campaign
from faxflow.errors import BadInputError, ConfigError
from faxflow.instructions import make_instructions
from faxflow.slurm import commands
from faxflow.slurm.policy import Action, Resources, decide

HEX = "0" * 64


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def campaign_file(tmp_path, content, name="c.yaml"):
    path = tmp_path / name
    if isinstance(content, dict):
        content = yaml.safe_dump(content, sort_keys=False)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def validate(capsys, tmp_path, content):
    path = campaign_file(tmp_path, content)
    code, _, err = run_cli(capsys, "validate", path)
    return code, err, path


# --------------------------------------------------------------------------------------------
# the loader


ALIAS_BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                       + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                          f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
                          f"*{chr(97 + i)}]" for i in range(9)]) + "\nname: bomb\n"


def test_alias_bomb_is_refused_at_the_first_anchor(capsys, tmp_path):
    assert len(ALIAS_BOMB) < 1500
    code, err, path = validate(capsys, tmp_path, ALIAS_BOMB)
    assert code == ConfigError.exit_code == 2
    assert f"{path}: YAML error at line 1, column 4: anchors (&a) are not allowed" in err
    assert "Traceback" not in err


def test_alias_without_anchor_and_merge_keys_are_refused(capsys, tmp_path):
    code, err, path = validate(capsys, tmp_path, "name: c\nphysics: {<<: *base}\n")
    assert code == 2 and f"{path}: YAML error at line 2" in err and "aliases" in err


def test_duplicate_keys_name_file_and_both_lines(capsys, tmp_path):
    code, err, path = validate(capsys, tmp_path, "name: c\nnumber_job: 3\nseed: 1\nnumber_job: 30\n")
    assert code == 2
    assert f"{path}: YAML error at line 4, column 1: duplicate key 'number_job' (first at line 2)" in err


def test_duplicate_nested_keys_are_refused(capsys, tmp_path):
    text = "name: c\nphysics:\n  electron_lifetime_us: 1\n  electron_lifetime_us: 2\n"
    code, err, _ = validate(capsys, tmp_path, text)
    assert code == 2 and "line 4" in err and "duplicate key 'electron_lifetime_us'" in err


def test_oversized_file_is_refused_before_parsing(capsys, tmp_path):
    code, err, path = validate(capsys, tmp_path, "name: c\n" + "# padding\n" * (limits.MAX_CONFIG_BYTES // 10 + 1))
    assert code == 2 and f"{path}: larger than {limits.MAX_CONFIG_BYTES} bytes" in err


def test_deep_nesting_is_refused(capsys, tmp_path):
    code, err, path = validate(capsys, tmp_path, "name: c\ndescription: " + "[" * 500 + "]" * 500 + "\n")
    assert code == 2 and f"{path}: YAML error" in err and f"deeper than {limits.MAX_CONFIG_DEPTH}" in err


@pytest.mark.parametrize("content, expected", [
    ("name: c\nvariants: [\n", "YAML error at line"),
    ("name: c\ndescription: !!python/object/apply:os.system [id]\n", "YAML error at line 2"),
    (b"name: c\ndescription: \x00\n", "YAML error"),
    (b"name: \xff\xfe\n", "not UTF-8"),
    ("- just\n- a list\n", "must hold a mapping"),
    ("", "must hold a mapping"),
])
def test_broken_or_unsafe_yaml_is_a_config_error(capsys, tmp_path, content, expected):
    code, err, path = validate(capsys, tmp_path, content)
    assert code == 2 and f"{path}: " in err and expected in err and "Traceback" not in err


def test_unreadable_campaign_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "validate", tmp_path / "missing.yaml")
    assert code == 2 and f"{tmp_path / 'missing.yaml'}: cannot read" in err


def test_every_loader_entry_point_uses_the_hardened_loader(tmp_path):
    path = campaign_file(tmp_path, ALIAS_BOMB)
    with pytest.raises(ConfigError, match="anchors"):
        load_campaign(path)
    from faxflow.airflow.dag_factory import lint_configs

    assert lint_configs(tmp_path) == [f"{path}: YAML error at line 1, column 4: anchors (&a) are not allowed in "
                                      "campaign files; repeat the values or use defaults and variants"]


# --------------------------------------------------------------------------------------------
# strict types


@pytest.mark.parametrize("key, value, expected", [
    ("number_job", "3", "number_job: must be a whole number, e.g. 3 (got '3', a string)"),
    ("number_job", 5.0, "number_job: must be a whole number, e.g. 3 (got 5.0, a number)"),
    ("pmt_afterpulse", "yes", "pmt_afterpulse: must be true or false (got 'yes', a string)"),
    ("pmt_afterpulse", 0, "pmt_afterpulse: must be true or false (got 0, an integer)"),
    ("correlated", 0, "correlated: 0 is not one of true, false, 'S1', 'S2'"),
    ("seed", True, "seed: must be a whole number"),
    ("interaction_time_ns", "1000", "interaction_time_ns: must be a number, e.g. 2.5 (got '1000', a string)"),
    ("name", 3, "name: must be text (got 3, an integer)"),
])
def test_no_coercion(capsys, tmp_path, key, value, expected):
    code, err, path = validate(capsys, tmp_path, {"name": "c", key: value})
    assert code == 2 and f"{path}: {expected}" in err


@pytest.mark.parametrize("text", ["1e9", "1.0e9", "'20'"])
def test_number_job_written_as_float_or_text(capsys, tmp_path, text):
    code, err, path = validate(capsys, tmp_path, f"name: c\nnumber_job: {text}\n")
    assert code == 2 and f"{path}: number_job: must be a whole number, e.g. 3 (got " in err


def test_strict_types_inside_sections_and_variants(capsys, tmp_path):
    code, err, path = validate(capsys, tmp_path, {"name": "c", "variants": [
        {"name": "a", "physics": {"field_distortion": "no"}},
        {"name": "b", "cluster": {"retries": 2.5}}]})
    assert code == 2
    assert f"{path}: variants[0].physics.field_distortion: must be true or false" in err
    assert f"{path}: variants[1].cluster.retries: must be a whole number" in err


# --------------------------------------------------------------------------------------------
# bounds


def test_a_billion_productions_is_refused_before_any_expansion(capsys, tmp_path, monkeypatch):
    import faxflow.plan

    def must_not_expand(*args, **kwargs):
        raise AssertionError("the plan was expanded")

    monkeypatch.setattr(faxflow.plan, "make_plan", must_not_expand)
    path = campaign_file(tmp_path, {"name": "c", "number_job": 1_000_000_000})
    code, out, err = run_cli(capsys, "plan", path, "--dry-run")
    ceiling = limits.SIZE_LIMITS["max_productions_per_variant"].default
    assert code == 2 and out == ""
    assert f"{path}: number_job: 1000000000 is above the ceiling {ceiling}" in err


def test_oversized_overrides_are_refused_by_the_planner_itself(tmp_path, monkeypatch):
    import faxflow.plan

    monkeypatch.setattr(faxflow.plan, "Production", None)  # any expansion would fail with a TypeError
    campaign = campaign_from_dict({"name": "c"}, "c.yaml")
    with pytest.raises(ConfigError, match="number_job: 1000000000 is above the ceiling"):
        faxflow.plan.make_plan(campaign, number_job=1_000_000_000)
    with pytest.raises(ConfigError, match="number_event_per_job: 10000000000 is above"):
        faxflow.plan.make_plan(campaign, events=10_000_000_000)


def test_cli_overrides_are_checked_against_the_campaign_ceilings(capsys, tmp_path):
    path = campaign_file(tmp_path, {"name": "c", "limits": {"max_events_per_production": 500}})
    code, out, err = run_cli(capsys, "plan", path, "--dry-run", "--events", 501)
    assert code == 2 and out == "" and "number_event_per_job: 501 is above the ceiling 500" in err


def test_total_events_ceiling(capsys, tmp_path):
    code, err, path = validate(capsys, tmp_path, {"name": "c", "number_job": 100, "number_event_per_job": 1000,
                                                  "limits": {"max_events_per_campaign": 50_000}})
    assert code == 2 and f"{path}: limits.max_events_per_campaign: the campaign asks for 100000 events in all" in err


def test_total_productions_ceiling(capsys, tmp_path):
    ceiling = limits.SIZE_LIMITS["max_productions_per_campaign"].default
    matrix = {"physics.electron_lifetime_us": [float(100 + i) for i in range(11)]}
    code, err, path = validate(capsys, tmp_path, {"name": "c", "number_job": 10_000, "number_event_per_job": 1,
                                                  "matrix": matrix})
    assert code == 2 and f"{path}: limits.max_productions_per_campaign: the campaign asks for 110000 productions " \
                         f"in all, above the ceiling {ceiling}" in err


def test_ceilings_cannot_exceed_the_hard_maxima(capsys, tmp_path):
    hard = limits.SIZE_LIMITS["max_productions_per_variant"].hard
    code, err, path = validate(capsys, tmp_path, {"name": "c", "limits": {"max_productions_per_variant": hard + 1}})
    assert code == 2 and f"{path}: limits.max_productions_per_variant: " in err and str(hard + 1) in err


def test_raised_ceiling_allows_a_bigger_campaign():
    campaign = campaign_from_dict({"name": "c", "number_job": 20_000, "number_event_per_job": 10,
                                   "limits": {"max_productions_per_variant": 20_000}}, "c.yaml")
    assert campaign.limits["max_productions_per_variant"] == 20_000
    assert limits.trigger_maxima(campaign.limits) == {
        "number_job": 20_000, "events": limits.SIZE_LIMITS["max_events_per_production"].default}


def test_matrix_explosion_is_refused_before_expanding(capsys, tmp_path):
    matrix = {f"physics.{key}": list(range(1, 11)) for key in
              ("electron_lifetime_us", "diffusion_constant_cm2_per_s", "s1_decay_time_ns", "noise_rms_adc")}
    code, err, path = validate(capsys, tmp_path, {"name": "c", "matrix": matrix})
    assert code == 2 and f"{path}: matrix: the variants × matrix product has 10000 variants" in err


@pytest.mark.parametrize("overrides, expected", [
    ({"physics": {"diffusion_constant_cm2_per_s": float("inf")}},
     "physics.diffusion_constant_cm2_per_s: must be a finite number"),
    ({"physics": {"electron_lifetime_us": float("nan")}}, "physics.electron_lifetime_us: must be a finite number"),
    ({"instructions": {"source": "nest", "energy_range_kev": [1, float("inf")]}},
     "instructions.energy_range_kev[1]: must be a finite number"),
    ({"instructions": {"source": "nest", "spectrum": "line", "energy_kev": 1e12}},
     "instructions.energy_kev: 1000000000000.0 keV is outside NEST's ER range (allowed: 0.1..3000.0 keV)"),
    ({"recoil_type": "NR", "instructions": {"source": "nest", "energy_range_kev": [1, 1000]}},
     "instructions.energy_range_kev: 1000.0 keV is outside NEST's NR range"),
    ({"recoil_type": "LED", "instructions": {"source": "nest", "energy_range_kev": [1, 10]}},
     "recoil_type: NEST has no yields for 'LED' (allowed with instructions.source nest: ER, NR, alpha)"),
    ({"physics": {"drift_velocity_um_per_ns": 1e-9}}, "physics.drift_velocity_um_per_ns: Input should be greater "
                                                      "than or equal to 0.1 (got 1e-09)"),
    ({"physics": {"sample_duration_ns": 0.001}}, "physics.sample_duration_ns: Input should be greater than or equal"),
    ({"physics": {"s2_secondary_sc_gain_photons_per_electron": 1e9}},
     "physics.s2_secondary_sc_gain_photons_per_electron: Input should be less than or equal to 1000"),
    ({"electron_number": [10, 10**12]}, "electron_number: at most 10000000 quanta per interaction"),
    ({"photon_number": [10, 10**9]}, "photon_number: at most 10000000 quanta per interaction"),
    ({"fiducial_volume": {"r_max_cm": 200, "depth_min_cm": 0, "depth_max_cm": 50}},
     "fiducial_volume.r_max_cm: 200.0 cm is outside the XENON1T TPC"),
])
def test_values_out_of_range(capsys, tmp_path, overrides, expected):
    code, err, path = validate(capsys, tmp_path, {"name": "c", **overrides})
    assert code == 2 and f"{path}: {expected}" in err, err


# --------------------------------------------------------------------------------------------
# tables: validate reads them; bad contents are bad input naming file, column and row


def table(tmp_path, rows, name="events.csv"):
    frame = pd.DataFrame(rows, columns=["event_number", "x", "y", "z", "cs1", "cs2"])
    frame.to_csv(tmp_path / name, index=False)
    return tmp_path / name


GOOD_ROW = [0, 1.0, 2.0, -30.0, 100.0, 2000.0]


def table_campaign(path, **source):
    return {"name": "c", "number_job": 1, "number_event_per_job": 10, "recoil_type": "NR",
            "instructions": {"source": "table", "path": str(path), **source}}


def test_rows_outside_the_tpc_are_named(capsys, tmp_path):
    path = table(tmp_path, [GOOD_ROW, [1, 0.0, 0.0, -500.0, 1, 1], GOOD_ROW, [3, 200.0, 0.0, -10.0, 1, 1]])
    code, err, config = validate(capsys, tmp_path, table_campaign(path))
    assert code == 2
    assert f"{config}: instructions.path: {path}: 2 row(s) lie outside the TPC" in err
    assert "first: 1 (r 0.0 cm, z -500.0 cm), 3 (r 200.0 cm, z -10.0 cm)" in err


def test_rows_outside_can_be_dropped_and_are_counted(tmp_path):
    path = table(tmp_path, [GOOD_ROW, [1, 0.0, 0.0, -500.0, 1, 1], GOOD_ROW])
    settings = campaign_from_dict(table_campaign(path, outside_rows="drop"), "c.yaml").variants[0].settings
    frame = make_instructions(settings, 10, 0, np.random.default_rng(1), tmp_path)
    assert len(frame) == 2 and frame.attrs["rows_dropped"] == 1


def test_fiducial_volume_bound_for_table_rows(tmp_path):
    path = table(tmp_path, [GOOD_ROW, [1, 40.0, 0.0, -30.0, 1, 1]])
    settings = campaign_from_dict(table_campaign(path, volume="fiducial"), "c.yaml").variants[0].settings
    with pytest.raises(BadInputError, match=r"1 row\(s\) lie outside the fiducial volume .* first: 1 \(r 40.0 cm"):
        make_instructions(settings, 10, 0, np.random.default_rng(1), tmp_path)


def test_strings_in_cs1_name_file_column_and_row(capsys, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("event_number,x,y,z,cs1,cs2\n0,1,2,-30,100,2000\n1,1,2,-30,lots,2000\n")
    settings = campaign_from_dict(table_campaign(path), "c.yaml").variants[0].settings
    with pytest.raises(BadInputError) as caught:
        make_instructions(settings, 10, 0, np.random.default_rng(1), tmp_path)
    assert str(caught.value) == f"{path}: column cs1, row 1: 'lots' is not a number"
    assert caught.value.exit_code == 3 and not caught.value.retryable()
    code, err, _ = validate(capsys, tmp_path, table_campaign(path))
    assert code == 2 and "column cs1, row 1: 'lots' is not a number" in err


def test_absurd_charges_in_a_table_are_bounded(tmp_path):
    path = table(tmp_path, [GOOD_ROW, [1, 1.0, 1.0, -30.0, 1e15, 1.0]])
    settings = campaign_from_dict(table_campaign(path), "c.yaml").variants[0].settings
    with pytest.raises(BadInputError, match=r"column cs1, row 1: .* quanta is above the 10000000 allowed"):
        make_instructions(settings, 10, 0, np.random.default_rng(1), tmp_path)


def test_validate_reads_the_table(capsys, tmp_path):
    code, err, config = validate(capsys, tmp_path, table_campaign(tmp_path / "nope.csv"))
    assert code == 2 and f"{config}: instructions.path: {tmp_path / 'nope.csv'}: data table not found" in err
    pickled = tmp_path / "events.pkl"
    code, err, _ = validate(capsys, tmp_path, table_campaign(pickled))
    assert code == 2 and f"{pickled}: pickle input can run arbitrary code and is refused" in err
    short = table(tmp_path, [GOOD_ROW])
    pd.read_csv(short).drop(columns=["cs2"]).to_csv(short, index=False)
    code, err, _ = validate(capsys, tmp_path, table_campaign(short))
    assert code == 2 and "missing columns ['cs2']" in err


def test_validate_finds_productions_without_rows(capsys, tmp_path):
    path = table(tmp_path, [GOOD_ROW] * 15)
    code, err, _ = validate(capsys, tmp_path, {**table_campaign(path), "number_job": 3})
    assert code == 2 and "production 2 needs rows [20, 30) but the table has only 15 rows" in err


def test_validate_expands_production_ids(capsys, tmp_path):
    code, err, path = validate(capsys, tmp_path, {"name": "c", "number_job": 12,
                                                  "production_id_format": "{index!s:.1}"})
    assert code == 2 and f"{path}: variant default: production_id_format '{{index!s:.1}}' gives the same id" in err


def test_plan_refuses_a_campaign_whose_table_is_missing(capsys, tmp_path):
    config = campaign_file(tmp_path, table_campaign(tmp_path / "nope.csv"))
    code, out, err = run_cli(capsys, "plan", config, "--dry-run")
    assert code == BadInputError.exit_code == 3 and out == "" and "data table not found" in err


# --------------------------------------------------------------------------------------------
# cases that already held: names, pickles, unknown keys


@pytest.mark.parametrize("content, expected", [
    ({"name": "../etc"}, "name: '../etc' is not a safe name"),
    ({"name": "c", "variants": [{"name": "a;rm -rf ~"}]}, "variants[0].name: 'a;rm -rf ~' is not a safe name"),
    ({"name": "c", "cluster": {"partition": "--uid=0"}}, "cluster.partition: '--uid=0' is not a safe name"),
    ({"name": "c", "cluster": {"remote_root": "/srv/../etc"}}, "cluster.remote_root: '/srv/../etc' must be"),
    ({"name": "c", "cluster": {"remote_root": "$HOME/$(id)"}}, "cluster.remote_root: '$HOME/$(id)' must be"),
    ({"name": "c", "nuber_job": 3}, "nuber_job: unknown key (allowed: "),
    ({"name": "c", "limits": {"max_events": 3}},
     "limits.max_events: unknown key (allowed: max_productions_per_variant"),
    ({"name": "c", "production_id_format": "{index}/{name}"}, "production_id_format: "),
])
def test_names_and_keys(capsys, tmp_path, content, expected):
    code, err, path = validate(capsys, tmp_path, content)
    assert code == 2 and f"{path}: {expected}" in err


# --------------------------------------------------------------------------------------------
# failure classes, retry decisions and the CLI's error path


def test_failure_classes_carry_their_retry_decision():
    assert errors.classify(OSError(28, "No space left on device")).exit_code == errors.StorageError.exit_code == 5
    memory = errors.classify(MemoryError())
    assert isinstance(memory, errors.ResourceError) and memory.exit_code == 7 and memory.retry == errors.MORE_MEMORY
    assert errors.classify(KeyError("x")).exit_code == errors.EngineError.exit_code
    assert [cls.kind for cls in errors.FAILURE_CLASSES if not cls.retryable()] == ["config", "bad_input", "validation"]
    assert set(errors.RETRYABLE_KINDS) == {"error", "engine", "io", "resource"}


@pytest.mark.parametrize("exit_code, action", [
    (2, Action.FAIL), (3, Action.FAIL), (6, Action.FAIL), (4, Action.RETRY), (5, Action.RETRY),
    (7, Action.RETRY_MORE_MEMORY), (1, Action.RETRY), (None, Action.RETRY),
])
def test_slurm_policy_follows_the_failure_class(exit_code, action):
    decision = decide("FAILED", exit_code, Resources(60, 3000, 720, 16000))
    assert decision.action is action
    if action is Action.RETRY_MORE_MEMORY:
        assert decision.mem_per_cpu_mb == 6000 and "out of memory" in decision.reason


def test_out_of_memory_at_the_memory_cap_fails():
    assert decide("FAILED", 7, Resources(60, 16000, 720, 16000)).action is Action.FAIL


def test_a_group_reports_a_retryable_class_first():
    from faxflow.pipeline import _group_exit_code

    failures = [{"error_class": "bad_input", "exit_code": 3}, {"error_class": "resource", "exit_code": 7}]
    assert _group_exit_code(failures) == 7


def test_os_error_in_any_command_is_an_io_error(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(capsys, "docs", "--output", blocker / "configuration.md")
    assert code == errors.StorageError.exit_code == 5
    assert err.startswith("faxflow: I/O error: ") and "unexpected" not in err


def test_job_without_a_readable_manifest_still_prints_its_summary(capsys, tmp_path):
    code, out, err = run_cli(capsys, "job", "--manifest", tmp_path / "g000000.json", "--digest", HEX, "--group", 4)
    assert code == BadInputError.exit_code
    lines = [line for line in out.splitlines() if line.startswith("FAXFLOW_SUMMARY ")]
    assert len(lines) == 1
    summary = json.loads(lines[0].removeprefix("FAXFLOW_SUMMARY "))
    assert summary["group"] == 4 and summary["exit_code"] == 3
    assert summary["failures"][0]["error_class"] == "bad_input"
    assert str(tmp_path / "g000000.json") in summary["failures"][0]["message"] and str(tmp_path) in err


@pytest.mark.parametrize("argv, option", [
    (["collect", "--manifest", "m.json", "--digest", HEX, "--variant", "v", "--min-fraction", "nan"], "--min-fraction"),
    (["collect", "--manifest", "m.json", "--digest", HEX, "--variant", "v", "--min-fraction", "1.5"], "--min-fraction"),
    (["plan", "c.yaml", "--number-job", "0"], "--number-job"),
    (["plan", "c.yaml", "--events", "2.5"], "--events"),
    (["run", "c.yaml", "-j", "-1"], "-j/--jobs"),
    (["job", "--manifest", "m.json", "--digest", HEX, "--group", "-1"], "--group"),
])
def test_bad_arguments_are_usage_errors(capsys, argv, option):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2 and option in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# one home per fact; the remote root


def test_default_remote_root_is_private_and_resolved_on_the_cluster():
    campaign = campaign_from_dict({"name": "c", "cluster": {"backend": "slurm"}}, "c.yaml")
    assert campaign.cluster.remote_root == names.DEFAULT_REMOTE_ROOT == "$HOME/faxflow"
    assert names.resolve_remote_path(campaign.cluster.remote_root, {"HOME": "/home/ann/"}) == "/home/ann/faxflow"
    assert names.resolve_remote_path("$SCRATCH/ff", {"SCRATCH": "/scratch/ann"}) == "/scratch/ann/ff"
    with pytest.raises(ValueError, match=r"\$HOME is not set"):
        names.resolve_remote_path("$HOME/faxflow", {})
    with pytest.raises(ValueError, match="must be an absolute path"):
        names.resolve_remote_path("$HOME/faxflow", {"HOME": "/home/a b"})


def test_names_have_one_rule():
    longest = "n" * names.MAX_NAME_LENGTH
    assert campaign_from_dict({"name": longest}, "c.yaml").name == longest
    with pytest.raises(ConfigError, match="is not a safe name"):
        campaign_from_dict({"name": longest + "n"}, "c.yaml")
    job_name = "j" * names.MAX_JOB_NAME_LENGTH
    assert commands.check_name(job_name) == job_name
    with pytest.raises(ValueError):
        commands.check_name(job_name + "j")
    with pytest.raises(ValueError):
        commands.check_path("/a/../b")


# --------------------------------------------------------------------------------------------
# a full disk: every OSError is an I/O failure and the job still prints its summary


def _small_file_limit(limit_bytes):
    def apply():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def test_full_disk_during_a_job_is_an_io_failure_with_a_summary(tmp_path):
    import subprocess
    import sys

    from faxflow.manifest import write_manifest
    from faxflow.plan import make_plan

    config = campaign_file(tmp_path, {"name": "full", "number_job": 1, "number_event_per_job": 3,
                                      "s2_afterpulse": False})
    plan = make_plan(load_campaign(config), output_root=str(tmp_path / "out"))
    slice_path, digest = write_manifest(plan, tmp_path / "manifests").slices[0]
    result = subprocess.run([sys.executable, "-m", "faxflow.cli", "job", "--manifest", str(slice_path),
                             "--digest", digest, "--group", "0"], capture_output=True, text=True, timeout=300,
                            preexec_fn=_small_file_limit(200))
    assert result.returncode == errors.StorageError.exit_code, result.stderr
    summary = json.loads(next(line for line in result.stdout.splitlines()
                              if line.startswith("FAXFLOW_SUMMARY ")).removeprefix("FAXFLOW_SUMMARY "))
    assert summary["exit_code"] == 5 and summary["failures"][0]["error_class"] == "io"
    assert "File too large" in summary["failures"][0]["message"]
    assert not list((tmp_path / "out").rglob("done/*/instructions.json"))


def test_reliability_table_cites_existing_tests():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cited = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", (root / "docs" / "reliability.md").read_text())
    assert len(cited) > 40
    missing = [f"{path}::{name}" for path, name in cited
               if not (root / path).is_file() or f"def {name}(" not in (root / path).read_text()]
    assert missing == []


def test_full_disk_during_collect_is_an_io_failure(tmp_path):
    import subprocess
    import sys

    from faxflow.manifest import write_manifest
    from faxflow.pipeline import run_group
    from faxflow.plan import make_plan

    config = campaign_file(tmp_path, {"name": "coll", "number_job": 1, "number_event_per_job": 3,
                                      "s2_afterpulse": False})
    plan = make_plan(load_campaign(config), output_root=str(tmp_path / "out"))
    files = write_manifest(plan, tmp_path / "manifests")
    assert run_group(plan, 0, echo=lambda line: None)["exit_code"] == 0
    result = subprocess.run([sys.executable, "-m", "faxflow.cli", "collect", "--manifest", str(files.index_path),
                             "--digest", files.index_digest, "--variant", "default"],
                            capture_output=True, text=True, timeout=300, preexec_fn=_small_file_limit(200))
    assert result.returncode == errors.StorageError.exit_code, result.stderr
    assert result.stderr.startswith("faxflow: I/O error: ") and "File too large" in result.stderr


def test_no_constructible_config_escapes_as_an_unexpected_error():
    import random

    from faxflow.config import CampaignFile

    values = [None, 0, 1, -1, 2 ** 70, 1.5, float("nan"), float("inf"), "", "x", "../x", "$(id)", [], [1], [1, 2],
              [[0, 1.0]], {}, {"a": 1}, True, "S1", {"source": "table"}, {"source": "nest"}, [{"name": "v"}]]
    sections = {"physics": ["diffusion_constant_cm2_per_s", "period", "lone_hit_rates_per_channel_hz"],
                "processing": ["s1_cluster_gap_ns", "run_number"],
                "cluster": ["backend", "remote_root", "retries", "env_setup"],
                "instructions": ["source", "path", "energy_range_kev", "spectrum", "energy_kev", "format"],
                "fiducial_volume": ["r_max_cm", "depth_min_cm", "depth_max_cm"],
                "limits": ["max_events_per_campaign", "max_productions_per_variant"],
                "matrix": ["number_job", "physics.electron_lifetime_us", "x.y", "instructions.source"],
                "pax": ["conda_env", "config_names"]}
    keys = list(CampaignFile.model_fields)
    chooser = random.Random(9)
    for _ in range(1500):
        raw = {"name": "c"}
        for _ in range(chooser.randint(1, 4)):
            key = chooser.choice(keys)
            if key in sections and chooser.random() < 0.7:
                section = raw[key] if isinstance(raw.get(key), dict) else {}
                section[chooser.choice(sections[key])] = chooser.choice(values)
                raw[key] = section
            else:
                raw[key] = chooser.choice(values)
        try:
            campaign_from_dict(raw, "c.yaml")
        except ConfigError as error:
            assert all(line.startswith("c.yaml: ") for line in error.problems), (raw, error.problems)


def test_no_constructible_table_escapes_as_an_unexpected_error(tmp_path):
    import random

    cells = ["1", "-30", "0", "", "nan", "inf", "-inf", "1e300", "-1e300", "abc", "True", "1,5", '"', "9" * 30]
    chooser = random.Random(3)
    path = tmp_path / "events.csv"
    settings = campaign_from_dict(table_campaign(path, outside_rows=chooser.choice(["error", "drop"])),
                                  "c.yaml").variants[0].settings
    outcomes = set()
    for _ in range(200):
        rows = ["event_number,x,y,z,cs1,cs2"] + [",".join(chooser.choice(cells) for _ in range(6))
                                                 for _ in range(chooser.randint(0, 4))]
        path.write_text("\n".join(rows) + "\n")
        try:
            make_instructions(settings, 10, 0, np.random.default_rng(1), tmp_path)
            outcomes.add("ok")
        except BadInputError as error:
            assert str(path) in str(error)
            outcomes.add("bad input")
    assert outcomes == {"ok", "bad input"}


def test_dropped_table_rows_are_recorded_in_the_done_record(tmp_path):
    import json

    from faxflow.config import load_campaign
    from faxflow.pipeline import ProductionRunner
    from faxflow.plan import make_plan

    path = table(tmp_path, [GOOD_ROW, [1, 0.0, 0.0, -500.0, 1, 1], GOOD_ROW])
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({**table_campaign(path, outside_rows="drop"), "number_event_per_job": 2}))
    plan = make_plan(load_campaign(config), output_root=str(tmp_path / "out"))
    variant = plan.variants[0]
    runner = ProductionRunner(plan, variant, tmp_path / "out", echo=lambda line: None)
    assert runner.run(variant.productions[0]).status == "ok"
    record = json.loads(runner.files(variant.productions[0]).done_record("instructions").read_text())
    assert record["rows_dropped"] == 1
