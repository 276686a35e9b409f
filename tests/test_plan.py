"""The plan: deterministic seeds and keys, groups, content-addressed manifests, dry runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faxflow.config import campaign_from_dict
from faxflow.errors import BadInputError
from faxflow.plan import format_dry_run, make_plan

BASE = {"name": "camp", "number_job": 7, "number_event_per_job": 10,
        "cluster": {"productions_per_job": 3},
        "variants": [{"name": "a"}, {"name": "b", "physics": {"diffusion_constant_cm2_per_s": 20}}]}


def plan_of(raw=None, **kwargs):
    return make_plan(campaign_from_dict(raw or BASE, "/tmp/camp.yaml"), output_root="/out", **kwargs)


def test_productions_groups_and_ids():
    plan = plan_of()
    a = plan.variant("a")
    assert [p.id for p in a.productions][:2] == ["a_000000", "a_000001"]
    assert [len(plan.groups[i].production_ids) for i in a.group_indices] == [3, 3, 1]
    assert [g.index for g in plan.groups] == list(range(6))
    assert plan.groups[3].variant == "b" and plan.groups[3].number == 0
    names = [g.job_name for g in plan.groups]
    assert len(set(names)) == len(names)
    assert all(name.startswith("ff_camp_") and name.replace("_", "").replace("-", "").isalnum() for name in names)


def test_productions_are_made_when_read_and_read_alike_every_way():
    from faxflow.plan import production_seed

    plan = plan_of({**BASE, "number_job": 5000})
    variant = plan.variant("a")
    productions = variant.productions
    every = list(productions)  # iterated in chunks
    assert len(every) == len(productions) == 5000 and every == productions[:] == productions
    assert productions[4095:4098] == every[4095:4098] and productions[-1] == every[-1] and productions[::1000] == \
        every[::1000]
    assert [p.index for p in every] == list(range(5000)) and {p.n_events for p in every} == {10}
    assert all(p.seed == production_seed(plan.campaign, variant.sim_key, p.index, plan.seed) for p in every[::97])
    assert plan.totals()["events"] == 2 * 5000 * 10


def test_same_config_same_plan_and_seeds():
    first, second = plan_of(), plan_of()
    assert first.to_dict() == second.to_dict()
    seeds = [p.seed for v in first.variants for p in v.productions]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= seed < 2 ** 63 for seed in seeds)


def test_variant_key_tracks_content_not_bookkeeping():
    base = plan_of().variant("a").key
    assert plan_of(run_id="other").variant("a").key == base  # fixed seed policy
    assert plan_of(number_job=2).variant("a").key == base
    assert make_plan(campaign_from_dict({**BASE, "cluster": {"productions_per_job": 1}}, "/tmp/c.yaml"),
                     output_root="/out").variant("a").key == base
    assert plan_of(events=11).variant("a").key != base
    assert plan_of().variant("b").key != base
    assert plan_of().variant("a").output_dir == f"camp/a-{base}"


def test_processing_only_variants_share_the_simulation_key():
    raw = {**BASE, "variants": [{"name": "a"}, {"name": "p", "processing": {"s2_min_channels": 3}},
                                {"name": "s", "physics": {"diffusion_constant_cm2_per_s": 20}}]}
    plan = plan_of(raw)
    a, p, s = (plan.variant(name) for name in "aps")
    assert a.sim_key == p.sim_key != s.sim_key and a.sim_dir == p.sim_dir == f"camp/sim-{a.sim_key}"
    assert a.key != p.key
    assert [x.seed for x in a.productions] == [x.seed for x in p.productions]
    kept = plan_of({**raw, "raw": "keep"}).variant("a")
    assert kept.sim_key == a.sim_key and [x.seed for x in kept.productions] == [x.seed for x in a.productions]


def test_different_seeds_never_share_a_directory():
    first, second = plan_of().variant("a"), plan_of({**BASE, "seed": 1}).variant("a")
    assert first.sim_dir != second.sim_dir and first.output_dir != second.output_dir
    raw = {**BASE, "seed_policy": "per_run"}
    one, two = plan_of(raw, run_id="r1").variant("a"), plan_of(raw, run_id="r2").variant("a")
    assert one.sim_dir != two.sim_dir and one.output_dir != two.output_dir


def test_colliding_production_ids_are_refused_naming_them():
    raw = {**BASE, "number_job": 12, "production_id_format": "{index!s:.1}"}
    with pytest.raises(BadInputError, match=r"production_id_format '\{index!s:.1\}' gives the same id .*\b1\b"):
        plan_of(raw)


def test_seed_policy_per_run_salts_with_the_run_id():
    raw = {**BASE, "seed_policy": "per_run"}
    one = plan_of(raw, run_id="r1").variant("a").productions[0].seed
    assert plan_of(raw, run_id="r1").variant("a").productions[0].seed == one
    assert plan_of(raw, run_id="r2").variant("a").productions[0].seed != one
    fixed = plan_of(run_id="r1").variant("a").productions[0].seed
    assert plan_of(run_id="r2").variant("a").productions[0].seed == fixed
    assert plan_of({**BASE, "seed": 1}).variant("a").productions[0].seed != fixed


def test_overrides_and_variant_subset():
    plan = plan_of(variants=["b"], number_job=2, events=5)
    assert [v.name for v in plan.variants] == ["b"]
    assert [p.n_events for p in plan.variants[0].productions] == [5, 5]
    with pytest.raises(BadInputError, match="unknown variant.*allowed: a, b"):
        plan_of(variants=["zzz"])


def test_dry_run_table():
    plan = plan_of()
    table = format_dry_run(plan)
    assert "a " in table and "b " in table and "total" in table
    totals = plan.totals()
    assert totals == {**totals, "variants": 2, "productions": 14, "events": 140, "groups": 6}


def test_cli_dry_run_writes_nothing(tmp_path):
    config = tmp_path / "camp.yaml"
    config.write_text(json.dumps(BASE))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "faxflow.cli", "plan", str(config), "--dry-run",
                             "--output-root", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "total" in result.stdout and not out.exists()
    result = subprocess.run([sys.executable, "-m", "faxflow.cli", "plan", str(config), "--output-root", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and len(list((out / "camp" / "manifests").glob("plan-*/index.json"))) == 1
    assert "digest: " in result.stdout


def test_relative_output_root_is_made_absolute(tmp_path, monkeypatch):
    from faxflow.cli import main

    config = tmp_path / "c.yaml"
    config.write_text("name: c\nnumber_job: 1\nnumber_event_per_job: 1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["plan", str(config), "--output-root", "out"]) == 0
    index = next((tmp_path / "out").rglob("index.json"))
    digest = __import__("hashlib").sha256(index.read_bytes()).hexdigest()
    assert main(["check-manifest", str(index), "--digest", digest]) == 0
    assert __import__("json").loads(index.read_text())["output_root"] == str(tmp_path / "out")


@pytest.mark.parametrize("id_format", ["{name}\n{index}", "{name}{index:070d}", "-{index}", "{name} {index}"])
def test_unsafe_production_ids_are_refused_naming_one(id_format):
    from faxflow.plan import expand_productions

    settings = {"production_id_format": id_format, "number_event_per_job": 1}
    with pytest.raises(BadInputError, match="is not a safe name"):
        expand_productions("camp", "a", settings, "0" * 12, 0, range(3))


def test_default_output_root_comes_from_the_backend_without_importing_airflow():
    """A cluster campaign planned where only the core package is installed (no Airflow): the jobs'
    output root is the backend's, under ``remote_root``; a local campaign's is its resolved output_root."""
    code = (
        "import sys\n"
        "from faxflow.config import campaign_from_dict\n"
        "from faxflow.plan import make_plan\n"
        f"raw = {BASE!r}\n"
        "raw = {**raw, 'cluster': {'backend': 'slurm', 'remote_root': '$SCRATCH/fax/'}}\n"
        "print(make_plan(campaign_from_dict(raw, '/tmp/camp.yaml')).output_root)\n"
        "print('airflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["$SCRATCH/fax/outputs", "False"]
    local = make_plan(campaign_from_dict({**BASE, "output_root": "relative/out"}, "/tmp/camp.yaml"))
    assert local.output_root == str(Path("relative/out").resolve())
